// The engine where real networks are unkind: late replies across slot reuse, forged sprays, a RST that
// acknowledges payload, a wall-clock step, contradictory answers in one turn, refused sends, ICMP rate
// limits and interruption. Each test names the wrong answer it guards against.

import FastTraceWire
import Testing

@testable import FastTraceCore
import FastTraceTestSupport

/// A router address that belongs to one destination only, so a reply landing in the wrong trace shows
/// up as an address that trace could never have met.
func ownRouter(_ destination: IPv4Address, hop: UInt8) -> IPv4Address {
    IPv4Address(198, 18, UInt8(truncatingIfNeeded: destination.value), 100 + hop)
}

@Suite struct LateAndForgedTests {
    @Test func lateRepliesAcrossSlotReuseNeverLandInAnotherTrace() throws {
        // 3,000 traces through at most 4 in flight; every TTL-2 answer arrives 0.3 to 2.5 s late (after
        // its 0.2 s wait, often after its trace finished and its slot rested and was reused).
        let destinations = (0..<3000).map { IPv4Address(198, 51, 100 + UInt8($0 / 250), UInt8($0 % 250) + 1) }
        let net = SimulatedNetwork { d in
            SimulatedPath(hops: [.router(r(1)), .router(ownRouter(d, hop: 2)), .router(ownRouter(d, hop: 3))],
                destination: .listening(ports: [443]))
        }
        var lateCount = 0
        net.extraReplyDelay = { probe in
            guard probe.ttl == 2 else { return nil }
            lateCount += 1
            return 300_000_000 + UInt64(probe.sequence % 2_200) * 1_000_000
        }
        let (results, summary) = try trace(net, destinations.map { ($0, 443) }) {
            $0.waitNanos = 200_000_000
            $0.maxInFlight = 4
            $0.probesPerHop = 1
            $0.reasks = 0
        }
        #expect(results.count == 3000)
        for t in results {
            let d = t.request.destination.ipv4!
            #expect(t.state == .open && t.stopReason == .destination)
            #expect(t.hops.map(\.firstResponder) == [r(1), nil, ownRouter(d, hop: 3), d], "trace to \(d)")
        }
        // Every late answer was delivered and refused: counted as late (slot still resting) or as failing
        // the MAC of the slot's new occupant. None was matched.
        #expect(summary.dispatch.matched == 3000 * 3)
        // (The last few are still on their way when the run ends.)
        // (A late reply fails the new occupant's MAC; 1 in 128 pass its 7 sequence-number bits and fail on
        // the IP ID alone, counted as such, too few to be taken for a path rewriting the ID.)
        let refused = summary.dispatch.stale + summary.dispatch.forged + summary.dispatch.ipIDRewritten
        #expect(!summary.dispatch.ipIDRewriteSuspected)
        #expect(refused <= UInt64(lateCount) && refused >= UInt64(lateCount) * 9 / 10)
    }

