// `--gap N` means what a user reads: a trace stops N silent TTLs past its last answer. Routers that
// answer other traces at the same TTL on another branch (past a fan-out, as the lab's firewall and NAT
// sit beside its black hole after r6) do not stretch a black hole's trace, in a run that has caught
// no rate limit (issue 13 item 5: a black hole stopped after 4 silent TTLs beside the firewall, after 5
// beside the NAT, at `--gap 3`).

import FastTraceWire
import Testing

@testable import FastTraceCore
import FastTraceTestSupport

@Suite struct GapLimitTests {
    @Test(arguments: [1, 3], [2, 3, 5])
    func aBlackHoleBesideAnsweringBranchesStopsExactlyAtTheGap(probesPerHop: Int, gap: Int) throws {
        // Every third destination a black hole after three routers; the others have two more routers
        // (hop 4 and 5 answer on their branch), then a listening port. Answering traces come first in
        // the list, so their deeper routers are known before the black holes' silence settles.
        let net = SimulatedNetwork { d in
            d.value % 3 == 0
                ? SimulatedPath(hops: threeRouters, destination: .blackHole)
                : SimulatedPath(hops: threeRouters + [.router(r(21)), .router(r(25))],
                    destination: .listening(ports: [443]))
        }
        let destinations = (1...60).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(443)) }
        let (results, summary) = try trace(net, destinations) {
            $0.gapLimit = gap
            $0.maxTTL = 20
            $0.probesPerHop = probesPerHop
            $0.maxInFlight = 16
        }
        #expect(summary.rateLimitedPositions == 0)
        let holes = results.filter { $0.request.destination.value % 3 == 0 }
        #expect(holes.count == 20)
        for t in holes {
            #expect(t.state == .filtered && t.stopReason == .gapLimit)
            #expect(t.hops.count == 3 + gap, "\(t.request.destination): \(t.hops.count) TTLs, gap \(gap)")
            #expect(t.hops.dropFirst(3).allSatisfy { $0.firstResponder == nil })
        }
        for t in results where t.request.destination.value % 3 != 0 {
            #expect(t.reached && t.hops.count == 6)
        }
    }
}

/// Tables sized to what the run knows it will trace (issue 13 item 13: a single trace took 85 MB).
@Suite struct TableSizingTests {
    @Test func oneExpectedTraceEndsWithoutWaitingForASlotsRest() throws {
        // One slot plus a spare: the run learns the source is finished as soon as its trace is done,
        // not after the used slot's rest (the wait plus the quarantine, 1.5 s here).
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        let (results, summary) = try trace(net, [(target, 443)]) { $0.expectedTraces = 1 }
        #expect(results.count == 1 && results[0].reached)
        #expect(summary.elapsedNanos < 1_000_000_000, "\(summary.elapsedNanos) ns of virtual time")
    }

    @Test func moreRequestsThanExpectedStillRunEveryTraceRight() throws {
        // The bound sizes the tables, it does not cap the run: 50 traces through 2 + 1 slots, each
        // reused after its rest, every one right.
        let net = SimulatedNetwork { d in
            d.value & 1 == 0
                ? SimulatedPath(hops: threeRouters, destination: .listening(ports: [443]))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        let destinations = (1...50).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(443)) }
        let (results, _) = try trace(net, destinations) {
            $0.expectedTraces = 2
            $0.gapLimit = 2
            $0.waitNanos = 100_000_000
        }
        #expect(results.count == 50)
        for t in results {
            if t.request.destination.value & 1 == 0 {
                #expect(t.reached && t.hops.count == 4 && t.hops.last?.firstResponder == t.request.destination)
            } else {
                #expect(!t.reached && t.stopReason == .gapLimit && t.hops.count == 5)
            }
        }
    }
}

/// A used slot rests (`-w` plus 0.5 s) before another trace takes it, so that a late reply is not taken for
/// the next occupant's. At a high rate short traces end faster than `--max-in-flight` rested slots come
/// back: a mixed 40,000-target list at `--rate 50000` spent a third of its run waiting for them, which
/// the summary called "waiting for the list".
@Suite struct SlotRestTests {
    static func short() -> SimulatedNetwork {
        SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
    }
    static func targets(_ n: Int) -> [(IPv4Address, UInt16)] {
        (0..<n).map { (IPv4Address(198, 18, UInt8($0 >> 8), UInt8($0 & 0xFF)), UInt16(443)) }
    }

    @Test func atAHighRateShortTracesDoNotWaitForRestingSlots() throws {
        // 4,000 traces of 4 probes at --rate 50000: 0.32 s of sending. With room for only
        // --max-in-flight + 1,024 resting slots, the run waited 1.5 s for rests after each 1,088 traces.
        let (results, summary) = try trace(Self.short(), Self.targets(4000)) {
            $0.rate = 50_000
            $0.waitNanos = 1_000_000_000
            $0.maxInFlight = 64
        }
        #expect(results.count == 4000 && results.allSatisfy { $0.reached && $0.hops.count == 4 })
        #expect(summary.sendLimits.slotsNanos == 0, "\(summary.sendLimits)")
        #expect(summary.elapsedNanos < 1_000_000_000, "\(summary.elapsedNanos) ns of virtual time")
    }

    @Test func waitingForRestingSlotsIsSaidForWhatItIs() throws {
        // Traces that end on their first probe (the destination one hop away, one TTL at a time) at
        // --rate 20000 end 20,000 a second, more than the 7,564 slots (64 in flight, room for what a
        // quarter of the rate ends in a 1.5 s rest) can hold: the run waits for rests, and says so
        // rather than "waiting for the list", which is all there.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: [], destination: .listening(ports: [443])) }
        let (results, summary) = try trace(net, Self.targets(10_000)) {
            $0.rate = 20_000
            $0.waitNanos = 1_000_000_000
            $0.maxInFlight = 64
            $0.window = 1
        }
        #expect(results.count == 10_000 && results.allSatisfy { $0.reached && $0.hops.count == 1 })
        let limits = summary.sendLimits
        #expect(limits.slotsNanos > 500_000_000, "\(limits)")
        #expect(limits.listNanos < limits.slotsNanos / 10, "\(limits)")
    }
}

/// Under rate limits a black hole's trace may look past silence the gap does not count (nothing is known
/// yet of that position); that silence is then shown for what it is, a rate limit or the end of the
/// path, and exactly `--gap` plain silent TTLs end the trace (a new user saw 5 plain `* * *` at
/// `--gap 3`, with nothing saying why).
@Suite struct GapUnderRateLimitsTests {
    @Test(arguments: [2, 3])
    func onlyTheGapsOwnTTLsArePlainSilence(gap: Int) throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: Array(RateLimitTests.longLimitedPath.prefix(4)), destination: .blackHole)
        }
        net.initialICMPTokens = 0
        let destinations = (1...60).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(443)) }
        let (results, summary) = try trace(net, destinations) {
            $0.gapLimit = gap
            $0.maxTTL = 16
            $0.rate = 2000
        }
        #expect(summary.rateLimitedPositions > 0)
        for t in results {
            #expect(t.state == .filtered && t.stopReason == .gapLimit)
            let tail = t.hops.reversed().prefix { $0.firstResponder == nil }
            let plain = tail.prefix { $0.kind == "none" }.count
            #expect(plain == gap, "\(t.request.destination): \(t.hops.map(\.kind)) \(t.hops.map { $0.probes.map { $0.silence?.rawValue ?? "-" } })")
            #expect(tail.dropFirst(plain).allSatisfy { $0.kind != "none" }, "\(t.hops.map(\.kind))")
        }
    }
}
