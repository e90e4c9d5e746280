// `--changes`: continuous mode's change events as JSON lines, one object per change with its before and
// after (the README lists every key; MonitorOutputTests checks it does). Written on the engine's thread like all output.

import FastTraceCore
import FastTraceStats
import FastTraceWire

enum EventJSON {
    /// The `schema` key: the version of this layout.
    static let schemaVersion: UInt64 = 2

    static func line(_ event: ChangeEvent, vantage: String, time: UInt64?) -> String {
        var bytes: [UInt8] = []
        write(event, vantage: vantage, time: time, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ event: ChangeEvent, vantage: String, time: UInt64?, into out: inout [UInt8]) {
        let request = event.request
        out.appendLiteral("{\"schema\":")
        out.appendDecimal(schemaVersion)
        out.appendLiteral(",\"type\":\"change\",\"change\":\"")
        out.appendText(event.kind.rawValue)
        out.appendLiteral("\",\"vantage\":")
        out.appendQuoted(vantage)
        out.appendLiteral(",\"time\":")
        if let time {
            out.append(0x22)
            out.appendTimestamp(time)
            out.append(0x22)
        } else {
            out.appendLiteral("null")
        }
        out.appendLiteral(",\"target\":\"")
        out.appendAddress(request.destination)
        out.appendLiteral("\"")
        if let name = request.name {
            out.appendLiteral(",\"name\":")
            out.appendQuoted(name)
        }
        if event.method.hasPorts {
            out.appendLiteral(",\"port\":")
            out.appendDecimal(UInt64(request.port))
        }
        out.appendLiteral(",\"protocol\":\"")
        out.appendText(event.method.protocolName)
        out.appendLiteral("\",\"round\":")
        out.appendDecimal(UInt64(event.round))
        out.appendLiteral(",\"since_round\":")
        out.appendDecimal(UInt64(event.sinceRound))
        out.appendLiteral(",\"before\":")
        write(event.before, into: &out)
        out.appendLiteral(",\"after\":")
        write(event.after, into: &out)
        out.appendLiteral("}")
    }

    static func write(_ value: ChangeValue, into out: inout [UInt8]) {
        switch value {
        case .path(let path):
            out.appendLiteral("{\"path_id\":\"")
            out.appendText(path.id)
            out.appendLiteral("\",\"hops\":")
            out.appendDecimal(UInt64(path.hopCount))
            out.appendLiteral(",\"reaches_destination\":")
            out.appendLiteral(path.reachesDestination ? "true" : "false")
            out.appendLiteral(",\"addrs\":[")
            for (i, responder) in path.responders.enumerated() {
                if i > 0 { out.append(0x2C) }
                if let responder { out.appendQuoted(responder.description) } else { out.appendLiteral("null") }
            }
            out.appendLiteral("]}")
        case .reachability(let reached, let state):
            out.appendLiteral("{\"reached\":")
            out.appendLiteral(reached ? "true" : "false")
            out.appendLiteral(",\"state\":")
            if state == .unknown { out.appendLiteral("null") } else { out.appendQuoted(state.rawValue) }
            out.appendLiteral("}")
        case .loss(let loss):
            writeRounds(loss.rounds, into: &out)
            out.appendLiteral(",\"end_ttl\":")
            ReportJSON.appendOptional(loss.endTTL.map { UInt64($0) }, into: &out)
            out.appendLiteral(",\"end_is_destination\":")
            out.appendLiteral(loss.endIsDestination ? "true" : "false")
            out.appendLiteral(",\"sent\":")
            out.appendDecimal(UInt64(loss.sent))
            out.appendLiteral(",\"lost\":")
            out.appendDecimal(UInt64(loss.lost))
            out.appendLiteral(",\"loss_pct\":")
            out.appendText(ReportJSON.percentNumber(loss.lossPercent))
            out.appendLiteral(",\"start_ttl\":")
            ReportJSON.appendOptional(loss.startTTL.map { UInt64($0) }, into: &out)
            out.appendLiteral(",\"start_ttl_latest\":")
            ReportJSON.appendOptional(loss.startTTLLatest.map { UInt64($0) }, into: &out)
            out.appendLiteral("}")
        case .latency(let latency):
            writeRounds(latency.rounds, into: &out)
            out.appendLiteral(",\"end_ttl\":")
            ReportJSON.appendOptional(latency.endTTL.map { UInt64($0) }, into: &out)
            out.appendLiteral(",\"p50_ms\":")
            if let p50 = latency.p50Micros { out.appendMillis(p50) } else { out.appendLiteral("null") }
            out.appendLiteral(",\"samples\":")
            out.appendDecimal(UInt64(latency.samples))
            out.appendLiteral(",\"rise_ttl\":")
            ReportJSON.appendOptional(latency.riseTTL.map { UInt64($0) }, into: &out)
            out.appendLiteral(",\"rise_ms\":")
            if let rise = latency.riseMicros { out.appendMillis(rise) } else { out.appendLiteral("null") }
            out.appendLiteral("}")
        }
    }

    private static func writeRounds(_ rounds: ClosedRange<Int>, into out: inout [UInt8]) {
        out.appendLiteral("{\"first_round\":")
        out.appendDecimal(UInt64(rounds.lowerBound))
        out.appendLiteral(",\"last_round\":")
        out.appendDecimal(UInt64(rounds.upperBound))
    }
}