    @Test("A reply after its probe's wait, while its trace is still open, is counted stale, not matched: every matched reply shows on a hop",
        arguments: [0, 2])
    func aLateReplyToAnOpenTraceIsStale(reasks: Int) throws {
        // A new-user trial: a next hop that never resolves. The host's own "host unreachable" came about
        // 3 s after each probe, past its wait, while the trace was still open (its re-asks pending); the
        // summary counted it matched, and no hop showed it.
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .router(r(5)), .unreachable(r(9), code: 1)], destination: .blackHole)
        }
        // 0.2 s past the 1 s wait: the first window's answers arrive while TTLs 9-16 are still out.
        net.extraReplyDelay = { probe in probe.ttl >= 3 ? 1_200_000_000 : nil }
        let (results, summary) = try trace(net, [(target, 443)]) {
            $0.reasks = reasks
            $0.probesPerHop = 2
            $0.maxTTL = 16
        }
        let t = try #require(results.first)
        let shown = t.hops.flatMap(\.probes).filter { $0.responder != nil }.count
        #expect(t.hops.prefix(2).map(\.firstResponder) == [r(1), r(5)])
        #expect(t.hops.dropFirst(2).allSatisfy { $0.firstResponder == nil }, "\(t.hops)")
        #expect(summary.dispatch.matched == UInt64(shown), "\(summary.dispatch)")
        #expect(summary.dispatch.stale > 0, "\(summary.dispatch)")
    }

    @Test("A receive path that lags past maxReceiveLag: the replies it delivers after their probes were given up are counted stale, not matched; every matched reply shows on a hop")
    func repliesAfterALagTimeoutAreStale() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        // Every reply reaches the engine 1.5 s after its (true) timestamp; the engine gives up waiting for the
        // receive path 0.5 s past each deadline.
        net.receiveLagNanos = 1_500_000_000
        let (results, summary) = try trace(net, [(target, 443)]) {
            $0.waitNanos = 500_000_000
            $0.maxReceiveLagNanos = 500_000_000
            $0.maxTTL = 16
            $0.probesPerHop = 1
            $0.reasks = 0
        }
        let t = try #require(results.first)
        let shown = t.hops.flatMap(\.probes).filter { $0.responder != nil }.count
        #expect(summary.dispatch.matched == UInt64(shown), "\(summary.dispatch), \(shown) shown")
    }

    @Test func aForgedSprayGetsNothingAccepted() throws {
        // 64 traces toward black holes keep ~500 probes outstanding for a second; meanwhile an off-path
        // forger who knows our address, source port and every destination and port sprays 100,000 time
        // exceeded and 100,000 SYN-ACKs with random sequence numbers and IPv4 IDs.
        let destinations = (0..<64).map { IPv4Address(203, 0, 113, UInt8($0 + 1)) }
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        var rng = SeededRandom(seed: 11)
        let start = net.now()
        for i in 0..<100_000 {
            let d = destinations[i % destinations.count]
            let word = UInt32(truncatingIfNeeded: rng.next())
            let at = start + 2_000_000 + UInt64(i) * 8_000
            net.inject(timeExceeded(from: r(77), probeSource: vantage, probeDestination: d, sport: 40000, dport: 443,
                seq: word, ipID: UInt16(truncatingIfNeeded: rng.next())), at: at)
            net.inject(synAck(from: d, to: vantage, sport: 443, dport: 40000, ack: word &+ 1), at: at + 4_000)
        }
        let (results, summary) = try trace(net, destinations.map { ($0, 443) }) { $0.gapLimit = 3 }
        #expect(results.allSatisfy { $0.state == .filtered && !$0.reached })
        #expect(results.allSatisfy { $0.hops.prefix(3).map(\.firstResponder) == [r(1), r(5), r(9)] })
        #expect(results.allSatisfy { t in t.hops.allSatisfy { !$0.probes.contains { $0.responder == r(77) } } })
        // Exactly the genuine answers were matched: 3 routers × 3 probes per trace; the spray was refused.
        #expect(summary.dispatch.matched == 64 * 9)
        #expect(summary.dispatch.forged + summary.dispatch.ipIDRewritten + summary.dispatch.stale == 200_000)
        // Random words pass the sequence number's 7 MAC bits 1 time in 128: never enough to suggest
        // the path rewrites the IP ID.
        #expect(!summary.dispatch.ipIDRewriteSuspected)
    }

    @Test func aResetToASynWithPayloadIsClosedNotFiltered() throws {
        // `-l 100`: 60 bytes of payload, which the RST acknowledges (seq + 1 + 60).
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let (results, summary) = try trace(net, [(target, 25), (IPv4Address(target.value + 1), 443)]) {
            $0.packetLength = 100
        }
        #expect(results[0].state == .closed && results[0].reached && results[0].stopReason == .destination)
        #expect(results[0].hops.last?.probes.allSatisfy { $0.outcome == .reset } == true)
        #expect(results[1].state == .open)
        #expect(summary.dispatch.rejected == 0)
    }

    @Test func aReplyStampedBeforeItsProbeWasSentIsRefused() throws {
        // A genuine-looking answer to the first probe, stamped before the engine sent anything.
        let codec = ProbeTagCodec(key0: 1, key1: 2)
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let stamp = codec.encode(ProbeTag(slot: 0, ttl: 1, attempt: 0),
            flow: ProbeFlow(source: vantage, destination: target, sourcePort: 40000, destinationPort: 443, epoch: 1))
        var injected = false
        net.onSend = { probe in
            guard !injected else { return }
            injected = true
            // Stamped 1 ms before now: before this probe left.
            net.inject(timeExceeded(from: r(66), probeSource: vantage, probeDestination: target, sport: 40000,
                dport: 443, seq: stamp.sequence, ipID: stamp.ipID), at: probe.time - 1_000_000)
        }
        let (results, summary) = try trace(net, [(target, 443)], configure: { $0.probesPerHop = 1 }, codec: codec)
        #expect(results[0].hops[0].firstResponder == r(1))
        #expect(summary.dispatch.premature == 1)
    }

    @Test func aReplyToAProbeTheKernelRefusedIsRefused() throws {
        // The transport takes one probe per send call; the rest of each batch is refused and sent later.
        // A reply naming a refused probe (never on the wire) must not match.
        let codec = ProbeTagCodec(key0: 1, key1: 2)
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        net.acceptLimit = 1
        let flow = ProbeFlow(source: vantage, destination: target, sourcePort: 40000, destinationPort: 443, epoch: 1)
        var injected = false
        net.onSend = { probe in
            guard !injected else { return }
            injected = true
            // The first batch holds TTL 1 attempt 0 (accepted) and TTL 1 attempt 1 (refused) at least.
            let refused = codec.encode(ProbeTag(slot: 0, ttl: 1, attempt: 1), flow: flow)
            net.inject(timeExceeded(from: r(66), probeSource: vantage, probeDestination: target, sport: 40000,
                dport: 443, seq: refused.sequence, ipID: refused.ipID), at: probe.time + 1_000)
        }
        let (results, summary) = try trace(net, [(target, 443)], configure: { $0.probeSpacingNanos = 0 }, codec: codec)
        #expect(results[0].hops[0].probes.allSatisfy { $0.responder == r(1) })
        #expect(summary.dispatch.premature == 1)
    }
}

