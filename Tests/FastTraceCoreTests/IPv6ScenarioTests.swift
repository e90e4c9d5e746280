// The engine over IPv6 on the simulated network, for every probe kind: the simulator answers IPv6
// probes with ICMPv6 errors (time exceeded, unreachables with their IPv6 codes) and IPv6 replies (SYN-ACK,
// RST, UDP service answers, echo replies), its model addresses standing for 2001:db8:ff00::a.b.c.d. The
// same scenarios as over IPv4: open, closed and silent ports, ACK probes, ECMP by flow, an administrative
// unreachable, and the hostile twins (routers limiting their ICMPv6, forged errors).

import FastTraceWire
import Testing

@testable import FastTraceCore
import FastTraceTestSupport

private let vantage6 = SimulatedNetwork.ipv6(vantage)
private func v6(_ a: IPv4Address) -> IPAddress { SimulatedNetwork.ipv6(a) }

/// `trace` over IPv6: the model destinations' IPv6 forms, from the vantage point's.
func trace6(_ network: SimulatedNetwork, _ destinations: [(IPv4Address, UInt16)],
    configure: (inout EngineConfiguration) -> Void = { _ in }) throws -> (results: [TraceResult], summary: RunSummary)
{
    var config = EngineConfiguration()
    config.waitNanos = 1_000_000_000
    config.sourcePort = 40000
    config.rate = 100_000
    configure(&config)
    let engine = TraceEngine(configuration: config, transport: network, clock: network, codec: ProbeTagCodec(key0: 1, key1: 2))
    var requests = destinations.enumerated().map {
        TraceRequest(index: $0.offset, destination: v6($0.element.0), port: $0.element.1, source: vantage6)
    }.makeIterator()
    var results: [TraceResult] = []
    let summary = try engine.run(&requests) { results.append($0) }
    return (results.sorted { $0.request.index < $1.request.index }, summary)
}

@Suite struct IPv6ScenarioTests {
    @Test(arguments: [TCPProbeFlags.syn, .ack, .synECN])
    func tcpOverIPv6FindsOpenClosedAndUnfilteredPorts(flags: TCPProbeFlags) throws {
        let net = SimulatedNetwork { d in
            d.value & 1 == 0 ? SimulatedPath(hops: threeRouters, destination: .listening(ports: [443]))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        let destinations = (1...20).flatMap { i in [443, 80].map { (IPv4Address(198, 51, 100, UInt8(i)), UInt16($0)) } }
        let (results, summary) = try trace6(net, destinations) {
            $0.method = .tcp(flags)
            $0.gapLimit = 2
        }
        #expect(results.count == 40)
        for t in results {
            #expect(t.request.family == .v6)
            #expect(t.hops.prefix(3).map(\.firstResponder) == [v6(r(1)), v6(r(5)), v6(r(9))], "\(t.hops.map(\.firstResponder))")
            #expect(t.hops.prefix(3).allSatisfy { $0.outcome == .timeExceeded })
            guard t.request.destination.low & 1 == 0 else {
                #expect(!t.reached && t.state == .filtered && t.stopReason == .gapLimit)
                continue
            }
            #expect(t.reached && t.hops.count == 4 && t.hops[3].firstResponder == t.request.destination)
            switch (flags, t.request.port) {
            case (.ack, _): #expect(t.state == .unfiltered && t.hops[3].outcome == .reset)
            case (_, 443): #expect(t.state == .open && t.hops[3].outcome == .synAck)
            default: #expect(t.state == .closed && t.hops[3].outcome == .reset)
            }
        }
        #expect(summary.dispatch.rejected == 0 && summary.dispatch.matched > 0)
        // Paris: one source port; every probe's word its own.
        let probes = net.sent.filter { $0.destination == IPv4Address(198, 51, 100, 2) && $0.destinationPort == 443 }
        #expect(probes.allSatisfy { $0.family == .v6 })
        #expect(Set(probes.map(\.sourcePort)) == [40000] && Set(probes.map(\.sequence)).count == probes.count)
    }

    @Test func udpOverIPv6FindsOpenClosedAndSilentPorts() throws {
        let net = SimulatedNetwork { d in
            d.value & 1 == 0 ? SimulatedPath(hops: threeRouters, destination: .listening(ports: [53, 123]))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        let ports: [UInt16] = [53, 123, 33434]
        let destinations = (1...20).flatMap { i in ports.map { (IPv4Address(198, 51, 100, UInt8(i)), $0) } }
        let (results, summary) = try trace6(net, destinations) {
            $0.method = .udp(.byPort)
            $0.gapLimit = 2
        }
        #expect(results.count == 60)
        for t in results {
            #expect(t.hops.prefix(3).map(\.firstResponder) == [v6(r(1)), v6(r(5)), v6(r(9))])
            switch (t.request.destination.low & 1 == 0, t.request.port) {
            case (true, 53), (true, 123):
                #expect(t.reached && t.state == .open && t.hops.count == 4 && t.hops[3].outcome == .udpReply)
            case (true, _):
                // ICMPv6 port unreachable (type 1 code 4) from the destination.
                #expect(t.reached && t.state == .closed && t.hops[3].outcome == .portUnreachable
                    && t.hops[3].firstResponder == t.request.destination, "\(t.hops.map(\.kind))")
            default:
                #expect(!t.reached && t.state == .openFiltered && t.stopReason == .gapLimit)
            }
        }
        #expect(summary.open == 20 && summary.closed == 10 && summary.openFiltered == 30)
        #expect(summary.dispatch.rejected == 0 && summary.dispatch.unkeyed == 0)
    }

    @Test func icmpEchoOverIPv6ReachesHostsAndStopsAtBlackHoles() throws {
        let net = SimulatedNetwork { d in
            d.value & 1 == 0 ? SimulatedPath(hops: threeRouters, destination: .listening(ports: []))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        let (results, summary) = try trace6(net, (1...20).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(0)) }) {
            $0.method = .icmpEcho
            $0.gapLimit = 2
        }
        for t in results {
            #expect(t.hops.prefix(3).map(\.firstResponder) == [v6(r(1)), v6(r(5)), v6(r(9))])
            if t.request.destination.low & 1 == 0 {
                #expect(t.reached && t.state == .reachable && t.hops.count == 4 && t.hops[3].outcome == .echoReply)
            } else {
                #expect(!t.reached && t.state == .filtered)
            }
        }
        #expect(summary.reached == 10 && summary.dispatch.rejected == 0)
        // Paris: the identifier fixed, the words differ.
        let probes = net.sent.filter { $0.destination == IPv4Address(198, 51, 100, 2) }
        #expect(probes.allSatisfy { $0.family == .v6 && $0.protocolNumber == 1 })
        #expect(Set(probes.map(\.sourcePort)).count == 1 && Set(probes.map(\.sequence)).count == probes.count)
    }

