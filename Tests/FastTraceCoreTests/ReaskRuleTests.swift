// The re-ask rule (issue 11): a silent hop is asked again later only where what the run has seen
// leaves room for a rate limit. Where it does not (a router that never sends ICMP on a prefix beside
// routers answering fast, a black hole past the last router, in a run that has caught nothing), the
// trace does not wait; where it does (a router caught limiting, a cold start, a router that answers
// fast and then hits its global limit), every trace is as right as before. Wall time is the
// simulator's virtual clock (deterministic), never the host's.

import FastTraceWire
import Testing
import FastTraceTestSupport

@testable import FastTraceCore

@Suite struct ReaskRuleTests {
    /// Six routers, then a fan-out after the sixth as in the lab: open targets at TTL 7; a firewall
    /// answering at TTL 7 before its targets (TTL 8); a router that never sends ICMP at TTL 7 before
    /// its targets (TTL 8); a black hole after the sixth router. Each kind in its own /20.
    static let near: [SimulatedHop] = [UInt8(1), 5, 9, 13, 17, 21].map { .router(r($0)) }
    enum Kind: UInt8 { case open = 16, firewalled = 32, silent = 48, blackHole = 64 }

    static func path(_ d: IPv4Address) -> SimulatedPath {
        switch Kind(rawValue: UInt8(truncatingIfNeeded: d.value >> 8) & 0xF0) {
        case .firewalled: SimulatedPath(hops: near + [.router(r(41))], destination: .listening(ports: [443]))
        case .silent: SimulatedPath(hops: near + [.silent], destination: .listening(ports: [443]))
        case .blackHole: SimulatedPath(hops: near, destination: .blackHole)
        default: SimulatedPath(hops: near, destination: .listening(ports: [443]))
        }
    }

    /// `n` targets, per ten as the lab's mixed list: 7 open, then a firewalled, a silent-router and a
    /// black-holed one at slots 3, 6 and 9 (only the kinds in `kinds`; the others open).
    static func targets(_ n: Int, kinds: Set<Kind>) -> [(IPv4Address, UInt16)] {
        let slots: [Kind] = [.open, .open, .open, .firewalled, .open, .open, .silent, .open, .open, .blackHole]
        var next: [Kind: Int] = [:]
        return (0..<n).map { i in
            let kind = kinds.contains(slots[i % 10]) ? slots[i % 10] : .open
            let k = next[kind, default: 0]
            next[kind] = k + 1
            return (IPv4Address(198, 19, kind.rawValue + UInt8(k / 250), UInt8(k % 250 + 1)), 443)
        }
    }

    /// Checks every trace against the truth of `path`.
    static func expectRight(_ results: [TraceResult]) {
        for t in results {
            let d = t.request.destination
            let kind = Kind(rawValue: UInt8(truncatingIfNeeded: d.value >> 8) & 0xF0) ?? .open
            #expect(t.hops.prefix(6).map(\.firstResponder) == [1, 5, 9, 13, 17, 21].map { r($0) }, "\(d)")
            switch kind {
            case .open:
                #expect(t.reached && t.state == .open && t.hops.count == 7, "\(d)")
            case .firewalled, .silent:
                #expect(t.reached && t.state == .open && t.hops.count == 8, "\(d)")
                #expect(t.hops[6].firstResponder == (kind == .silent ? nil : IPAddress(r(41))), "\(d)")
                if kind == .silent { #expect(t.hops[6].kind == "none", "\(d)") }
            case .blackHole:
                #expect(!t.reached && t.state == .filtered && t.stopReason == .gapLimit && t.hops.count == 6 + 3, "\(d)")
            }
        }
    }

    /// The lab's settings for a list: one probe per hop, 1 s wait, `--gap 3`.
    static func run(_ destinations: [(IPv4Address, UInt16)], reasks: Int? = nil) throws
        -> (results: [TraceResult], summary: RunSummary)
    {
        let net = SimulatedNetwork { Self.path($0) }
        return try trace(net, destinations) {
            $0.probesPerHop = 1
            $0.gapLimit = 3
            $0.maxTTL = 16
            $0.rate = 10_000
            $0.reasks = reasks
        }
    }

    @Test(arguments: [1, 400])
    func aSilentRouterBesideAnsweringPrefixesCostsNoWait(targets n: Int) throws {
        // One target alone (it has nothing to compare with), or 400 with one in ten behind the silent
        // router and one in ten behind the firewall beside it: no rate limit anywhere. The old rule asked
        // the silent TTL again 1 s and 2 s after its timeouts (re-asks that always fail), and the run
        // took 4 s more than without them.
        let destinations = n == 1 ? [(IPv4Address(198, 19, Kind.silent.rawValue, 1), UInt16(443))]
            : Self.targets(n, kinds: [.firewalled, .silent])
        let (results, summary) = try Self.run(destinations)
        let (_, without) = try Self.run(destinations, reasks: 0)
        Self.expectRight(results)
        #expect(summary.rateLimitedPositions == 0 && summary.rateLimitedHops == 0)
        #expect(summary.reasksSent == 0)
        #expect(summary.elapsedNanos <= without.elapsedNanos + 50_000_000,
            "\(summary.elapsedNanos / 1_000_000) ms, \(without.elapsedNanos / 1_000_000) ms without re-asks")
    }

