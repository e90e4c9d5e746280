// Engine scenarios on the simulated network: deterministic (virtual clock, seeded loss), no root.

import FastTraceWire
import Testing

@testable import FastTraceCore
import FastTraceTestSupport

let vantage = IPv4Address(192, 0, 2, 1)
func r(_ last: UInt8) -> IPv4Address { IPv4Address(198, 18, 0, last) }

/// Runs `requests` through an engine on `network`, returning results ordered by request index.
func trace(_ network: SimulatedNetwork, _ destinations: [(IPv4Address, UInt16)], configure: (inout EngineConfiguration) -> Void = { _ in },
    codec: ProbeTagCodec = ProbeTagCodec(key0: 1, key1: 2), engineSetup: (TraceEngine) -> Void = { _ in }
) throws -> (results: [TraceResult], summary: RunSummary) {
    var config = EngineConfiguration()
    config.waitNanos = 1_000_000_000
    config.sourcePort = 40000
    config.rate = 100_000
    configure(&config)
    let engine = TraceEngine(configuration: config, transport: network, clock: network, codec: codec)
    engineSetup(engine)
    var requests = destinations.enumerated().map {
        TraceRequest(index: $0.offset, destination: $0.element.0, port: $0.element.1, source: vantage)
    }.makeIterator()
    var results: [TraceResult] = []
    let summary = try engine.run(&requests) { results.append($0) }
    return (results.sorted { $0.request.index < $1.request.index }, summary)
}

let target = IPv4Address(198, 51, 100, 10)
let threeRouters: [SimulatedHop] = [.router(r(1)), .router(r(5)), .router(r(9))]