    @Test(arguments: [ProbeMethod.tcp(.syn), .udp(.byPort), .icmpEcho])
    func ecmpOverIPv6KeepsEachFlowOnOneBranch(method: ProbeMethod) throws {
        // Hop 2 is an equal-cost pair chosen by a hash of the 5-tuple: each trace's three probes there
        // must meet the same router (the flow is constant), and across traces both are met.
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .ecmp([r(21), r(25)]), .router(r(9))], destination: .listening(ports: [443, 53]))
        }
        let port: UInt16 = method == .icmpEcho ? 0 : method == .udp(.byPort) ? 53 : 443
        let (results, _) = try trace6(net, (1...40).map { (IPv4Address(198, 51, 100, UInt8($0)), port) }) { $0.method = method }
        var seen: Set<IPAddress> = []
        for t in results {
            #expect(t.reached, "\(method) \(t.request.destination)")
            let second = Set(t.hops[1].probes.compactMap(\.responder))
            #expect(second.count == 1 && [v6(r(21)), v6(r(25))].contains(second.first!), "\(method): \(second)")
            seen.formUnion(second)
        }
        #expect(seen.count == 2, "\(method): one branch only, the test cannot see mixing")
    }

    @Test func anAdministrativeUnreachableOverIPv6StopsTheTraceFiltered() throws {
        // A router answering every probe with destination unreachable, administratively prohibited (IPv4
        // code 13, ICMPv6 code 1): the trace stops there, filtered, the router at its hop.
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .unreachable(r(5), code: 13)], destination: .listening(ports: [443]))
        }
        let (results, _) = try trace6(net, [(target, 443)])
        let t = try #require(results.first)
        #expect(!t.reached && t.state == .filtered && t.stopReason == .unreachable)
        #expect(t.hops.last?.firstResponder == v6(r(5)) && t.hops.last?.outcome == .unreachableV6(code: 1),
            "\(t.hops.map(\.outcome))")
    }

    @Test func underRateLimitedRoutersEveryIPv6TraceIsRightForReachAndState() throws {
        // Six routers limiting their ICMPv6 to us (1/s, burst 6, as Linux does), 200 traces at 2,000
        // probes/s: reach and state right for every one, the silences put down to the limits.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: RateLimitTests.longLimitedPath, destination: .listening(ports: [443])) }
        let (results, summary) = try trace6(net, (0..<200).map { (IPv4Address(198, 19, 0, UInt8($0 + 1)), UInt16(443)) }) {
            $0.maxTTL = 12
            $0.rate = 2000
            $0.gapLimit = 3
        }
        #expect(results.count == 200)
        let wrong = results.filter { !($0.reached && $0.state == .open && $0.destinationTTL == 7) }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first \(wrong.first.map { "\($0.request.destination) \($0.hops.map(\.kind))" } ?? "")")
        #expect(summary.rateLimitedPositions > 0 && summary.rateLimitedHops > 0)
    }

    @Test func forgedICMPv6ErrorsGetNothingAccepted() throws {
        // For every probe sent, an off-path forger sends an ICMPv6 time exceeded quoting the real flow
        // (addresses, ports) but a made-up word: none is accepted, every trace stays right.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .listening(ports: [443])) }
        var forged = 0
        net.onSend = { probe in
            guard probe.family == .v6 else { return }
            var packet = [UInt8](repeating: 0, count: 60)
            packet[0] = 0x60
            packet[5] = 20
            packet[6] = 6
            packet[7] = 1
            packet.withUnsafeMutableBytes { b in
                v6(probe.source).write(into: UnsafeMutableRawBufferPointer(rebasing: b[8..<24]))
                v6(probe.destination).write(into: UnsafeMutableRawBufferPointer(rebasing: b[24..<40]))
            }
            for (i, byte) in [UInt8(probe.sourcePort >> 8), UInt8(probe.sourcePort & 0xFF), UInt8(probe.destinationPort >> 8),
                UInt8(probe.destinationPort & 0xFF)].enumerated() { packet[40 + i] = byte }
            let word = probe.sequence ^ 0x5A5A_0001
            packet[44] = UInt8(word >> 24)
            packet[45] = UInt8(word >> 16 & 0xFF)
            packet[46] = UInt8(word >> 8 & 0xFF)
            packet[47] = UInt8(word & 0xFF)
            net.inject(SimulatedNetwork.icmp6Error(type: 3, code: 0, from: v6(r(77)), quoting: packet), at: probe.time + 50_000)
            forged += 1
        }
        let (results, summary) = try trace6(net, (1...20).map { (IPv4Address(198, 51, 100, UInt8($0)), UInt16(443)) })
        #expect(forged > 0)
        #expect(results.allSatisfy { $0.reached && $0.state == .open && !$0.hops.contains { $0.firstResponder == v6(r(77)) } })
        #expect(summary.dispatch.forged + summary.dispatch.ipIDRewritten + summary.dispatch.stale >= UInt64(forged) / 2,
            "\(summary.dispatch)")
        #expect(summary.dispatch.matched == 20 * 12)
    }
}

