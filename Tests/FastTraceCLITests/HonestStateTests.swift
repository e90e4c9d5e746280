// What the formats say about what the network did not say (issue 13): an interrupted trace has no port
// state (`null` in JSON, `unknown` in CSV, no word in text); a silence the run only infers is
// `likely-rate-limited`, not `rate-limited`; an unreachable placed at its router's hop from a deeper
// probe says which TTL it was sent with.

import FastTraceCore
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

let interruptedTrace = trace([
    HopResult(ttl: 1, probes: [answered(router(1), 50), answered(router(1), 40), answered(router(1), 45)]),
    HopResult(ttl: 2, probes: [ProbeResult(silence: .interrupted), .silent, ProbeResult(silence: .interrupted)]),
], stop: .interrupted)

var placedUnreachable: ProbeResult {
    var p = answered(router(1), 70, .unreachable(code: 0))
    p.sentTTL = 6
    return p
}

let inferredTrace = trace([
    HopResult(ttl: 1, probes: [ProbeResult(silence: .rateLimited), .silent, .silent]),
    HopResult(ttl: 2, probes: Array(repeating: ProbeResult(silence: .likelyRateLimited), count: 3)),
    HopResult(ttl: 3, probes: [ProbeResult(silence: .likelyRateLimited), placedUnreachable, .silent]),
], stop: .unreachable)

@Suite struct HonestStateTests {
    @Test("An interrupted trace the destination never answered: state null in JSON, unknown in CSV, no word in text")
    func interruptedHasNoState() throws {
        #expect(interruptedTrace.state == .unknown && !interruptedTrace.reached)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONFormatter.line(interruptedTrace).utf8))
            as? [String: Any])
        #expect(json["state"] is NSNull && json["stop"] as? String == "interrupted" && json["reached"] as? Bool == false)
        let csv = CSVFormatter(probesPerHop: 3)
        var out: [UInt8] = []
        csv.write(interruptedTrace, .plain, into: &out)
        let rows = String(decoding: out, as: UTF8.self).split(separator: "\n")
        let stateColumn = try #require(csv.columns.firstIndex { $0.name == "state" })
        #expect(rows.allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false)[stateColumn] == "unknown" })
        let title = TextFormatter().block(interruptedTrace).split(separator: "\n")[0]
        #expect(title == "198.51.100.10 port 443: interrupted after 2 TTLs (partial)")
        #expect(!title.contains("filtered"))
    }

    @Test("Inferred silence says likely; shown says rate-limited; a placed unreachable names its sent TTL")
    func inferredSilence() throws {
        let text = TextFormatter().block(inferredTrace).split(separator: "\n").map(String.init)
        #expect(text[1] == " 1  * * *  [rate-limited]")
        #expect(text[2] == " 2  * * *  [likely rate-limited]")
        #expect(text[3] == " 3  * 198.18.0.1  0.070 ms !N (sent with TTL 6) *  [likely rate-limited]")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONFormatter.line(inferredTrace).utf8))
            as? [String: Any])
        let hops = try #require(json["hops"] as? [[String: Any]])
        #expect(hops.map { $0["kind"] as? String } == ["rate-limited", "likely-rate-limited", "unreachable"])
        #expect(hops[2]["sent_ttl"] as? Int == 6 && hops[2]["likely_rate_limited"] as? Int == 1)
        #expect(hops[0]["sent_ttl"] == nil)
        var out: [UInt8] = []
        CSVFormatter(probesPerHop: 3).write(inferredTrace, .plain, into: &out)
        #expect(String(decoding: out, as: UTF8.self).contains(",likely-rate-limited,"))
    }
}
