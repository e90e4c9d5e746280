// Micro-benchmarks of the three per-packet paths of a run, each through the probe-kind seam as the engine
// runs it: building a probe (send side), parsing and
// validating a reply, and the dispatcher's full match-and-record of a reply (receive side). Each must
// cost tens of nanoseconds and allocate nothing; the malloc count is a zero-tolerance threshold.
//
// Every benchmark runs its operation `scaledIterations` (1,000) times per measured iteration, so the
// reported wall clock and throughput are per operation, and a malloc count of 0 per iteration means 0
// per operation. Inputs vary with the loop index where that is free, so the optimizer cannot hoist
// the work out of the loop; results go through `blackHole`.

import Benchmark
import FastTraceCore
import FastTraceWire

/// A fixed codec key so runs are comparable (the keyed hash costs the same for every key).
let benchmarkCodec = ProbeTagCodec(key0: 0x0123_4567_89AB_CDEF, key1: 0xFEDC_BA98_7654_3210)
private let vantage = IPv4Address(198, 18, 0, 2)
private let router = IPv4Address(198, 18, 0, 9)
private let target = IPv4Address(198, 19, 0, 10)
private let sourcePort: UInt16 = 41_000
private let destinationPort: UInt16 = 443
/// The flow every benchmark probe belongs to (slot epoch 2).
private let benchmarkFlow = ProbeFlow(source: vantage, destination: target, sourcePort: sourcePort,
    destinationPort: destinationPort, epoch: 2)

/// What a Linux router sends back for a probe that expired there: IPv4 (20) + ICMP time exceeded (8)
/// quoting the whole 40-byte probe as the router received it (TTL 1), 68 bytes, as captured in the lab.
private func timeExceededReply(quoting tag: ProbeTag, probeTTL: UInt8) -> [UInt8] {
    var packet = [UInt8](repeating: 0, count: 20 + 8 + 40)
    packet.withUnsafeMutableBytes { bytes in
        let stamp = benchmarkCodec.encode(tag, flow: benchmarkFlow)
        let probe = TCPProbe(
            source: vantage, destination: target, sourcePort: sourcePort, destinationPort: destinationPort,
            sequence: stamp.sequence, ttl: probeTTL, ipID: stamp.ipID)
        _ = TCPProbeWriter.write(probe, into: UnsafeMutableRawBufferPointer(rebasing: bytes[28...]))
        // The quote carries the TTL the router saw (1), not the one sent.
        IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[28..<48])).setTTL(1)
        IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[28..<48])).updateChecksum()

        let icmp = ICMPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[20...]))
        icmp.setType(ICMPLayout.typeTimeExceeded)
        icmp.setCode(0)
        icmp.setRestOfHeader(0)
        icmp.updateChecksum()

        let ip = IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<20]))
        ip.setHeaderLength(20)
        ip.setTOS(0xC0)
        ip.setTotalLength(68)
        ip.setIdentification(0)
        ip.setFragmentation(dontFragment: false)
        ip.setTTL(64 - probeTTL + 1)
        ip.setProtocol(IPv4Layout.protocolICMP)
        ip.setSource(router)
        ip.setDestination(vantage)
        ip.updateChecksum()
    }
    return packet
}

/// A copy of `bytes` in memory that is never freed (fixtures live as long as the benchmark process).
func pinned(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
    let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
    memory.copyBytes(from: bytes)
    return UnsafeRawBufferPointer(memory)
}