@Suite struct ScenarioTests {
    @Test func openPortIsReachedAfterEveryRouter() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let (results, summary) = try trace(net, [(target, 443)])
        let t = try #require(results.first)
        #expect(t.reached && t.state == .open && t.stopReason == .destination)
        #expect(t.hops.map(\.ttl) == [1, 2, 3, 4])
        #expect(t.hops.map(\.firstResponder) == [r(1), r(5), r(9), target])
        #expect(t.hops[0].probes.allSatisfy { $0.outcome == .timeExceeded && $0.rttMicros == 200 })
        #expect(t.hops[3].probes.allSatisfy { $0.outcome == .synAck && $0.rttMicros == 800 })
        #expect(summary.dispatch.matched == 12 && summary.dispatch.rejected == 0)
        #expect(summary.traces == 1 && summary.reached == 1)
    }

    @Test("A trace's start is when the kernel took its first probe: set, in admission order, before its replies")
    func startIsTheFirstProbe() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        // 100 probes/s: one probe every 10 ms of virtual time, round-robin, so the traces start 10 ms apart.
        let (results, _) = try trace(net, (0..<3).map { (IPv4Address(target.value + UInt32($0)), 443) }) { $0.rate = 100 }
        let starts = results.compactMap(\.startNanos)
        #expect(starts.count == 3)
        #expect(zip(starts, starts.dropFirst()).allSatisfy { $0 < $1 }, "\(starts)")
        #expect(starts.allSatisfy { $0 <= net.now() })
    }

    @Test func closedPortAnswersReset() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let t = try #require(try trace(net, [(target, 25)]).results.first)
        #expect(t.state == .closed && t.reached)
        #expect(t.hops.last?.probes.allSatisfy { $0.outcome == .reset } == true)
    }

    @Test func silentRouterShowsStarsAndTraceGoesOn() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .silent, .router(r(9))], destination: .listening(ports: [80]))
        }
        let t = try #require(try trace(net, [(target, 80)]).results.first)
        #expect(t.hops.map(\.firstResponder) == [r(1), nil, r(9), target])
        #expect(t.hops[1].probes == Array(repeating: .silent, count: 3))
        #expect(t.state == .open)
    }

    @Test func blackHoleStopsAtGapLimit() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        let t = try #require(try trace(net, [(target, 443)]) { $0.gapLimit = 4 }.results.first)
        #expect(t.stopReason == .gapLimit && t.state == .filtered && !t.reached)
        #expect(t.hops.count == 3 + 4)
        #expect(t.hops.suffix(4).allSatisfy { $0.outcome == .none })
        // Nothing is sent past the gap: the last router is TTL 3, so TTL 7 is the highest probed.
        #expect(net.sent.map(\.ttl).max() == 7)
        // Three probes per TTL and no re-ask: the silent TTLs are past routers that answered every probe,
        // in a run that has seen no sign of a rate limit (issue 11: each was asked again, 4 more probes
        // and 3 s more).
        #expect(net.sent.count == 7 * 3)
    }

    @Test func withoutGapLimitTheTraceRunsToMaxTTL() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        let t = try #require(try trace(net, [(target, 443)]) { $0.maxTTL = 12 }.results.first)
        #expect(t.stopReason == .maxTTL && t.hops.count == 12 && t.hops.last?.ttl == 12)
    }

    @Test func firstTTLSkipsNearHops() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let t = try #require(try trace(net, [(target, 443)]) { $0.firstTTL = 3 }.results.first)
        #expect(t.hops.map(\.ttl) == [3, 4])
        #expect(t.hops.map(\.firstResponder) == [r(9), target])
    }

    @Test func unreachableEndsTheTraceAtThatHop() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .unreachable(r(5), code: 13), .router(r(9))],
                destination: .listening(ports: [443]))
        }
        let t = try #require(try trace(net, [(target, 443)]).results.first)
        #expect(t.stopReason == .unreachable && t.state == .filtered)
        #expect(t.hops.count == 2 && t.hops[1].outcome == .unreachable(code: 13))
    }

    @Test func anUnreachableAtTheLastTTLIsWhyTheTraceStops() throws {
        // -m 2, and the router at TTL 2 answers unreachable: the stop is the unreachable, not -m.
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .unreachable(r(5), code: 0)], destination: .listening(ports: [443]))
        }
        let t = try #require(try trace(net, [(target, 443)]) { $0.maxTTL = 2 }.results.first)
        #expect(t.stopReason == .unreachable && t.state == .filtered && !t.reached)
        #expect(t.hops.count == 2 && t.hops[1].outcome == .unreachable(code: 0))
    }

    @Test func ecmpTraceStaysOnOnePathAndKeepsItsFiveTuple() throws {
        let alternatives = [r(13), r(17)]
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .ecmp(alternatives), .router(r(21))], destination: .listening(ports: [443]))
        }
        var seen = Set<IPv4Address>()
        for sport in UInt16(40000)..<40016 {
            let t = try #require(try trace(net, [(target, 443)]) { $0.sourcePort = sport }.results.first)
            let ecmpHop = t.hops[1].probes.compactMap(\.responder)
            #expect(ecmpHop.count == 3 && Set(ecmpHop).count == 1, "one path per 5-tuple")
            seen.formUnion(ecmpHop.compactMap(\.ipv4))
        }
        #expect(seen == Set(alternatives), "different source ports spread over both routers")
        let tuples = Set(net.sent.map { "\($0.source) \($0.sourcePort) \($0.destination) \($0.destinationPort)" })
        #expect(tuples.count == 16)
    }

    @Test func lossLeavesStarsButTheTraceStillFinishes() throws {
        let net = SimulatedNetwork(seed: 7) { _ in
            SimulatedPath(hops: threeRouters, destination: .listening(ports: [443]), loss: 0.3)
        }
        let t = try #require(try trace(net, [(target, 443)]) { $0.maxTTL = 8 }.results.first)
        let answered = t.hops.flatMap(\.probes).filter { $0.outcome != .none }.count
        let silent = t.hops.flatMap(\.probes).filter { $0.outcome == .none }.count
        #expect(answered > 0 && silent > 0)
        #expect(t.reached)  // 3 attempts at each TTL ≥ 4 with 30% loss: the destination is seen
    }

    @Test func destinationAnswerStopsProbingFurther() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let (results, _) = try trace(net, [(target, 443)]) { $0.window = 8 }
        #expect(results[0].hops.count == 4)
        // The window lets TTLs past the destination go out before the SYN-ACK is seen, but never past it.
        #expect(net.sent.allSatisfy { $0.ttl <= 8 })
    }

    @Test func partialSendsAreRetried() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        net.acceptLimit = 1
        let (results, summary) = try trace(net, (0..<20).map { (IPv4Address(target.value + UInt32($0)), 443) })
        #expect(results.count == 20 && results.allSatisfy { $0.state == .open && $0.hops.count == 4 })
        #expect(summary.probesSent == UInt64(net.sent.count))
    }

    @Test func rateLimitSpacesProbesInTime() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let (_, summary) = try trace(net, (0..<10).map { (IPv4Address(target.value + UInt32($0)), 443) }) { $0.rate = 100 }
        let first = try #require(net.sent.first?.time), last = try #require(net.sent.last?.time)
        let span = Double(last - first) / 1e9
        // 100 probes/s with a burst of at most maxBatch: n probes take at least (n - burst) / rate seconds.
        #expect(span >= Double(net.sent.count - 64) / 100)
        #expect(summary.probesSent == UInt64(net.sent.count))
    }

    @Test func thousandTracesThroughFewSlotsAreAllRight() throws {
        // Mixed kinds, 64 slots reused many times (every generation wraps), each result checked.
        func kind(_ a: IPv4Address) -> Int { Int(a.value & 3) }
        let net = SimulatedNetwork { dst in
            switch kind(dst) {
            case 0: SimulatedPath(hops: threeRouters, destination: .listening(ports: [443]))
            case 1: SimulatedPath(hops: [.router(r(1)), .silent, .router(r(9))], destination: .listening(ports: [80]))
            case 2: SimulatedPath(hops: threeRouters, destination: .blackHole)
            default: SimulatedPath(hops: [.router(r(1)), .ecmp([r(13), r(17)])], destination: .listening(ports: [443]))
            }
        }
        let targets = (0..<1000).map { (IPv4Address(IPv4Address(198, 19, 0, 0).value + UInt32($0)), UInt16(443)) }
        let (results, summary) = try trace(net, targets) {
            $0.maxInFlight = 64
            $0.gapLimit = 3
        }
        #expect(results.count == 1000)
        for t in results {
            switch kind(t.request.destination.ipv4!) {
            case 0:
                #expect(t.state == .open && t.hops.map(\.firstResponder) == [r(1), r(5), r(9), t.request.destination.ipv4])
            case 1:
                #expect(t.state == .closed && t.hops.map(\.firstResponder) == [r(1), nil, r(9), t.request.destination.ipv4])
            case 2:
                #expect(t.state == .filtered && t.stopReason == .gapLimit && t.hops.count == 6, "\(t.stopReason) \(t.hops.map(\.kind))")
            default:
                #expect(t.state == .open && t.hops.count == 3 && Set(t.hops[1].probes.compactMap(\.responder)).count == 1)
            }
        }
        #expect(summary.dispatch.forged == 0 && summary.dispatch.malformed == 0)
        #expect(summary.traces == 1000 && summary.reached == 750)
    }

    @Test func forgedMalformedAndDuplicateRepliesAreCountedNotRecorded() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        let start = net.now()
        // A SYN-ACK from the target to our port, right addresses, made-up acknowledgement numbers.
        for i in 0..<64 {
            net.inject(synAck(from: target, to: vantage, sport: 443, dport: 40000, ack: UInt32(0x9E37_79B9) &* UInt32(i + 1)),
                at: start + 5_000_000)
        }
        net.inject([0x45, 0, 0], at: start + 5_000_000)  // truncated
        net.inject(synAck(from: target, to: vantage, sport: 443, dport: 999, ack: 1), at: start + 5_000_000)  // other port
        let (results, summary) = try trace(net, [(target, 443)]) { $0.gapLimit = 2 }
        let t = try #require(results.first)
        #expect(t.state == .filtered && !t.reached, "no forged SYN-ACK may mark the port open")
        #expect(summary.dispatch.malformed == 1 && summary.dispatch.foreign == 1)
        #expect(summary.dispatch.forged + summary.dispatch.stale == 64)
        #expect(summary.dispatch.matched == 9)  // three routers × three attempts
    }

    @Test func aReplayedReplyIsADuplicate() throws {
        let codec = ProbeTagCodec(key0: 1, key1: 2)
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        // The engine's first probe is slot 0, epoch 1, TTL 1, attempt 0; replay its time exceeded shortly
        // after the real one.
        let stamp = codec.encode(ProbeTag(slot: 0, ttl: 1, attempt: 0),
            flow: ProbeFlow(source: vantage, destination: target, sourcePort: 40000, destinationPort: 443, epoch: 1))
        net.inject(timeExceeded(from: r(1), probeSource: vantage, probeDestination: target, sport: 40000, dport: 443,
            seq: stamp.sequence, ipID: stamp.ipID), at: net.now() + 500_000)
        let (results, summary) = try trace(net, [(target, 443)], codec: codec)
        #expect(results[0].state == .open)
        #expect(summary.dispatch.duplicates == 1 && summary.dispatch.matched == 12)
    }

    @Test func cancellingReportsTracesInFlight() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        var turns = 0
        let (results, summary) = try trace(net, (0..<5).map { (IPv4Address(target.value + UInt32($0)), 443) },
            engineSetup: { engine in
                engine.shouldCancel = {
                    turns += 1
                    return turns > 200
                }
            })
        #expect(summary.cancelled)
        #expect(results.count == 5)
        #expect(results.allSatisfy { $0.hops.prefix(3).map(\.firstResponder) == [r(1), r(5), r(9)] })
    }

    @Test func hopsAreReportedInOrderAsTheySettle() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .silent, .router(r(9))], destination: .listening(ports: [443]))
        }
        var seen: [UInt8] = []
        _ = try trace(net, [(target, 443)], engineSetup: { $0.onHop = { _, hop in seen.append(hop.ttl) } })
        #expect(seen == [1, 2, 3, 4])
    }
}

