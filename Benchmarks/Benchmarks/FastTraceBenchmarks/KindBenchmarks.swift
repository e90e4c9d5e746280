// The three per-packet paths for every probe kind × family beside TCP SYN over IPv4 (which
// FastTraceBenchmarks.swift measures under its historical names): encode a probe through the kind, parse
// and validate a router's time exceeded quoting it (ICMP for IPv4, ICMPv6 for IPv6), and the
// dispatcher's full match-and-record of that reply. The same harness and rules: 1,000 operations per
// measured iteration, inputs varied with the loop index where free, 0 mallocs at every percentile.

import Benchmark
import FastTraceCore
import FastTraceWire

/// One kind × family as the engine runs it.
private struct KindCase {
    let label: String
    let method: ProbeMethod
    let port: UInt16
    let v6: Bool
}

private let kindCases: [KindCase] = [
    KindCase(label: "tcp-syn ipv6", method: .tcp(.syn), port: 443, v6: true),
    KindCase(label: "udp/53 dns ipv4", method: .udp(.byPort), port: 53, v6: false),
    KindCase(label: "udp/53 dns ipv6", method: .udp(.byPort), port: 53, v6: true),
    KindCase(label: "udp/33434 ipv4", method: .udp(.byPort), port: 33434, v6: false),
    KindCase(label: "udp/33434 ipv6", method: .udp(.byPort), port: 33434, v6: true),
    KindCase(label: "icmp-echo ipv4", method: .icmpEcho, port: 0, v6: false),
    KindCase(label: "icmp-echo ipv6", method: .icmpEcho, port: 0, v6: true),
]

private let askedLength = 40
private let kindSourcePort: UInt16 = 41_000

private func addresses(_ v6: Bool) -> (vantage: IPAddress, router: IPAddress, target: IPAddress) {
    v6 ? (IPAddress("2001:db8:0:1::2")!, IPAddress("2001:db8:0:3::1")!, IPAddress("2001:db8:100::10")!)
        : (IPAddress("198.18.0.2")!, IPAddress("198.18.0.9")!, IPAddress("198.19.0.10")!)
}

/// The address's bytes on the wire: 4 for IPv4, 16 for IPv6.
private func addressBytes(_ a: IPAddress, count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 16)
    out.withUnsafeMutableBytes { a.write(into: $0) }
    return Array(out.suffix(count))
}

/// The RFC 1071 checksum of `bytes` (the wire module's).
private func internetChecksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
    Array(bytes).withUnsafeBytes { InternetChecksum.checksum($0) }
}

/// A router's time exceeded quoting the probe `kind` writes for `tag` on `flow`, as it arrives: the quote
/// carries the TTL / hop limit the router saw (1).
private func timeExceeded(_ kind: any ProbeKind, flow: ProbeFlow, tag: ProbeTag, v6: Bool) -> [UInt8] {
    let (vantage, router, _) = addresses(v6)
    var buffer = [UInt8](repeating: 0, count: 2048)
    let stamp = benchmarkCodec.encode(tag, digest: benchmarkCodec.digest(flow), layout: kind.tagLayout)
    let n = buffer.withUnsafeMutableBytes {
        kind.write(ProbeSpec(flow: flow, ttl: tag.ttl, stamp: stamp, length: askedLength), into: $0)
    }
    var probe = Array(buffer[0..<n])
    if v6 {
        probe[7] = 1
        let icmp: [UInt8] = [3, 0, 0, 0, 0, 0, 0, 0] + probe.prefix(1232)
        return [0x60, 0, 0, 0, UInt8(icmp.count >> 8), UInt8(icmp.count & 0xFF), 58, 64]
            + addressBytes(router, count: 16) + addressBytes(vantage, count: 16) + icmp
    }
    probe[8] = 1
    probe[10] = 0
    probe[11] = 0
    let quoted = internetChecksum(probe[0..<20])
    probe[10] = UInt8(quoted >> 8)
    probe[11] = UInt8(quoted & 0xFF)
    var icmp: [UInt8] = [11, 0, 0, 0, 0, 0, 0, 0] + probe
    let icmpSum = internetChecksum(icmp[...])
    icmp[2] = UInt8(icmpSum >> 8)
    icmp[3] = UInt8(icmpSum & 0xFF)
    let total = 20 + icmp.count
    var header: [UInt8] = [0x45, 0xC0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0, 0, 64 - tag.ttl + 1, 1, 0, 0]
        + addressBytes(router, count: 4) + addressBytes(vantage, count: 4)
    let headerSum = internetChecksum(header[...])
    header[10] = UInt8(headerSum >> 8)
    header[11] = UInt8(headerSum & 0xFF)
    return header + icmp
}