/// DNAT over IPv6 (a NAT66 that leaves ICMPv6 errors untranslated, as the lab's `dnat` kind does): routers
/// past it quote the translated destination, and for UDP the checksum the NAT adjusted. The dispatcher
/// refuses such quotes over IPv6 today (`Dispatcher.accept`: a translated destination is accepted for
/// IPv4 only, and `untranslatedWord` recovers the adjusted checksum through the IPv4 ID only), so these
/// hops show `*` and UDP traces behind the NAT never end. Marked as known issues until the dispatcher
/// takes them: each then fails for its known issue no longer occurring, and the wrapper goes.
@Suite struct NAT66ScenarioTests {
    static let inside = IPv4Address(198, 18, 96, 10)

    @Test func quotesOfTheTranslatedIPv6DestinationAreMatchedAndReported() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: threeRouters + [.router(r(13))], destination: .listening(ports: [443]),
                dnat: (afterTTL: 2, to: Self.inside))
        }
        let (results, summary) = try trace6(net, [(target, 443)])
        let t = try #require(results.first)
        #expect(t.state == .open && t.hops.count == 5)
        do {
            #expect(t.hops.map(\.translatedDestination) == [nil, nil, v6(Self.inside), v6(Self.inside), nil])
            #expect(t.hops.map(\.firstResponder) == [v6(r(1)), v6(r(5)), v6(r(9)), v6(r(13)), v6(target)])
            #expect(summary.dispatch.rejected == 0 && summary.dispatch.matched == 15)
        }
    }

    @Test func noDNATStrictRefusesTranslatedIPv6Quotes() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: threeRouters + [.router(r(13))], destination: .listening(ports: [443]),
                dnat: (afterTTL: 2, to: Self.inside))
        }
        let (results, summary) = try trace6(net, [(target, 443)]) {
            $0.reasks = 0
            $0.acceptTranslatedQuotes = false
        }
        let t = try #require(results.first)
        #expect(t.state == .open && t.reached && t.hops.count == 5)
        #expect(t.hops.map(\.firstResponder) == [v6(r(1)), v6(r(5)), nil, nil, v6(target)])
        #expect(t.hops.allSatisfy { $0.translatedDestination == nil })
        #expect(summary.dispatch.foreign == 6 && summary.dispatch.matched == 9)
    }

    @Test func behindANAT66ThatAdjustsTheChecksumUDPRoutersAndClosedPortsAnswer() throws {
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: [.router(r(1)), .router(r(5)), .router(r(9))], destination: .listening(ports: [53]),
                dnat: (afterTTL: 2, to: Self.inside))
        }
        let (results, summary) = try trace6(net, [(target, 33434), (target, 53)]) {
            $0.method = .udp(.byPort)
            $0.gapLimit = 2
        }
        let closed = try #require(results.first), open = try #require(results.last)
        #expect(open.state == .open && open.reached)
        do {
            #expect(closed.state == .closed && closed.reached && closed.hops.count == 4, "\(closed.hops.map(\.kind))")
            #expect(closed.hops.map(\.firstResponder) == [v6(r(1)), v6(r(5)), v6(r(9)), v6(Self.inside)])
            #expect(closed.hops[2].probes.allSatisfy { $0.translatedDestination == v6(Self.inside) })
            #expect(open.hops.map(\.firstResponder) == [v6(r(1)), v6(r(5)), v6(r(9)), v6(target)])
            #expect(summary.dispatch.forged == 0 && summary.dispatch.rejected == 0)
        }
    }
}