@Suite struct ClockAndStopTests {
    @Test(arguments: [Int64(10_000_000_000), -10_000_000_000])
    func aWallClockStepChangesNothing(step: Int64) throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        var stepped = false
        net.onSend = { probe in
            if !stepped && net.sent.count == 40 {
                stepped = true
                net.stepWallClock(by: step)
            }
        }
        let destinations = (0..<20).map { (IPv4Address(target.value + UInt32($0)), UInt16(443)) }
        let (results, _) = try trace(net, destinations)
        #expect(stepped)
        for t in results {
            #expect(t.state == .open)
            #expect(t.hops.map(\.firstResponder) == [r(1), r(5), r(9), t.request.destination.ipv4])
            #expect(t.hops.allSatisfy { $0.probes.allSatisfy { ($0.rttMicros ?? .max) < 1_000_000 } })
        }
    }

    @Test func anUnreachableAndASynAckInOneTurnGiveOneConsistentAnswer() throws {
        // TTL 2 is silent; a late unreachable for its first probe arrives at the same moment as the
        // destination's SYN-ACK at TTL 4, so the scheduler reads both in one turn.
        let codec = ProbeTagCodec(key0: 1, key1: 2)
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .silent, .router(r(9))], destination: .listening(ports: [443]))
        }
        let flow = ProbeFlow(source: vantage, destination: target, sourcePort: 40000, destinationPort: 443, epoch: 1)
        var injected = false
        net.onSend = { probe in
            guard !injected, probe.ttl == 4 else { return }
            injected = true
            let stamp = codec.encode(ProbeTag(slot: 0, ttl: 2, attempt: 0), flow: flow)
            net.inject(timeExceeded(from: r(5), probeSource: vantage, probeDestination: target, sport: 40000,
                dport: 443, seq: stamp.sequence, ipID: stamp.ipID, type: 3, code: 13),
                at: probe.time + 4 * net.perHopDelayNanos)
        }
        let (results, _) = try trace(net, [(target, 443)], codec: codec)
        let t = try #require(results.first)
        #expect(injected)
        // What the network said: the port answered SYN-ACK at TTL 4. reached, state and stop agree, and
        // the unreachable stays visible where it came from.
        #expect(t.reached && t.state == .open && t.stopReason == .destination)
        #expect(t.hops.count == 4 && t.hops.last?.firstResponder == target)
        #expect(t.hops[1].probes[0].outcome == .unreachable(code: 13))
    }

    @Test func anInterruptedTraceSaysSoAndShowsNoTTLItNeverProbed() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        var turns = 0
        let (results, summary) = try trace(net, [(target, 443)], configure: { $0.window = 2; $0.gapLimit = 0 },
            engineSetup: { engine in
                engine.shouldCancel = {
                    turns += 1
                    return turns > 20
                }
            })
        let t = try #require(results.first)
        #expect(summary.cancelled && summary.interrupted == 1)
        // Cut short before the destination said anything: no state (not `filtered`, which is a finding).
        #expect(t.stopReason == .interrupted && !t.reached && t.state == .unknown)
        // Only TTLs some probe went to; probes not waited for say so instead of `*`.
        // The routers at TTL 1-3 answered; TTLs 4 and 5 (the window of 2 past them) were probed and not
        // waited for; nothing beyond was probed, so nothing beyond is shown.
        #expect(t.hops.map(\.ttl) == [1, 2, 3, 4, 5])
        #expect(t.hops.prefix(3).map(\.firstResponder) == [r(1), r(5), r(9)])
        #expect(t.hops.suffix(2).allSatisfy { $0.kind == "interrupted" && $0.probes.contains { $0.silence == .interrupted } })
        #expect(!t.hops.contains { $0.probes.contains { $0.silence == .timedOut } })
    }
}