func kindBenchmarks() {
    for c in kindCases {
        let kind = c.method.kind
        let (vantage, router, target) = addresses(c.v6)
        let flow = ProbeFlow(source: vantage, destination: target, sourcePort: kindSourcePort, destinationPort: c.port,
            protocolNumber: kind.protocolNumber, epoch: 2)
        let digest = benchmarkCodec.digest(flow)
        let layout = kind.tagLayout

        // Send side.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 8)
        Benchmark("encode probe [\(c.label)]") { benchmark in
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                let ttl = UInt8(truncatingIfNeeded: i & 15) + 1
                let tag = ProbeTag(slot: UInt16(truncatingIfNeeded: i & 0x3FFF), ttl: ttl, attempt: 0)
                let stamp = benchmarkCodec.encode(tag, digest: digest, layout: layout)
                blackHole(kind.write(ProbeSpec(flow: flow, ttl: ttl, stamp: stamp, length: askedLength), into: buffer))
            }
            benchmark.stopMeasurement()
            blackHole(buffer.load(fromByteOffset: 24, as: UInt32.self))
        }

        // Receive side: parse and verify, as the dispatcher does per reply.
        let reply = pinned(timeExceeded(kind, flow: flow, tag: ProbeTag(slot: 1234, ttl: 5, attempt: 0), v6: c.v6))
        @inline(__always) func verified(_ packet: UnsafeRawBufferPointer) -> ProbeTag? {
            guard let parsed = kind.parse(packet) else { return nil }
            let (tag, mac) = benchmarkCodec.identify(parsed.tagWord, layout: layout)
            // The quoted IPv4 ID is checked only where it is not part of the tag (as the dispatcher does).
            let quotedID = parsed.quotesIPID && layout == .separateID ? parsed.quotedIPID : nil
            guard benchmarkCodec.verify(tag, macBits: mac, quotedIPID: quotedID, digest: digest) else { return nil }
            return tag
        }
        precondition(verified(reply)?.slot == 1234, "\(c.label): the benchmark reply does not parse and verify")
        Benchmark("parse+validate reply [\(c.label)]") { benchmark in
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                guard let tag = verified(reply) else { fatalError("reply stopped parsing") }
                blackHole(tag)
            }
            benchmark.stopMeasurement()
        }

        // The dispatcher's whole path: parse, validate, the occupant from the slot table, match, record, notify.
        let grid = ProbeGrid(firstTTL: 1, maxTTL: 30, attempts: 3, slots: 4096)
        let dispatcher = Dispatcher(grid: grid, sourcePort: kindSourcePort, codec: benchmarkCodec,
            payloadLength: askedLength - kind.minimumLength, kind: kind)
        let slot = 1234, ttl: UInt8 = 5
        let cell = grid.cell(slot: slot, ttl: ttl, attempt: 0)
        let sendTime: UInt64 = 1_700_000_000_000_000_000
        dispatcher.slots.publish(slot, flow: flow, digest: digest)
        if let byID = dispatcher.slotsByIPID {
            let stamp = benchmarkCodec.encode(ProbeTag(slot: UInt16(slot), ttl: ttl, attempt: 0), digest: digest, layout: layout)
            byID.storeRelaxed(Int(stamp.ipID), UInt64(slot) + 1)
        }
        dispatcher.sendTimes.store(cell, sendTime)
        let dispatchReply = pinned(timeExceeded(kind, flow: flow, tag: ProbeTag(slot: UInt16(slot), ttl: ttl, attempt: 0),
            v6: c.v6))
        dispatcher.handleReply(dispatchReply, timestampNanos: sendTime + 42_000)
        let recorded = PackedReply(word: dispatcher.results.load(cell))
        precondition(dispatcher.counters.matched == 1 && recorded.outcome == .timeExceeded,
            "\(c.label): the dispatch benchmark does not reach the match+record path: \(dispatcher.counters)")
        let responder = c.v6 ? dispatcher.responders6.loadAddress(cell: cell) : IPAddress(recorded.responder)
        precondition(responder == router, "\(c.label): recorded \(responder), not the router")
        dispatcher.notifications.drain { _ in }
        Benchmark("dispatch reply [\(c.label)]") { benchmark in
            let before = dispatcher.counters
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                dispatcher.results.storeRelaxed(cell, 0)
                dispatcher.handleReply(dispatchReply, timestampNanos: sendTime + 10_000 + UInt64(i))
            }
            dispatcher.notifications.drain { blackHole($0) }
            benchmark.stopMeasurement()
            let after = dispatcher.counters
            precondition(after.matched - before.matched == UInt64(benchmark.scaledIterations.count)
                && after.rejected == before.rejected && after.duplicates == before.duplicates
                && after.notifyOverflows == 0, "\(c.label): the dispatch benchmark left the match+record path: \(after)")
        }
    }
}