let benchmarks: @Sendable () -> Void = {
    // Zero allocations per operation, at every percentile: any malloc on these paths is a regression.
    // (A tolerance of 0 for baseline comparisons, and the static thresholds in Thresholds/.)
    let noMallocs: [BenchmarkMetric: BenchmarkThresholds] = [
        .mallocCountTotal: .init(absolute: [.p0: 0, .p25: 0, .p50: 0, .p75: 0, .p90: 0, .p99: 0, .p100: 0])
    ]
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 100,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 100_000,
        thresholds: noMallocs
    )

    // MARK: Send side

    // Fixtures are made once here, not in the closures: a benchmark closure runs once per measured
    // iteration, and the dispatcher's tables (4096 slots x 90 cells) take far longer to build than
    // the 1,000 operations measured. They live as long as the benchmark process.

    let probeBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
    // As the engine sends: the flow's digest computed once when the trace takes its slot, then per probe
    // the tag's MAC from it and the run's kind writing the packet (through the seam, `any ProbeKind`).
    let sendKind: any ProbeKind = ProbeMethod.tcp(.syn).kind
    let sendDigest = benchmarkCodec.digest(benchmarkFlow)
    Benchmark("encode probe") { benchmark in
        let buffer = probeBuffer
        let kind = sendKind, digest = sendDigest
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            let ttl = UInt8(truncatingIfNeeded: i & 15) + 1
            let tag = ProbeTag(slot: UInt16(truncatingIfNeeded: i & 0x3FFF), ttl: ttl, attempt: 0)
            let stamp = benchmarkCodec.encode(tag, digest: digest)
            blackHole(kind.write(ProbeSpec(flow: benchmarkFlow, ttl: ttl, stamp: stamp, length: 40), into: buffer))
        }
        benchmark.stopMeasurement()
        blackHole(buffer.load(fromByteOffset: 24, as: UInt32.self))
    }

    // As the TX ring sends: the probe written 14 bytes into the frame, its IPv4 header finished as the raw
    // socket would (total length, checksum), the EtherType read from its version nibble, and the
    // Ethernet header written in front (the part of TxRingSender.frame that is not the next-hop lookup).
    let frameBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 14 + 64, alignment: 16)
    let ownMAC = MACAddress(0x0200_0000_0001), gatewayMAC = MACAddress(0x0200_0000_00FE)
    Benchmark("frame probe (TX ring)") { benchmark in
        let frame = frameBuffer
        let kind = sendKind, digest = sendDigest
        let packet = UnsafeMutableRawBufferPointer(rebasing: frame[14...])
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            let ttl = UInt8(truncatingIfNeeded: i & 15) + 1
            let tag = ProbeTag(slot: UInt16(truncatingIfNeeded: i & 0x3FFF), ttl: ttl, attempt: 0)
            let stamp = benchmarkCodec.encode(tag, digest: digest)
            let length = kind.write(ProbeSpec(flow: benchmarkFlow, ttl: ttl, stamp: stamp, length: 40), into: packet)
            guard let etherType = EthernetFrameWriter.etherType(ofIPPacket: UnsafeRawBufferPointer(packet)),
                RawIPv4Send.finish(packet, length: length) == nil
            else { fatalError("the probe stopped framing") }
            EthernetFrameWriter.writeHeader(into: frame, destination: gatewayMAC, source: ownMAC, etherType: etherType)
            blackHole(length)
        }
        benchmark.stopMeasurement()
        blackHole(frame.load(fromByteOffset: 38, as: UInt32.self))
    }

    // The same for an IPv6 probe: written 14 bytes into the frame, checked to be whole (the raw IPv6 socket
    // sends it as it stands: nothing to finish), and the Ethernet header written with EtherType 0x86DD.
    let flow6 = ProbeFlow(source: IPAddress("2001:db8:0:1::2")!, destination: IPAddress("2001:db8:100::a")!,
        sourcePort: sourcePort, destinationPort: destinationPort, epoch: 2)
    let digest6 = benchmarkCodec.digest(flow6)
    let frameBuffer6 = UnsafeMutableRawBufferPointer.allocate(byteCount: 14 + 64, alignment: 16)
    Benchmark("frame IPv6 probe (TX ring)") { benchmark in
        let frame = frameBuffer6
        let kind = sendKind, digest = digest6, flow = flow6
        let packet = UnsafeMutableRawBufferPointer(rebasing: frame[14...])
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            let ttl = UInt8(truncatingIfNeeded: i & 15) + 1
            let tag = ProbeTag(slot: UInt16(truncatingIfNeeded: i & 0x3FFF), ttl: ttl, attempt: 0)
            let stamp = benchmarkCodec.encode(tag, digest: digest)
            let length = kind.write(ProbeSpec(flow: flow, ttl: ttl, stamp: stamp, length: 40), into: packet)
            guard RawIPv6Send.check(UnsafeRawBufferPointer(packet), length: length) == nil else {
                fatalError("the IPv6 probe stopped framing")
            }
            EthernetFrameWriter.writeHeader(into: frame, destination: gatewayMAC, source: ownMAC,
                etherType: EthernetLayout.etherTypeIPv6)
            blackHole(length)
        }
        benchmark.stopMeasurement()
        blackHole(frame.load(fromByteOffset: 58, as: UInt32.self))
    }

    // MARK: Receive side

    /// Parses and verifies a reply against the benchmark flow (what the dispatcher does per reply).
    /// Through the run's kind as the engine holds it (`any ProbeKind`), against the digest the slot table
    /// holds. (The dispatcher itself now calls the concrete kind, so it no longer pays this row's one
    /// witness-table call; the row is kept as it was so its figures compare across versions.)
    @inline(__always) func verified(_ packet: UnsafeRawBufferPointer) -> (ParsedReply, ProbeTag)? {
        guard let parsed = sendKind.parse(packet) else { return nil }
        let (tag, mac) = benchmarkCodec.identify(parsed.tagWord)
        guard benchmarkCodec.verify(tag, macBits: mac, quotedIPID: parsed.quotedIPID, digest: sendDigest) else {
            return nil
        }
        return (parsed, tag)
    }
    let parseReply = pinned(timeExceededReply(quoting: ProbeTag(slot: 1234, ttl: 5, attempt: 0), probeTTL: 5))
    precondition(verified(parseReply)?.1.slot == 1234, "benchmark reply does not parse and verify")
    Benchmark("parse+validate reply") { benchmark in
        do {
            let packet = parseReply
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                guard let (parsed, tag) = verified(packet) else { fatalError("reply stopped parsing") }
                blackHole(parsed.responder)
                blackHole(tag)
            }
            benchmark.stopMeasurement()
        }
    }

    // The same through the concrete kind, as the dispatcher calls it (`Dispatcher.ConcreteKind`): the like-for-
    // like row for the figures from before the probe-kind seam, when the dispatcher called the TCP parser
    // directly.
    let concreteKind = TCPProbeKind(flags: .syn)
    @inline(__always) func verifiedConcrete(_ packet: UnsafeRawBufferPointer) -> (ParsedReply, ProbeTag)? {
        guard let parsed = concreteKind.parse(packet) else { return nil }
        let (tag, mac) = benchmarkCodec.identify(parsed.tagWord)
        guard benchmarkCodec.verify(tag, macBits: mac, quotedIPID: parsed.quotedIPID, digest: sendDigest) else {
            return nil
        }
        return (parsed, tag)
    }
    precondition(verifiedConcrete(parseReply)?.1.slot == 1234, "benchmark reply does not parse and verify")
    Benchmark("parse+validate reply, concrete kind") { benchmark in
        do {
            let packet = parseReply
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                guard let (parsed, tag) = verifiedConcrete(packet) else { fatalError("reply stopped parsing") }
                blackHole(parsed.responder)
                blackHole(tag)
            }
            benchmark.stopMeasurement()
        }
    }

    let grid = ProbeGrid(firstTTL: 1, maxTTL: 30, attempts: 3, slots: 4096)
    let dispatcher = Dispatcher(grid: grid, sourcePort: sourcePort, codec: benchmarkCodec)
    let slot = 1234
    let epoch: UInt16 = 2
    let ttl: UInt8 = 5
    let cell = grid.cell(slot: slot, ttl: ttl, attempt: 0)
    let sendTime: UInt64 = 1_700_000_000_000_000_000
    let dispatchFlow = ProbeFlow(source: vantage, destination: target, sourcePort: sourcePort,
        destinationPort: destinationPort, epoch: epoch)
    dispatcher.slots.publish(slot, flow: dispatchFlow, digest: benchmarkCodec.digest(dispatchFlow))
    dispatcher.sendTimes.store(cell, sendTime)
    let dispatchReply = pinned(
        timeExceededReply(
            quoting: ProbeTag(slot: UInt16(slot), ttl: ttl, attempt: 0), probeTTL: ttl))
    // Check once that the call takes the full path (matched and recorded), not an early reject.
    dispatcher.handleReply(dispatchReply, timestampNanos: sendTime + 42_000)
    let recorded = PackedReply(word: dispatcher.results.load(cell))
    precondition(dispatcher.counters.matched == 1 && recorded.outcome == .timeExceeded
        && recorded.responder == router && recorded.rttMicros == 42,
        "dispatch benchmark does not reach the match+record path: \(dispatcher.counters)")
    dispatcher.notifications.drain { _ in }

    Benchmark("dispatch reply") { benchmark in
        do {
            let packet = dispatchReply
            let before = dispatcher.counters

            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                dispatcher.results.storeRelaxed(cell, 0)  // the cell is empty again: not a duplicate
                dispatcher.handleReply(packet, timestampNanos: sendTime + 10_000 + UInt64(i))
            }
            // The scheduler's side of the notification ring, once per 1,000 replies (the ring holds
            // 16,384), so every push succeeds as in a run.
            dispatcher.notifications.drain { blackHole($0) }
            benchmark.stopMeasurement()

            let after = dispatcher.counters
            precondition(after.matched - before.matched == UInt64(benchmark.scaledIterations.count)
                && after.rejected == before.rejected && after.duplicates == before.duplicates
                && after.notifyOverflows == 0, "dispatch benchmark left the match+record path: \(after)")
        }
    }

    // Every other probe kind × family (KindBenchmarks.swift).
    kindBenchmarks()

    // Not per packet: loading an --asn-db table (ASNTableBenchmark.swift).
    asnTableBenchmarks()
}