@Suite struct RateLimitTests {
    /// Near routers that answer 1 ICMP error a second after a burst of 6, as Linux's defaults do.
    static let limitedPath: [SimulatedHop] = [
        .rateLimited(r(1), perSecond: 1, burst: 6), .rateLimited(r(5), perSecond: 1, burst: 6),
        .rateLimited(r(9), perSecond: 1, burst: 6), .router(r(13)),
    ]

    @Test func rateLimitedNearHopsNeitherStopTracesNorHideTheDestination() throws {
        let destinations = (0..<200).map { (IPv4Address(198, 51, 100, UInt8($0 + 1)), UInt16(443)) }
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.limitedPath, destination: .listening(ports: [443])) }
        let (results, summary) = try trace(net, destinations) {
            $0.gapLimit = 2
            $0.probesPerHop = 1
        }
        #expect(net.rateLimitedDrops > 0)
        for t in results {
            // Reach, state and the destination's TTL are right for every trace.
            #expect(t.reached && t.state == .open && t.stopReason == .destination)
            #expect(t.hops.count == 5 && t.hops.last?.firstResponder == t.request.destination)
            // Every hop is either what the network said or marked as rate-limited (shown, or likely where
            // the run cannot tell which router the trace met): never a wrong router, never an unexplained `*`.
            for (i, hop) in t.hops.prefix(3).enumerated() {
                #expect(hop.firstResponder == [r(1), r(5), r(9)][i] || hop.isRateLimited || hop.isLikelyRateLimited,
                    "\(t.request.destination) ttl \(hop.ttl): \(hop.kind)")
            }
            #expect(t.hops[3].firstResponder == r(13))
        }
        // One path: the routers are known from the traces that heard them, so most silences are shown
        // rate-limited; only a silent TTL between two silent ones (TTL 2 here) cannot name its router.
        print("rate-limited \(summary.rateLimitedHops), likely \(summary.likelyRateLimitedHops)")
        #expect(summary.rateLimitedHops > summary.likelyRateLimitedHops && summary.rateLimitedPositions >= 1)
    }

    /// A lab-like path: six routers, every one rate-limiting ICMP to us as Linux does by default.
    static let longLimitedPath: [SimulatedHop] = [UInt8(1), 5, 9, 13, 17, 21].map { (last: UInt8) -> SimulatedHop in
        .rateLimited(r(last), perSecond: 1, burst: 6)
    }

    /// 400 traces to open ports behind `longLimitedPath`, started cold: the routers' ICMP budgets are
    /// already spent (earlier traffic to us), and another prober on this host takes `taken` of each
    /// router's refill (per second) for the first 6 s.
    static func coldStartRun(taken: Double, configure: (inout EngineConfiguration) -> Void) throws
        -> (results: [TraceResult], summary: RunSummary)
    {
        let destinations: [(IPv4Address, UInt16)] = (0..<400).map { (i: Int) in
            (IPv4Address(198, 19, UInt8(i / 250), UInt8(i % 250 + 1)), 443)
        }
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.longLimitedPath, destination: .listening(ports: [443])) }
        net.initialICMPTokens = 0
        net.competingICMP = (perSecond: taken, untilNanos: net.now() + 6_000_000_000)
        return try trace(net, destinations) {
            $0.maxTTL = 12
            $0.rate = 2000
            configure(&$0)
        }
    }

    @Test(arguments: [(3, 3), (1, 2), (3, 2), (1, 3)])
    func aColdStartStopsNoTraceShort(probes: Int, gap: Int) throws {
        // Half of every refill taken: the first traces hear almost nothing from the routers, long
        // before anything is known of their positions.
        let (results, _) = try Self.coldStartRun(taken: 0.5) {
            $0.gapLimit = gap
            $0.probesPerHop = probes
        }
        let short = results.filter { t in !(t.reached && t.state == PortState.open && t.hops.count == 7) }
        let first: String = short.first.map { (t: TraceResult) -> String in
            "\(t.request.destination) \(t.state) \(t.stopReason) \(t.hops.map(\.kind))"
        } ?? ""
        #expect(short.isEmpty, "\(short.count) of \(results.count) wrong, first: \(first)")
    }

    @Test func aHarsherColdStartIsSaidInTheSummary() throws {
        // Another prober takes 90 % of every refill for 6 s: the first traces settle on silence before
        // any rate limit is caught, and look like black holes. Those cannot be told apart yet; the
        // summary says how many traces were reported before a limit was caught, so none is silently so.
        // (When the whole run ends before the routers answer again, nothing tells it from a network that
        // drops all ICMP: see the README's limits.)
        let (results, summary) = try Self.coldStartRun(taken: 0.9) {
            $0.gapLimit = 3
            $0.maxInFlight = 40  // so that the run outlasts the competitor and catches the limits
        }
        let short = results.filter { t in !t.reached }
        #expect(summary.rateLimitedPositions > 0)
        #expect(summary.reportedBeforeLimits >= short.count && summary.reportedBeforeLimits > 0,
            "\(summary.reportedBeforeLimits) flagged, \(short.count) stopped short")
    }

    @Test func underRateLimitsABlackHoleIsLookedPastOnlyAGapBeyondTheDeepestRouter() throws {
        // Rate limits caught, half the destinations black holes after six limited routers: their TTLs
        // past the routers are unexplored at first, but no router of the run ever answered there, so
        // they are looked past by at most --gap TTLs, not to -m.
        let net = SimulatedNetwork { d in
            SimulatedPath(hops: Self.longLimitedPath, destination: d.value & 1 == 0 ? .listening(ports: [443]) : .blackHole)
        }
        let destinations: [(IPv4Address, UInt16)] = (0..<200).map { (i: Int) in
            (IPv4Address(198, 19, 1, UInt8(i + 1)), 443)
        }
        let (results, summary) = try trace(net, destinations) {
            $0.gapLimit = 2
            $0.maxTTL = 20
            $0.maxInFlight = 40
        }
        #expect(summary.rateLimitedPositions > 0)
        for t in results {
            if t.request.destination.value & 1 == 0 {
                #expect(t.reached && t.state == .open && t.hops.count == 7)
            } else {
                // Six routers, at most --gap looked past, then --gap silent: 10 TTLs at most.
                #expect(!t.reached && t.stopReason == .gapLimit && t.hops.count <= 6 + 2 + 2, "\(t.hops.count) hops")
            }
        }
    }

    @Test func aSilentRouterIsNotRateLimited() throws {
        // Branches after r(9): one router answers, the other is silent; limits off everywhere. The silent
        // branch's hop shares a position with a router answering faster than any per-destination limit,
        // in a run that has seen no sign of a rate limit: it is not asked again, and stays `none`.
        let net = SimulatedNetwork { d in
            let branch: SimulatedHop = d.value & 1 == 0 ? .router(r(21)) : .silent
            return SimulatedPath(hops: threeRouters + [branch], destination: .listening(ports: [443]))
        }
        let destinations = (0..<100).map { (IPv4Address(198, 51, 100, UInt8($0 + 1)), UInt16(443)) }
        let (results, summary) = try trace(net, destinations) { $0.gapLimit = 2 }
        #expect(summary.rateLimitedHops == 0 && summary.rateLimitedPositions == 0)
        for t in results {
            #expect(t.state == .open && t.hops.count == 5)
            let fourth = t.hops[3]
            if t.request.destination.value & 1 == 0 {
                #expect(fourth.firstResponder == r(21))
            } else {
                #expect(fourth.kind == "none" && fourth.probes.allSatisfy { $0.silence == .timedOut })
            }
        }
        // (It was asked again once per trace before issue 11, to the same result.)
        #expect(summary.reasksSent == 0)
    }

    @Test func aBlackHoleBesideABranchThatAnswersStillStopsAtTheGap() throws {
        // Half the destinations have a fourth router; the other half are black holes after the third.
        // The black holes' fourth TTL sits where a router answers for other traces, so it does not count
        // towards the gap; the trace must still stop (it once waited forever on its own look-ahead).
        // Their fifth TTL is where nothing ever answers: unexplored at first (the first black holes
        // look past it, as they would past routers whose ICMP budget is spent), found silent once
        // re-asks there have failed for `PositionBook.silentAfterNanos`; from then on they stop at the
        // gap. Four traces at a time, so that the run spans that time.
        let net = SimulatedNetwork { d in
            d.value & 1 == 0
                ? SimulatedPath(hops: threeRouters + [.router(r(21))], destination: .listening(ports: [443]))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        let destinations = (0..<80).map { (IPv4Address(198, 51, 100, UInt8($0 + 1)), UInt16(443)) }
        var turns = 0
        let start = net.now()
        var startedAt: [Int: UInt64] = [:]
        let (results, summary) = try trace(net, destinations, configure: { $0.gapLimit = 2; $0.maxTTL = 12; $0.maxInFlight = 4 },
            engineSetup: { engine in
                engine.shouldCancel = {
                    turns += 1
                    return turns > 20_000_000  // a stalled trace would spin here; bounded either way
                }
                engine.onHop = { request, _ in
                    if startedAt[request.index] == nil { startedAt[request.index] = net.now() }
                }
            })
        #expect(!summary.cancelled)
        let holes = results.filter { $0.request.destination.value & 1 == 1 }
        for t in holes {
            #expect(!t.reached && t.state == .filtered && (t.stopReason == .gapLimit || t.stopReason == .maxTTL))
        }
        // The black holes that started once the first ones' re-asks had found the fifth TTL silent (as
        // many re-asks as `silentAfterReasks`, spanning `silentAfterNanos`) stopped at the gap.
        let late = holes.dropFirst(PositionBook.silentAfterReasks).filter {
            (startedAt[$0.request.index] ?? 0) &- start > PositionBook.silentAfterNanos
        }
        #expect(late.count >= 10, "the run must span the exploration (\(late.count) late black holes)")
        for t in late {
            #expect(t.stopReason == .gapLimit && t.hops.count <= 7, "\(t.request.index) \(t.hops.map(\.kind))")
        }
    }

    @Test func withoutRateLimitsNothingIsFlaggedAndNoProbeIsSpentAgain() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443, 80])) }
        var destinations: [(IPv4Address, UInt16)] = []
        for i in 0..<300 {
            let port: UInt16 = i < 250 ? 443 : 25
            destinations.append((IPv4Address(198, 51, 100, UInt8(i % 250 + 1)), port))
        }
        let (_, summary) = try trace(net, destinations) { $0.gapLimit = 2 }
        #expect(summary.rateLimitedHops == 0 && summary.reasksSent == 0 && summary.reportedBeforeLimits == 0)
    }
}

