// The probe-kind seam for TCP: each flag variant's probe byte for byte (RFC 793 layout, checksums
// computed independently with Python's RFC 1071 sum), where each kind's tag comes back in its replies,
// and what a destination's answer means for the port under each kind.

import Testing

@testable import FastTraceWire

@Suite struct ProbeKindTests {
    static let source = IPv4Address(192, 0, 2, 1)
    static let destination = IPv4Address(198, 51, 100, 7)
    static let codec = ProbeTagCodec(key0: 11, key1: 12)

    func spec(_ word: UInt32 = 0x1234_5678, ipID: UInt16 = 0x1234) -> ProbeSpec {
        ProbeSpec(flow: ProbeFlow(source: Self.source, destination: Self.destination, sourcePort: 40000,
            destinationPort: 443, epoch: 3), ttl: 5, stamp: .init(sequence: word, ipID: ipID), dontFragment: true,
            length: 40)
    }

    func written(_ kind: some ProbeKind, _ spec: ProbeSpec) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: 64)
        let length = bytes.withUnsafeMutableBytes { kind.write(spec, into: $0) }
        return Array(bytes[0..<length])
    }

    @Test("each flag variant, byte for byte", arguments: [
        // flags 02 (SYN), ack 0: the golden bare SYN of ProbeWriterTests.
        (TCPProbeFlags.syn, "450000281234400005067760c0000201c6336407" + "9c4001bb123456780000000050021" + "6d0a62e0000"),
        // flags 10 (ACK), ack = the tag word too.
        (.ack, "450000281234400005067760c0000201c6336407" + "9c4001bb1234567812345678501016d03d740000"),
        // flags c2 (CWR ECE SYN).
        (.synECN, "450000281234400005067760c0000201c6336407" + "9c4001bb123456780000000050c216d0a56e0000"),
    ])
    func golden(flags: TCPProbeFlags, expected: String) {
        #expect(hex(written(TCPProbeKind(flags: flags), spec())) == expected)
    }

    @Test func anACKProbesTagComesBackInTheResetsSequenceAndInICMPQuotes() throws {
        let kind = TCPProbeKind(flags: .ack)
        let tag = ProbeTag(slot: 77, ttl: 9, attempt: 2)
        let flow = spec().flow
        let stamp = Self.codec.encode(tag, flow: flow)
        let probe = written(kind, ProbeSpec(flow: flow, ttl: 9, stamp: stamp, length: 40))
        // The host's RST: no ACK flag, sequence = the probe's acknowledgement number (RFC 793), as Linux sends.
        var reset = tcpAnswer(to: probe, flags: TCPLayout.rst)
        reset.withUnsafeMutableBytes { raw in
            let tcp = TCPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[20...]))
            tcp.setSequence(stamp.sequence)
            tcp.setAcknowledgement(0)
        }
        let answer = try #require(reset.withUnsafeBytes { kind.parse($0) })
        #expect(answer.response == .reset && answer.tagWord == stamp.sequence && answer.responder == Self.destination)
        let (read, mac) = Self.codec.identify(answer.tagWord)
        #expect(read == tag && Self.codec.verify(read, macBits: mac, quotedIPID: nil, flow: flow))
        #expect(kind.portState(for: answer.response) == .unfiltered)
        #expect(kind.alternateTagWord(of: answer, payloadLength: 20) == nil)
        // A router's time exceeded quotes the sequence number, which carries the same word.
        let error = icmpError(type: 11, code: 0, from: IPv4Address(198, 18, 0, 1), quoting: probe)
        let quoted = try #require(error.withUnsafeBytes { kind.parse($0) })
        #expect(quoted.response == .timeExceeded && quoted.tagWord == stamp.sequence && quoted.quotedIPID == stamp.ipID)
        // A SYN-ACK is no answer to an ACK probe.
        #expect(tcpAnswer(to: probe, flags: TCPLayout.syn | TCPLayout.ack).withUnsafeBytes { kind.parse($0) } == nil)
    }

    @Test func aSYNACKWithECEIsAnECNAcceptingOpenPort() throws {
        // tcptraceroute's `[open, ecn]`: the destination set ECE on its SYN-ACK (RFC 3168 6.1.1).
        let kind = TCPProbeKind(flags: .synECN)
        let probe = written(kind, spec())
        let accepted = try #require(tcpAnswer(to: probe, flags: TCPLayout.syn | TCPLayout.ack | TCPLayout.ece)
            .withUnsafeBytes { kind.parse($0) })
        #expect(accepted.response == .synAckECN && kind.portState(for: accepted.response) == .open)
        let plain = try #require(tcpAnswer(to: probe, flags: TCPLayout.syn | TCPLayout.ack).withUnsafeBytes { kind.parse($0) })
        #expect(plain.response == .synAck)
    }

    @Test func aSYNKindReadsTheAcknowledgementAndTriesTheDataReadingOfARST() throws {
        let kind = TCPProbeKind(flags: .synECN)
        let answer = try #require(tcpAnswer(to: written(kind, spec(0xFFFF_FFF0)), flags: TCPLayout.rst | TCPLayout.ack)
            .withUnsafeBytes { kind.parse($0) })
        #expect(answer.response == .reset && answer.tagWord == 0xFFFF_FFF0)
        #expect(kind.alternateTagWord(of: answer, payloadLength: 20) == 0xFFFF_FFF0 &- 20)
        #expect(kind.alternateTagWord(of: answer, payloadLength: 0) == nil)
    }

    @Test func whatADestinationsAnswerSaysUnderEachKind() {
        let syn = TCPProbeKind(flags: .syn), ack = TCPProbeKind(flags: .ack), ecn = TCPProbeKind(flags: .synECN)
        #expect(syn.portState(for: .synAck) == .open && syn.portState(for: .reset) == .closed)
        #expect(ecn.portState(for: .synAck) == .open && ecn.portState(for: .reset) == .closed)
        #expect(ack.portState(for: .reset) == .unfiltered && ack.portState(for: .synAck) == nil)
        for kind in [syn, ack, ecn] as [TCPProbeKind] {
            #expect(kind.portState(for: .timeExceeded) == nil && kind.portState(for: .unreachable(code: 3)) == nil)
        }
        #expect(ProbeMethod.tcp(.ack).description == "tcp-ack" && ProbeMethod.tcp(.syn).description == "tcp")
    }

    @Test func everyResponseSurvivesItsPackedCode() {
        var all: [Response] = [.none, .timeExceeded, .synAck, .synAckECN, .reset]
        all += (0...15).map { Response.unreachable(code: UInt8($0)) }
        for response in all { #expect(Response(packedCode: response.packedCode) == response) }
        #expect(Set(all.map(\.packedCode)).count == all.count)
        // The most telling answer wins.
        #expect([Response.timeExceeded, .unreachable(code: 13), .reset, .synAck].map(\.precedence) == [1, 2, 3, 4])
    }
}