func synAck(from: IPv4Address, to: IPv4Address, sport: UInt16, dport: UInt16, ack: UInt32) -> [UInt8] {
    SimulatedNetwork.tcpReply(from: from, to: to, sourcePort: sport, destinationPort: dport, acknowledgement: ack,
        flags: TCPLayout.syn | TCPLayout.ack)
}

/// A time exceeded from `from` quoting a bare 40-byte SYN with these fields.
func timeExceeded(from: IPv4Address, probeSource: IPv4Address, probeDestination: IPv4Address, sport: UInt16,
    dport: UInt16, seq: UInt32, ipID: UInt16 = 1, type: UInt8 = 11, code: UInt8 = 0) -> [UInt8]
{
    var probe = [UInt8](repeating: 0, count: 40)
    _ = probe.withUnsafeMutableBytes {
        TCPProbeWriter.write(TCPProbe(source: probeSource, destination: probeDestination, sourcePort: sport,
            destinationPort: dport, sequence: seq, ttl: 1, ipID: ipID), into: $0)
    }
    return SimulatedNetwork.icmpError(type: type, code: code, from: from, quoting: probe)
}

@Suite struct ReceiveLagTests {
    @Test func repliesStampedInTimeCountEvenWhenReadLate() throws {
        // Every reply reaches user space 1.5 s after the kernel stamped it, longer than the 1 s wait;
        // the RTTs (kernel timestamps) are well inside it, so every probe is answered.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        net.receiveLagNanos = 1_500_000_000
        let t = try #require(try trace(net, [(target, 443)]).results.first)
        #expect(t.state == .open && t.hops.count == 4)
        #expect(t.hops.allSatisfy { $0.probes.allSatisfy { $0.outcome != .none } })
    }