/// The rate-limit book over a long run (continuous mode): it keeps learning new positions instead of
/// freezing once full, and its memory stays bounded.
@Suite struct PositionBookAgingTests {
    @Test("A full book ages: the newest positions are learnt, at most two generations are kept")
    func bookAgesInsteadOfFilling() {
        // The defect this guards against: once `capacity` positions were known, later ones were never
        // learnt, so a long run's rate-limit evidence froze on what its start had seen.
        var book = PositionBook(capacity: 8)
        for ttl in 1...40 {
            book.noteAnswer(at: Position(ttl: UInt8(ttl), upstream: 7), router: 1000 + UInt32(ttl), sentAt: 1)
        }
        #expect(book.answers(at: Position(ttl: 40, upstream: 7)))
        #expect(book.answers(at: Position(ttl: 37, upstream: 7)))
        #expect(book.storedPositions <= 16)
        #expect(book.generations > 0)
        // A position touched again is carried over and survives the next ageing; one never touched again
        // is forgotten after two generations.
        #expect(!book.answers(at: Position(ttl: 1, upstream: 7)))
        var keep = PositionBook(capacity: 4)
        let kept = Position(ttl: 1, upstream: 9)
        keep.noteDrop(at: kept, now: 1)
        for ttl in 2...20 {
            keep.noteAnswer(at: Position(ttl: UInt8(ttl), upstream: 9), router: 2000 + UInt32(ttl), sentAt: 1)
            keep.noteDrop(at: kept, now: 1)  // learnt again: carried into the current generation
        }
        #expect(keep.caughtLimiting(at: kept))
        #expect(keep.limitedPositions == 2)  // the position and its TTL on any path, counted once each
    }
}

