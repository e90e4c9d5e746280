// The engine with every TCP probe method, through the seam: it writes each kind's probes and reads each
// kind's answers without naming TCP, and a destination's answer means what the kind says (an ACK's RST
// is `unfiltered`, never open or closed). Forged resets fail the same keyed check as every reply.

import FastTraceWire
import Testing

@testable import FastTraceCore
import FastTraceTestSupport

@Suite struct ProbeMethodTests {
    @Test(arguments: [TCPProbeFlags.syn, .ack, .synECN])
    func everyMethodTracesListeningAndSilentDestinations(flags: TCPProbeFlags) throws {
        let net = SimulatedNetwork { d in
            d.value & 1 == 0
                ? SimulatedPath(hops: threeRouters, destination: .listening(ports: [443]))
                : SimulatedPath(hops: threeRouters, destination: .blackHole)
        }
        // 443 open, 25 closed on the listening hosts.
        let destinations = (1...20).flatMap { [(IPv4Address(198, 51, 100, UInt8($0)), UInt16(443)),
            (IPv4Address(198, 51, 100, UInt8($0)), UInt16(25))] }
        let (results, summary) = try trace(net, destinations) {
            $0.method = .tcp(flags)
            $0.gapLimit = 2
        }
        #expect(results.count == 40)
        for t in results {
            #expect(t.method == .tcp(flags))
            #expect(t.hops.prefix(3).map(\.firstResponder) == [r(1), r(5), r(9)])
            guard t.request.destination.value & 1 == 0 else {
                #expect(!t.reached && t.state == .filtered && t.stopReason == .gapLimit)
                continue
            }
            #expect(t.reached && t.hops.count == 4 && t.hops[3].firstResponder == t.request.destination)
            switch flags {
            case .ack: #expect(t.state == .unfiltered && t.hops[3].outcome == .reset)
            case .syn, .synECN: #expect(t.state == (t.request.port == 443 ? .open : .closed))
            }
        }
        #expect(summary.dispatch.forged == 0 && summary.dispatch.malformed == 0)
        #expect(flags == .ack ? summary.unfiltered == 20 && summary.open == 0 : summary.open == 10 && summary.closed == 10)
        // Every probe on the wire carried the method's flags.
        #expect(net.sent.allSatisfy { $0.flags == flags.bits })
        #expect(net.sent.allSatisfy { flags == .ack ? $0.acknowledgement == $0.sequence : $0.acknowledgement == 0 })
    }

    @Test func aForgedResetToAnACKProbeIsRefused() throws {
        // A path that answers every probe with a made-up RST from the destination (any sequence number)
        // besides the real one: none of the made-up ones is accepted.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: threeRouters, destination: .blackHole) }
        var forged: UInt32 = 0
        net.onSend = { [unowned net] probe in
            forged += 1
            net.inject(SimulatedNetwork.tcpReply(from: probe.destination, to: probe.source,
                sourcePort: probe.destinationPort, destinationPort: probe.sourcePort, acknowledgement: 0,
                flags: TCPLayout.rst, sequence: probe.acknowledgement &+ forged &* 0x9E37_79B9), at: net.now() + 100_000)
        }
        let (results, summary) = try trace(net, [(target, 443)]) {
            $0.method = .tcp(.ack)
            $0.gapLimit = 2
        }
        let t = try #require(results.first)
        #expect(!t.reached && t.state == .filtered)
        #expect(summary.dispatch.forged + summary.dispatch.stale > 0 && summary.dispatch.matched == 9)
    }
}
