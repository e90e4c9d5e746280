// A probe the kernel refuses to send (over the route's MTU: EMSGSIZE; a local firewall: EPERM) never left
// the host: a trial found such traces reported `filtered`, their hops `*` as if the network were silent,
// and re-asks spent on probes that could never go out. They must say what happened instead.

import FastTraceCore
import FastTraceWire
import Testing
import FastTraceTestSupport

@Suite struct RefusedProbeTests {
    /// Six targets behind rate-limiting routers (so the run catches limits and re-asks silent hops where
    /// routers answer others); the routes to three of them have an MTU below the probes' length.
    @Test func probesTheKernelRefusedAreNotSentNotFilteredAndNotAskedAgain() throws {
        let near: [SimulatedHop] = [UInt8(1), 5, 9].map { .rateLimited(r($0), perSecond: 1, burst: 6) }
        let net = SimulatedNetwork { _ in SimulatedPath(hops: near, destination: .blackHole) }
        let small = Set((0..<3).map { IPv4Address(198, 51, 100, UInt8(20 + $0)) })
        net.mtu = { small.contains($0) ? 100 : nil }
        let destinations = (0..<6).map { (IPv4Address(198, 51, 100, UInt8(17 + $0)), UInt16(443)) }
        let (results, summary) = try trace(net, destinations) {
            $0.packetLength = 200
            $0.gapLimit = 3
            $0.maxTTL = 8
        }
        #expect(results.count == 6)
        var refusedProbes = 0
        for t in results {
            if let v4 = t.request.destination.ipv4, small.contains(v4) {
                // Stopped at its first TTL as not sent: no state (never `filtered`), nothing sent, each
                // column marked for what it is and counted as no try.
                #expect(t.stopReason == .notSent && t.state == .unknown && !t.reached, "\(t.request.destination)")
                #expect(t.probesSent == 0 && t.hops.map(\.ttl) == [1])
                #expect(t.hops.allSatisfy { $0.kind == "not-sent" && $0.probes.allSatisfy { $0.tries == 0 } })
                refusedProbes += t.hops.reduce(0) { $0 + $1.probes.count }
            } else {
                // The others go on as ever: routers heard, the black hole filtered.
                #expect(t.state == .filtered && t.stopReason != .notSent && t.probesSent > 0)
                #expect(t.hops.contains { $0.firstResponder == r(1) })
            }
        }
        // Each refused probe went to the kernel once: no retry, no re-ask of a probe that never left.
        #expect(net.counters.sendErrors == UInt64(refusedProbes) && refusedProbes == 9)
        #expect(summary.probesRefused == 9 && summary.notSent == 3 && summary.filtered == 3)
        #expect(summary.probesSent == net.counters.packetsSent)
    }
}