@Suite struct NeverUsedSlotTests {
    @Test func aReplyNamingASlotNoTraceEverTookIsForgedNotStale() {
        // A made-up SYN-ACK whose word happens to decode to a slot within the table that no trace ever
        // took was counted *stale* (a late reply) before: the slot's record reads as nil both while it is
        // handed over and when it was never used. Nothing was ever sent from such a slot, so the reply
        // is forged. (In the lab, 3 of 400 forged RSTs and errors were counted stale: BusyHostLabTests.)
        let codec = ProbeTagCodec(key0: 7, key1: 8)
        let grid = ProbeGrid(firstTTL: 1, maxTTL: 8, attempts: 1, slots: 8)
        let dispatcher = Dispatcher(grid: grid, sourcePort: 40000, codec: codec)
        let vantage = IPv4Address(192, 0, 2, 1), target = IPv4Address(198, 51, 100, 7)
        let flow = ProbeFlow(source: vantage, destination: target, sourcePort: 40000, destinationPort: 443, epoch: 1)
        func synAck(slot: UInt16) -> [UInt8] {
            let stamp = codec.encode(ProbeTag(slot: slot, ttl: 3, attempt: 0), flow: flow)
            return SimulatedNetwork.tcpReply(from: target, to: vantage, sourcePort: 443, destinationPort: 40000,
                acknowledgement: stamp.sequence &+ 1, flags: TCPLayout.syn | TCPLayout.ack)
        }
        // Slot 0 held this flow and its trace has finished: its genuine reply is late (stale).
        dispatcher.slots.publish(0, flow: flow, digest: codec.digest(flow))
        dispatcher.slots.retire(0)
        synAck(slot: 0).withUnsafeBytes { dispatcher.handleReply($0, timestampNanos: 1_000_000_000) }
        #expect(dispatcher.counters.stale == 1 && dispatcher.counters.forged == 0)
        // Slot 5 was never taken: the same reply naming it is forged.
        synAck(slot: 5).withUnsafeBytes { dispatcher.handleReply($0, timestampNanos: 1_000_000_000) }
        #expect(dispatcher.counters.forged == 1 && dispatcher.counters.stale == 1, "\(dispatcher.counters)")
    }
}