    @Test func repliesSlowerThanTheWaitAreStars() throws {
        // 3 hops × 400 ms per hop: the third router answers after 1.2 s, past a 1 s wait.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        net.perHopDelayNanos = 400_000_000
        let t = try #require(try trace(net, [(target, 443)]) { $0.maxTTL = 4 }.results.first)
        #expect(t.hops.map(\.firstResponder) == [r(1), r(5), nil, nil])
        #expect(!t.reached && t.stopReason == .maxTTL)
    }

    @Test func aStalledReceiverCannotHangTheRun() throws {
        // Replies reach user space 10 s late: past maxReceiveLag the timeouts are taken anyway.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        net.receiveLagNanos = 10_000_000_000
        let start = net.now()
        let (results, _) = try trace(net, [(target, 443)]) { $0.maxTTL = 4 }
        #expect(results.count == 1)
        #expect(net.now() - start < 8_000_000_000)
    }
}

@Suite struct RetryTests {
    @Test func retriesRecoverLostProbes() throws {
        // 40% loss, one column per hop: without retries some hops print *, with three retries (four
        // tries) the same seeded loss leaves every hop answered; each column still has one entry.
        func run(retries: Int) throws -> (TraceResult, Int) {
            let net = SimulatedNetwork(seed: 11) { _ in
                SimulatedPath(hops: threeRouters + threeRouters, destination: .listening(ports: [443]), loss: 0.4)
            }
            let t = try #require(try trace(net, [(target, 443)]) {
                $0.probesPerHop = 1
                $0.retries = retries
                $0.maxTTL = 10
            }.results.first)
            return (t, net.sent.count)
        }
        let (without, sentWithout) = try run(retries: 0)
        let (with, sentWith) = try run(retries: 3)
        #expect(without.hops.contains { $0.outcome == .none })
        #expect(with.hops.count == 7 && with.hops.allSatisfy { $0.probes.count == 1 && $0.outcome != .none })
        #expect(sentWith > sentWithout)
    }

    @Test func aSilentHopIsTriedOncePerRetry() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .silent, .router(r(9))], destination: .listening(ports: [443]))
        }
        let t = try #require(try trace(net, [(target, 443)]) {
            $0.probesPerHop = 2
            $0.retries = 2
        }.results.first)
        #expect(t.hops.map(\.firstResponder) == [r(1), nil, r(9), target])
        #expect(t.hops[1].probes == [.silent, .silent])
        // Two columns × three tries at the silent TTL, and no re-ask: no router ever answered there, past
        // a router that answered every probe, in a run with no sign of a rate limit (issue 11; it was
        // asked once more later before). Answered TTLs need one try per column.
        #expect(net.sent.filter { $0.ttl == 2 }.count == 6)
        #expect(net.sent.filter { $0.ttl == 1 }.count == 2)
        // Every try carries its own attempt number, so no two probes share a sequence number.
        #expect(Set(net.sent.map(\.sequence)).count == net.sent.count)
    }

    @Test func tooManyTriesForTheTagIsRefused() {
        var config = EngineConfiguration()
        config.probesPerHop = 3
        config.retries = 2
        #expect(config.problem == "probes per hop × (1 + retries) must be at most 8")
    }
}