    @Test(arguments: [1, 400])
    func aBlackHolePastTheLastRouterCostsNoWait(targets n: Int) throws {
        // A black hole after the sixth router, alone or one in ten of a list beside the firewall and the
        // silent router: nothing ever answers past TTL 6 on its branch, and routers answer everything.
        // The old rule asked TTL 7 again (the firewall answers there for other traces) and TTLs 8-9
        // (nothing known of them yet): each black hole lasted 6 s instead of 1.
        let destinations = n == 1 ? [(IPv4Address(198, 19, Kind.blackHole.rawValue, 1), UInt16(443))]
            : Self.targets(n, kinds: [.firewalled, .silent, .blackHole])
        let (results, summary) = try Self.run(destinations)
        let (_, without) = try Self.run(destinations, reasks: 0)
        Self.expectRight(results)
        #expect(summary.rateLimitedPositions == 0 && summary.reasksSent == 0)
        #expect(summary.elapsedNanos <= without.elapsedNanos + 50_000_000,
            "\(summary.elapsedNanos / 1_000_000) ms, \(without.elapsedNanos / 1_000_000) ms without re-asks")
    }

    @Test func aReaskQueuedBeforeTheEvidenceIsSettledWhenItComes() throws {
        // Three targets behind the firewall and five behind the silent router first, then 230 open ones,
        // then 50 behind the firewall, at 1,000 probes/s: the silent TTLs time out when the firewall
        // beside them has answered three probes, not yet fast, so they are queued to be asked again;
        // once it has answered fast (after the open ones), they are settled at once instead of waiting
        // for re-asks due 2 s in, and answered by nothing 3 s after that.
        var destinations: [(IPv4Address, UInt16)] = (1...3).map { (IPv4Address(198, 19, Kind.firewalled.rawValue + 1, UInt8($0)), 443) }
        destinations += (1...5).map { (IPv4Address(198, 19, Kind.silent.rawValue, UInt8($0)), 443) }
        destinations += (1...230).map { (IPv4Address(198, 19, Kind.open.rawValue, UInt8($0)), 443) }
        destinations += (1...50).map { (IPv4Address(198, 19, Kind.firewalled.rawValue, UInt8($0)), 443) }
        func run(reasks: Int?) throws -> (results: [TraceResult], summary: RunSummary) {
            let net = SimulatedNetwork { Self.path($0) }
            return try trace(net, destinations) {
                $0.probesPerHop = 1
                $0.gapLimit = 3
                $0.rate = 1000
                $0.reasks = reasks
            }
        }
        let (results, summary) = try run(reasks: nil)
        let (_, without) = try run(reasks: 0)
        Self.expectRight(results)
        #expect(summary.reasksSent == 0 && summary.rateLimitedPositions == 0)
        #expect(summary.elapsedNanos <= without.elapsedNanos + 300_000_000,
            "\(summary.elapsedNanos / 1_000_000) ms, \(without.elapsedNanos / 1_000_000) ms without re-asks")
    }

    @Test(arguments: [false, true])
    func aRouterThatRateLimitsIsAskedAgainAndFlagged(onePerPrefix: Bool) throws {
        // The near routers limit us as Linux does (1 a second after a burst of 6), with one probe per hop;
        // the targets share a /24, or each has its own (as a list of web servers does). The silences
        // there are asked again and caught: every trace right, the hops flagged.
        let destinations: [(IPv4Address, UInt16)] = (0..<200).map { i in
            (onePerPrefix ? IPv4Address(198, 19, UInt8(i), 1) : IPv4Address(198, 19, 1, UInt8(i + 1)), 443)
        }
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: RateLimitTests.limitedPath, destination: .listening(ports: [443]))
        }
        let (results, summary) = try trace(net, destinations) {
            $0.gapLimit = 2
            $0.probesPerHop = 1
        }
        #expect(net.rateLimitedDrops > 0 && summary.reasksSent > 0)
        #expect(summary.rateLimitedPositions >= 1 && summary.rateLimitedHops > summary.likelyRateLimitedHops)
        for t in results {
            #expect(t.reached && t.state == .open && t.stopReason == .destination && t.hops.count == 5)
            for (i, hop) in t.hops.prefix(3).enumerated() {
                #expect(hop.firstResponder == [r(1), r(5), r(9)][i] || hop.isRateLimited || hop.isLikelyRateLimited,
                    "\(t.request.destination) ttl \(hop.ttl): \(hop.kind)")
            }
            #expect(t.hops[3].firstResponder == r(13))
        }
    }

    @Test(arguments: [(1, 3), (3, 2)])
    func aColdStartWithOneTargetPerPrefixStopsNoTraceShort(probes: Int, gap: Int) throws {
        // As `RateLimitTests.aColdStartStopsNoTraceShort` (budgets spent, another prober taking half of
        // each refill for 6 s), with every target in its own /24: nothing answers at first, so nothing
        // tells the silence from a rate limit, and it is asked again as before.
        let destinations: [(IPv4Address, UInt16)] = (0..<400).map { (i: Int) -> (IPv4Address, UInt16) in
            (IPv4Address(198, UInt8(18 + i / 250), UInt8(i % 250), 1), 443)
        }
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: RateLimitTests.longLimitedPath, destination: .listening(ports: [443]))
        }
        net.initialICMPTokens = 0
        net.competingICMP = (perSecond: 0.5, untilNanos: net.now() + 6_000_000_000)
        let (results, _) = try trace(net, destinations) {
            $0.maxTTL = 12
            $0.rate = 2000
            $0.gapLimit = gap
            $0.probesPerHop = probes
        }
        let short = results.filter { t in !(t.reached && t.state == .open && t.hops.count == 7) }
        #expect(short.isEmpty, "\(short.count) of \(results.count) wrong")
    }

    @Test(arguments: [1, 3])
    func aRouterAnsweringFastThatHitsItsGlobalLimitIsCaught(probes: Int) throws {
        // The third router answers everything at first (faster than any per-destination limit), then
        // hits its global limit (Linux: icmp_msgs_per_sec 1000, burst 50) as 3,000 traces at 20,000
        // probes/s pass it; eight targets per /24. Its silences are a router the run can name
        // (the one every trace saw before the fourth) dropping some of our probes: asked again, caught,
        // flagged; every trace right.
        let hops: [SimulatedHop] = [.router(r(1)), .router(r(5)), .rateLimited(r(9), perSecond: 1000, burst: 50),
            .router(r(13)), .router(r(17)), .router(r(21))]
        let destinations: [(IPv4Address, UInt16)] = (0..<3000).map { (i: Int) -> (IPv4Address, UInt16) in
            let second = UInt8(18 + i / 2000), third = UInt8(i % 2000 / 8), fourth = UInt8(i % 8 + 1)
            return (IPv4Address(198, second, third, fourth), 443)
        }
        let net = SimulatedNetwork { _ in SimulatedPath(hops: hops, destination: .listening(ports: [443])) }
        let (results, summary) = try trace(net, destinations) {
            $0.probesPerHop = probes
            $0.gapLimit = 3
            $0.rate = 20_000
        }
        #expect(net.rateLimitedDrops > 0 && summary.reasksSent > 0 && summary.rateLimitedPositions > 0)
        var unexplained = 0
        for t in results {
            #expect(t.reached && t.state == .open && t.hops.count == 7, "\(t.request.destination)")
            let third = t.hops[2]
            #expect(third.firstResponder == r(9) || third.firstResponder == nil, "\(t.request.destination)")
            if third.firstResponder == nil && !(third.isRateLimited || third.isLikelyRateLimited) { unexplained += 1 }
        }
        // Silences judged before the first catch are plain `*`, and counted as such in the summary.
        #expect(unexplained <= summary.reportedBeforeLimits, "\(unexplained) unexplained")
        #expect(summary.rateLimitedHops > 0)
    }
}
