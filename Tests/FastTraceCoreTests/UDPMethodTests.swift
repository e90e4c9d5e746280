// The engine with UDP probes, through the same seam as TCP: open when the service answers (DNS, NTP
// echo the probe's tag), closed when the destination says port unreachable, open|filtered when nothing
// answers; answers that name no probe are counted, never recorded; forged answers and late answers
// across slot reuse are refused by the same keyed check as every reply.

import FastTraceWire
import Testing

@testable import FastTraceCore
import FastTraceTestSupport

@Suite struct UDPMethodTests {
    @Test func udpTracesFindOpenClosedAndSilentPorts() throws {
        // Even addresses run DNS, NTP and an echo service on 7; odd ones are black holes.
        let net = SimulatedNetwork { d in
            d.value & 1 == 0
                ? SimulatedPath(hops: threeRouters, destination: .listening(ports: [53, 123, 7]))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        let ports: [UInt16] = [53, 123, 33434, 7]
        let destinations = (1...20).flatMap { i in ports.map { (IPv4Address(198, 51, 100, UInt8(i)), $0) } }
        let (results, summary) = try trace(net, destinations) {
            $0.method = .udp(.byPort)
            $0.gapLimit = 2
        }
        #expect(results.count == 80)
        for t in results {
            #expect(t.method == .udp(.byPort))
            #expect(t.hops.prefix(3).map(\.firstResponder) == [r(1), r(5), r(9)])
            let listening = t.request.destination.value & 1 == 0
            switch (listening, t.request.port) {
            case (true, 53), (true, 123):
                #expect(t.reached && t.state == .open && t.stopReason == .destination)
                #expect(t.hops.count == 4 && t.hops[3].outcome == .udpReply && t.destinationTTL == 4)
            case (true, 33434):
                #expect(t.reached && t.state == .closed && t.stopReason == .destination)
                #expect(t.hops[3].outcome == .portUnreachable && t.hops[3].firstResponder == t.request.destination)
            case (true, 7):
                // The echo service's answers carry nothing fasttrace wrote: no hop records them and the state
                // stays what the keyed check can say, but the trace is marked: something answered.
                #expect(!t.reached && t.state == .openFiltered && t.answerUnmatched && t.destinationTTL == nil,
                    "\(t.request)")
                #expect(t.stopReason == .gapLimit && !t.hops.contains { $0.outcome.isFromDestination })
            default:
                #expect(!t.reached && t.state == .openFiltered && t.stopReason == .gapLimit && !t.answerUnmatched,
                    "\(t.request)")
            }
        }
        #expect(summary.open == 20 && summary.closed == 10 && summary.openFiltered == 50 && summary.filtered == 0)
        #expect(summary.dispatch.forged == 0 && summary.dispatch.malformed == 0 && summary.dispatch.stale == 0)
        // The echo service answered each of its probes that reached it: counted, not recorded.
        #expect(summary.dispatch.unkeyed > 0)
        // Paris: every probe of a trace had the same ports; the words differed.
        for port in ports {
            let probes = net.sent.filter { $0.destination == IPv4Address(198, 51, 100, 2) && $0.destinationPort == port }
            #expect(Set(probes.map(\.sourcePort)) == [40000] && Set(probes.map(\.sequence)).count == probes.count)
            #expect(probes.allSatisfy { $0.protocolNumber == 17 && UInt16(truncatingIfNeeded: $0.sequence) != 0 })
        }
    }

    @Test func aForgedSprayOfUDPAnswersAndErrorsGetsNothingAccepted() throws {
        // 32 traces to black holes on DNS, NTP and a closed port; an off-path forger who knows our address,
        // source port, every destination and port sprays time exceeded, port unreachable, DNS and NTP
        // answers with random words.
        let destinations = (0..<32).map { IPv4Address(203, 0, 113, UInt8($0 + 1)) }
        let ports: [UInt16] = [53, 123, 33434]
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        var rng = SeededRandom(seed: 12)
        let start = net.now()
        let kind = UDPProbeKind()
        let flow = ProbeFlow(source: vantage, destination: destinations[0], sourcePort: 40000, destinationPort: 53,
            protocolNumber: 17, epoch: 0)
        var sprayed = 0
        for i in 0..<30_000 {
            let d = destinations[i % destinations.count]
            let port = ports[i % ports.count]
            let word = UInt32(truncatingIfNeeded: rng.next())
            // A probe as we would have sent it, with a made-up word, quoted or answered.
            var probe = [UInt8](repeating: 0, count: 80)
            let n = probe.withUnsafeMutableBytes { buffer in
                var f = flow
                f.destination = IPAddress(d)
                f.destinationPort = port
                return kind.write(ProbeSpec(flow: f, ttl: 2, stamp: .init(sequence: word, ipID: UInt16(truncatingIfNeeded: word)),
                    length: 40), into: buffer)
            }
            probe.removeLast(80 - n)
            let at = start + 2_000_000 + UInt64(i) * 30_000
            net.inject(SimulatedNetwork.icmpError(type: 11, code: 0, from: r(77), quoting: probe), at: at)
            net.inject(SimulatedNetwork.icmpError(type: 3, code: 3, from: d, quoting: probe), at: at + 5_000)
            net.inject(SimulatedNetwork.udpServiceAnswer(to: probe), at: at + 10_000)
            sprayed += 3
        }
        let (results, summary) = try trace(net, destinations.flatMap { d in ports.map { (d, $0) } }) {
            $0.method = .udp(.byPort)
            $0.gapLimit = 3
        }
        #expect(results.allSatisfy { $0.state == .openFiltered && !$0.reached })
        // (The forged answers to 33434 name no probe: those traces are marked, never opened.)
        #expect(results.filter(\.answerUnmatched).allSatisfy { $0.request.port == 33434 })
        #expect(results.allSatisfy { $0.hops.prefix(3).map(\.firstResponder) == [r(1), r(5), r(9)] })
        #expect(results.allSatisfy { t in t.hops.allSatisfy { !$0.probes.contains { $0.responder == r(77) } } })
        #expect(summary.dispatch.matched == 96 * 9)
        // Port 33434's answers echo nothing (unkeyed); everything else failed the keyed check.
        #expect(summary.dispatch.forged + summary.dispatch.stale + summary.dispatch.unkeyed == UInt64(sprayed))
        #expect(summary.dispatch.unkeyed == 10_000)
    }

    @Test func behindANATThatAdjustsTheChecksumRoutersAndClosedPortsStillAnswer() throws {
        // A NAT at TTL 2 rewrites the destination (and so the UDP checksum, which holds half the word);
        // the router past it and the host behind it quote the adjusted checksum. The word is recovered
        // from the NAT's adjustment, so they are heard, and the DNAT is shown as with TCP.
        let inside = IPv4Address(198, 18, 96, 10)
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .router(r(5)), .router(r(9))], destination: .listening(ports: [53]),
                dnat: (afterTTL: 2, to: inside))
        }
        let (results, summary) = try trace(net, [(target, 33434), (target, 53)]) {
            $0.method = .udp(.byPort)
            $0.gapLimit = 2
        }
        let closed = try #require(results.first), open = try #require(results.last)
        #expect(closed.state == .closed && closed.reached && closed.hops.count == 4, "\(closed.hops.map(\.kind))")
        #expect(closed.hops.map(\.firstResponder) == [r(1), r(5), r(9), inside])
        #expect(closed.hops[2].probes.allSatisfy { $0.translatedDestination == inside })
        #expect(open.state == .open && open.hops.map(\.firstResponder) == [r(1), r(5), r(9), target])
        #expect(summary.dispatch.forged == 0 && summary.dispatch.rejected == 0)
    }

    @Test func aClosedPortWhoseNearerAnswersWereLimitedIsPlacedWhereItsQuoteSays() throws {
        // One host answers for 60 addresses and limits its port unreachables (Linux's 1/s after a burst
        // of 6): often the probes that reached it first go unanswered and one sent with a larger TTL is
        // answered. Its quote says how far the host is; the trace must say so, never a TTL further out.
        var path = SimulatedPath(hops: threeRouters, destination: .listening(ports: []))
        path.destinationICMPLimit = (host: IPv4Address(198, 51, 100, 254), perSecond: 2, burst: 6)
        let net = SimulatedNetwork { _ in path }
        let destinations = (1...60).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(33434)) }
        let (results, _) = try trace(net, destinations) {
            $0.method = .udp(.byPort)
            $0.gapLimit = 3
            $0.probesPerHop = 1
            $0.waitNanos = 200_000_000
            $0.rate = 50  // slow enough for the host's budget to refill while probes to TTLs past it arrive
        }
        var placed = 0
        for t in results {
            guard t.state == .closed else {
                #expect(t.state == .openFiltered, "\(t.request.destination)")
                continue
            }
            #expect(t.destinationTTL == 4 && t.hops.count == 4, "\(t.request.destination): \(t.hops.map(\.kind))")
            #expect(t.hops.last?.firstResponder == t.request.destination)
            if let sent = t.hops.last?.probes.first(where: { $0.outcome == .portUnreachable })?.sentTTL {
                #expect(sent > 4)
                placed += 1
            }
        }
        #expect(placed > 0, "no answer came from a probe sent further: the test did not exercise the placement")
    }

    @Test func blackHolesBesideClosedPortsAreNotAskedAgainInACleanRun() throws {
        // Hosts whose closed ports answer port unreachable at the position right past the last router,
        // and black holes at that same position: a host answering its own address is no router answering
        // others there, so the black holes' silence is not re-asked (each re-ask held its trace 1 s + 2 s:
        // a clean UDP list ran at 1.9 times scamper's wall time).
        let net = SimulatedNetwork { d in
            SimulatedPath(hops: threeRouters, destination: d.value & 1 == 0 ? .listening(ports: []) : .blackHole)
        }
        let destinations = (1...100).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(33434)) }
        let (results, summary) = try trace(net, destinations) {
            $0.method = .udp(.byPort)
            $0.gapLimit = 3
            $0.probesPerHop = 1
        }
        #expect(results.filter { $0.state == .closed }.count == 50 && results.filter { $0.state == .openFiltered }.count == 50)
        #expect(summary.reasksSent == 0)
    }

    @Test func aRoutersUnreachableMakesAUDPTraceFilteredNotOpenFiltered() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .unreachable(r(5), code: 0)], destination: .listening(ports: [53]))
        }
        let (results, _) = try trace(net, [(target, 53)]) { $0.method = .udp(.byPort) }
        let t = try #require(results.first)
        #expect(t.stopReason == .unreachable && t.state == .filtered && !t.reached)
    }

    @Test func lateUDPAnswersAcrossSlotReuseNeverLandInAnotherTrace() throws {
        // 1,500 DNS traces through at most 4 in flight; every TTL-2 answer and every destination answer
        // arrives 0.3 to 2.5 s late, mostly after its slot was reused.
        let destinations = (0..<1500).map { IPv4Address(198, 51, 100 + UInt8($0 / 250), UInt8($0 % 250) + 1) }
        let net = SimulatedNetwork { d in
            SimulatedPath(hops: [.router(r(1)), .router(ownRouter(d, hop: 2)), .router(ownRouter(d, hop: 3))],
                destination: .listening(ports: [53]))
        }
        var lateCount = 0
        net.extraReplyDelay = { probe in
            guard probe.ttl == 2 else { return nil }
            lateCount += 1
            return 300_000_000 + UInt64(probe.sequence % 2_200) * 1_000_000
        }
        let (results, summary) = try trace(net, destinations.map { ($0, 53) }) {
            $0.method = .udp(.byPort)
            $0.waitNanos = 200_000_000
            $0.maxInFlight = 4
            $0.probesPerHop = 1
            $0.reasks = 0
        }
        #expect(results.count == 1500)
        for t in results {
            let d = t.request.destination.ipv4!
            #expect(t.state == .open && t.stopReason == .destination)
            #expect(t.hops.map(\.firstResponder) == [r(1), nil, ownRouter(d, hop: 3), d], "trace to \(d)")
        }
        #expect(summary.dispatch.matched == 1500 * 3)
        let refused = summary.dispatch.stale + summary.dispatch.forged
        #expect(refused <= UInt64(lateCount) && refused >= UInt64(lateCount) * 9 / 10)
    }
}