@Suite struct DNATTests {
    @Test func quotesOfTheTranslatedDestinationAreMatchedAndReported() throws {
        let inside = IPv4Address(198, 18, 96, 10)
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: threeRouters + [.router(r(13))], destination: .listening(ports: [443]),
                dnat: (afterTTL: 2, to: inside))
        }
        let (results, summary) = try trace(net, [(target, 443)])
        let t = try #require(results.first)
        #expect(t.state == .open && t.hops.count == 5)
        #expect(t.hops.map(\.translatedDestination) == [nil, nil, inside, inside, nil])
        #expect(t.hops.map(\.firstResponder) == [r(1), r(5), r(9), r(13), target])
        #expect(summary.dispatch.stale == 0 && summary.dispatch.matched == 15)
    }

    @Test func aQuoteForAnotherPortIsStillRejected() throws {
        // Right tag, right slot and generation, translated destination, but the wrong destination port:
        // relaxing the address for DNAT does not relax anything else.
        let codec = ProbeTagCodec(key0: 1, key1: 2)
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let stamp = codec.encode(ProbeTag(slot: 0, ttl: 1, attempt: 0),
            flow: ProbeFlow(source: vantage, destination: target, sourcePort: 40000, destinationPort: 443, epoch: 1))
        net.inject(timeExceeded(from: r(1), probeSource: vantage, probeDestination: IPv4Address(198, 18, 96, 10),
            sport: 40000, dport: 80, seq: stamp.sequence, ipID: stamp.ipID), at: net.now() + 100_000)
        let (results, summary) = try trace(net, [(target, 443)], codec: codec)
        #expect(results[0].hops.allSatisfy { $0.translatedDestination == nil })
        #expect(summary.dispatch.forged == 1 && summary.dispatch.matched == 12)
    }
}

