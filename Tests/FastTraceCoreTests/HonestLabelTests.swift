// Two wrong answers a new user found (issue 13), as simulator scenarios: an unreachable from a router
// that answers every probe reaching it must be placed where the router is (its quote's TTL says so),
// not at the TTL of whichever probe happened to get through its rate limit; and a router that never
// sends ICMP, sitting beside routers that rate-limit, must not be stated to be rate-limited.

import FastTraceCore
import FastTraceWire
import Testing
import FastTraceTestSupport

@Suite struct HonestLabelTests {
    /// 16 targets whose first router has no route: it answers every probe with `!N`, one a second after a
    /// burst of 6 (Linux's defaults), whatever TTL the probe carried; one probe per hop.
    @Test func aRateLimitedUnreachableIsPlacedAtItsRouterNotAtTheProbesTTL() throws {
        let destinations = (0..<16).map { (IPv4Address(192, 0, 2, UInt8($0)), UInt16(443)) }
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.rateLimitedUnreachable(r(1), code: 0, perSecond: 1, burst: 6), .router(r(5))],
                destination: .listening(ports: [443]))
        }
        let (results, _) = try trace(net, destinations) { $0.gapLimit = 5; $0.probesPerHop = 1 }
        #expect(results.count == 16)
        for t in results {
            #expect(t.stopReason == .unreachable && t.state == .filtered && !t.reached)
            // One hop: the router at TTL 1 that said !N; no TTL past it, rate-limited or otherwise.
            #expect(t.hops.map(\.ttl) == [1], "\(t.request.destination): \(t.hops.map { "\($0.ttl) \($0.kind)" })")
            #expect(t.hops.first?.firstResponder == r(1) && t.hops.first?.outcome == .unreachable(code: 0))
            // Where an answer to a deeper probe was placed here, it says which TTL it was sent with.
            for probe in t.hops.first?.probes ?? [] where probe.sentTTL != nil {
                #expect(probe.sentTTL! > 1 && probe.outcome == .unreachable(code: 0))
            }
        }
        // The rate limit bit: some traces' own TTL-1 probes went unanswered and were placed from deeper.
        #expect(results.contains { $0.hops.first?.probes.contains { $0.sentTTL != nil } == true })
    }

    /// The lab's shape: after r(33) at TTL 6 a rate-limiting firewall router answers for one prefix, and
    /// a router that never sends ICMP sits in front of another; both reach their destination at TTL 8.
    @Test func aSilentRouterBesideRateLimitingOnesIsNotSaidToBeRateLimited() throws {
        let near: [SimulatedHop] = [UInt8(1), 5, 9, 13, 25, 33].map { .rateLimited(r($0), perSecond: 1, burst: 6) }
        let firewalled = (0..<60).map { (IPv4Address(198, 18, 32, UInt8($0 + 1)), UInt16(443)) }
        let behindSilent = (0..<60).map { (IPv4Address(198, 18, 48, UInt8($0 + 1)), UInt16(443)) }
        let net = SimulatedNetwork { destination in
            let seventh: SimulatedHop = destination.value >> 8 & 0xFF == 32
                ? .rateLimited(r(41), perSecond: 1, burst: 6) : .silent
            return SimulatedPath(hops: near + [seventh], destination: .listening(ports: [443]))
        }
        let (results, summary) = try trace(net, firewalled + behindSilent) { $0.gapLimit = 3; $0.waitNanos = 500_000_000 }
        #expect(results.count == 120 && summary.rateLimitedPositions > 0)
        for t in results {
            #expect(t.reached && t.hops.count == 8, "\(t.request.destination): \(t.hops.map(\.kind))")
            guard t.request.destination.value >> 8 & 0xFF == 48, t.hops.count >= 7 else { continue }
            // TTL 7 of the traces behind the silent router: nothing there ever answers. The run may say
            // it is likely a rate limit (the firewall router at the same place answers others), never
            // that it is one.
            let hop = t.hops[6]
            #expect(hop.firstResponder == nil)
            #expect(!hop.isRateLimited, "\(t.request.destination) ttl 7 said rate-limited")
            #expect(hop.kind == "likely-rate-limited", "\(t.request.destination) ttl 7: \(hop.kind)")
        }
        // The firewall router's own silences stay shown where the run knows it is the router there.
        #expect(summary.rateLimitedHops > 0)
    }
}