/// ICMP echo (`-I`) through the same engine: echo replies reach, silence is filtered.
@Suite struct ICMPMethodTests {
    @Test func icmpEchoTracesReachHostsAndStopAtBlackHoles() throws {
        let net = SimulatedNetwork { d in
            d.value & 1 == 0
                ? SimulatedPath(hops: threeRouters, destination: .listening(ports: []))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        let destinations = (1...40).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(0)) }
        let (results, summary) = try trace(net, destinations) {
            $0.method = .icmpEcho
            $0.gapLimit = 2
        }
        #expect(results.count == 40)
        for t in results {
            #expect(t.hops.prefix(3).map(\.firstResponder) == [r(1), r(5), r(9)])
            if t.request.destination.value & 1 == 0 {
                #expect(t.reached && t.state == .reachable && t.hops.count == 4 && t.hops[3].outcome == .echoReply)
            } else {
                #expect(!t.reached && t.state == .filtered && t.stopReason == .gapLimit)
            }
        }
        #expect(summary.reached == 20 && summary.filtered == 20 && summary.dispatch.rejected == 0)
        // Paris: one identifier; words differ.
        let probes = net.sent.filter { $0.destination == IPv4Address(198, 51, 100, 2) }
        #expect(Set(probes.map(\.sourcePort)) == [40000] && Set(probes.map(\.sequence)).count == probes.count)
    }

    @Test func mplsLabelStacksReachTheHopsOfEveryKind() throws {
        for method in [ProbeMethod.tcp(.syn), .udp(.byPort), .icmpEcho] {
            let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443, 53])) }
            let top = MPLSLabelEntry(label: 24001, tc: 0, bottom: false, ttl: 1)
            let bottom = MPLSLabelEntry(label: 16, tc: 5, bottom: true, ttl: 1)
            net.mplsStacks[r(5)] = [top.raw, bottom.raw]
            let (results, summary) = try trace(net, [(target, method == .icmpEcho ? 0 : (method == .udp(.byPort) ? 53 : 443))]) {
                $0.method = method
            }
            let t = try #require(results.first)
            #expect(t.reached && t.hops.count == 4, "\(method)")
            #expect(t.hops[1].probes.allSatisfy { $0.mpls?.entries == [top, bottom] }, "\(method)")
            #expect(t.hops[0].probes.allSatisfy { $0.mpls == nil } && t.hops[2].probes.allSatisfy { $0.mpls == nil })
            #expect(summary.dispatch.rejected == 0)
        }
    }

    @Test func anUnreachablePlacedNearerCountsAsHeardForTheSilenceBelowIt() throws {
        // Rate-limiting routers, and at hop 4 one without a route that rate-limits its unreachables too:
        // a trace may hear nothing but that unreachable, answering a probe sent with a larger TTL and
        // placed at hop 4 by its quote. The trace was heard from at hop 4, so its silent hops below are a
        // rate limit (marked so), never "a limit or the end of the path" (unknown).
        let path: [SimulatedHop] = [.rateLimited(r(1), perSecond: 1, burst: 2), .rateLimited(r(5), perSecond: 1, burst: 2),
            .rateLimited(r(9), perSecond: 1, burst: 2), .rateLimitedUnreachable(r(13), code: 0, perSecond: 5, burst: 1)]
        let net = SimulatedNetwork { _ in SimulatedPath(hops: path, destination: .listening(ports: [443])) }
        net.initialICMPTokens = 0
        let destinations = (1...120).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(443)) }
        let (results, _) = try trace(net, destinations) {
            $0.maxTTL = 8
            $0.probesPerHop = 1
            $0.waitNanos = 300_000_000
            $0.rate = 300
        }
        var placed = 0
        for t in results where t.stopReason == .unreachable {
            guard let hop4 = t.hops.last, hop4.probes.contains(where: { $0.sentTTL != nil }) else { continue }
            placed += 1
            for hop in t.hops.dropLast() where hop.outcome == .none {
                #expect(!hop.probes.contains { $0.silence == .unknown }, "\(t.request.destination) ttl \(hop.ttl): \(hop.kind)")
            }
        }
        #expect(placed > 0, "no trace heard only a placed unreachable: the test did not exercise the case")
    }
}