/// tcptraceroute's matching options: `--track-port` (the path rewrites the IP ID) and
/// `--no-dnat-strict` (quotes naming another destination are not ours).
@Suite struct QuoteMatchingTests {
    @Test func aPathThatRewritesTheIPIDNeedsTrackPort() throws {
        let makeNet = {
            let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
            net.rewrittenIPID = 0x1234
            return net
        }
        // By default the quoted ID is part of the MAC: every router's answer is refused, only the
        // destination (a SYN-ACK quotes no ID) is heard.
        let (strict, strictSummary) = try trace(makeNet(), [(target, 443)]) { $0.reasks = 0 }
        #expect(strict[0].reached && strict[0].hops.prefix(3).allSatisfy { $0.firstResponder == nil })
        // Counted as their own reason (everything but the ID names a probe of ours), not as forged.
        #expect(strictSummary.dispatch.ipIDRewritten == 9 && strictSummary.dispatch.forged == 0)
        #expect(strictSummary.dispatch.ipIDRewriteSuspected)
        // --track-port: matched by the quoted TCP header alone.
        let (tracked, trackedSummary) = try trace(makeNet(), [(target, 443)]) {
            $0.reasks = 0
            $0.matchQuotedIPID = false
        }
        #expect(tracked[0].hops.map(\.firstResponder) == [r(1), r(5), r(9), target])
        #expect(trackedSummary.dispatch.forged == 0 && trackedSummary.dispatch.matched == 12)
        #expect(trackedSummary.dispatch.ipIDRewritten == 0 && !trackedSummary.dispatch.ipIDRewriteSuspected)
    }

    @Test func aHopThatRewritesTheIPIDIsCountedAndHinted() throws {
        // A scrubber after TTL 2 rewrites the ID: routers 1 and 2 quote the probe as sent and are
        // heard; the routers past it quote another ID, fail the keyed check on the ID alone and are
        // counted as such (3 probes each at TTLs 3 and 4), so the run can say `--track-port` is the
        // remedy. The destination (a SYN-ACK quotes nothing) is reached either way.
        let path = SimulatedPath(hops: [.router(r(1)), .router(r(5)), .router(r(9)), .router(r(13))],
            destination: .listening(ports: [443]), ipIDRewrite: (afterTTL: 2, to: 0x4242))
        let (results, summary) = try trace(SimulatedNetwork { _ in path }, [(target, 443)]) { $0.reasks = 0 }
        let t = try #require(results.first)
        #expect(t.reached && t.hops.map(\.firstResponder) == [r(1), r(5), nil, nil, target])
        #expect(summary.dispatch.ipIDRewritten == 6 && summary.dispatch.forged == 0)
        #expect(summary.dispatch.matched == 9)
        #expect(summary.dispatch.ipIDRewriteSuspected)
        // Without the rewrite nothing is counted and nothing hinted.
        let clean = SimulatedPath(hops: path.hops, destination: .listening(ports: [443]))
        let (_, cleanSummary) = try trace(SimulatedNetwork { _ in clean }, [(target, 443)]) { $0.reasks = 0 }
        #expect(cleanSummary.dispatch.ipIDRewritten == 0 && !cleanSummary.dispatch.ipIDRewriteSuspected)
    }

    @Test func madeUpQuotesDoNotSuggestTrackPort() {
        // A forger's quotes land as ipIDRewritten about 1 time in 128; the hint needs 1 in 32 of forged.
        var c = DispatchCounters()
        c.forged = 1280
        c.ipIDRewritten = 10
        #expect(!c.ipIDRewriteSuspected)
        c.ipIDRewritten = 40
        #expect(c.ipIDRewriteSuspected)
    }

    @Test func noDNATStrictRefusesTranslatedQuotes() throws {
        let inside = IPv4Address(198, 18, 96, 10)
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: threeRouters + [.router(r(13))], destination: .listening(ports: [443]),
                dnat: (afterTTL: 2, to: inside))
        }
        let (results, summary) = try trace(net, [(target, 443)]) {
            $0.reasks = 0
            $0.acceptTranslatedQuotes = false
        }
        let t = try #require(results.first)
        #expect(t.state == .open)
        #expect(t.hops.map(\.firstResponder) == [r(1), r(5), nil, nil, target])
        #expect(t.hops.allSatisfy { $0.translatedDestination == nil })
        #expect(summary.dispatch.foreign == 6 && summary.dispatch.matched == 9)
    }
}
