// Things that are not replies to our probes must parse to nil, and nothing may crash the parser.

import Testing
import FastTraceWire

@Suite("Reply parser rejects what is not a reply")
struct MalformedReplyTests {
    static let te = bytes(hex: CapturedFixtures.timeExceeded)
    static let reset = bytes(hex: CapturedFixtures.reset)
    static let synAck = bytes(hex: CapturedFixtures.synAck)

    /// `packet` with `edit` applied.
    func edited(_ packet: [UInt8], _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var copy = packet
        edit(&copy)
        return copy
    }

    @Test("empty input and random garbage never crash")
    func garbage() {
        #expect(parse([]) == nil)
        var rng = SeededGenerator(seed: 0xBAD)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<120, using: &rng)
            var junk = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half the time make it look like IPv4 so the deeper layers get exercised too.
            if rng.next() & 1 == 0, !junk.isEmpty { junk[0] = 0x45 }
            _ = parse(junk)
        }
        // Random mutations of real replies exercise every layer.
        for fixture in [Self.te, Self.reset, Self.synAck, bytes(hex: CapturedFixtures.timeExceededQuotingOptions)] {
            for _ in 0..<5_000 {
                var mutated = fixture
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                _ = parse(mutated)
            }
        }
    }

    @Test("all zeros, and 0xFF filled buffers, of every small length")
    func filled() {
        for length in 0...80 {
            #expect(parse([UInt8](repeating: 0, count: length)) == nil)
            #expect(parse([UInt8](repeating: 0xFF, count: length)) == nil)
        }
    }

    @Test("wrong IP version")
    func wrongVersion() {
        #expect(parse(edited(Self.te) { $0[0] = 0x65 }) == nil)  // "IPv6" with an IPv4 body
        #expect(parse(edited(Self.reset) { $0[0] = 0x05 }) == nil)
    }

    @Test("IHL below 5 or beyond the bytes present")
    func badIHL() {
        #expect(parse(edited(Self.te) { $0[0] = 0x44 }) == nil)
        #expect(parse(edited(Self.reset) { $0[0] = 0x4F }) == nil)  // 60-byte header in 40 bytes
        // The quoted header's IHL too: 28 + 4 * 15 > the quote.
        #expect(parse(edited(Self.te) { $0[28] = 0x4F }) == nil)
        #expect(parse(edited(Self.te) { $0[28] = 0x43 }) == nil)
    }

    @Test("a non-first fragment is rejected; a first fragment (MF, offset 0) is not")
    func fragments() {
        #expect(parse(edited(Self.reset) { $0[6] = 0x00; $0[7] = 0x01 }) == nil)
        #expect(parse(edited(Self.te) { $0[6] = 0x20; $0[7] = 0xB9 }) == nil)
        #expect(parse(edited(Self.reset) { $0[6] = 0x20; $0[7] = 0x00 }) != nil)
        // A quote of a non-first fragment does not start with a TCP header.
        #expect(parse(edited(Self.te) { $0[28 + 7] = 0x03 }) == nil)
    }

    @Test("ICMP other than time exceeded and unreachable", arguments: [UInt8(0), 4, 5, 8, 12, 13, 14])
    func otherICMPTypes(type: UInt8) {
        #expect(parse(edited(Self.te) { $0[20] = type }) == nil)
    }

    @Test("a real-looking ICMP echo reply")
    func echoReply() {
        var packet = [UInt8](repeating: 0, count: 20 + 8 + 56)
        packet.withUnsafeMutableBytes { raw in
            let ip = IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[0..<20]))
            ip.setHeaderLength(20)
            ip.setTotalLength(UInt16(raw.count))
            ip.setTTL(64)
            ip.setProtocol(IPv4Layout.protocolICMP)
            ip.setSource(IPv4Address(198, 51, 100, 10))
            ip.setDestination(IPv4Address(192, 0, 2, 2))
            ip.updateChecksum()
            let icmp = ICMPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[20...]))
            icmp.setType(ICMPLayout.typeEchoReply)
            icmp.setRestOfHeader(0x1234_0001)
            icmp.updateChecksum()
        }
        #expect(parse(packet) == nil)
    }

    @Test("TCP without a usable acknowledgement: bare RST, bare SYN (our own probe), plain ACK, FIN+ACK")
    func tcpFlags() {
        #expect(parse(edited(Self.reset) { $0[33] = TCPLayout.rst }) == nil)
        #expect(parse(edited(Self.synAck) { $0[33] = TCPLayout.syn }) == nil)
        #expect(parse(edited(Self.synAck) { $0[33] = TCPLayout.ack }) == nil)
        #expect(parse(edited(Self.synAck) { $0[33] = TCPLayout.ack | TCPLayout.fin }) == nil)
        // Our own outgoing probe, as a capture socket also sees it.
        let probe = write(TCPProbe(
            source: IPv4Address(192, 0, 2, 2), destination: IPv4Address(198, 51, 100, 10), sourcePort: 40000,
            destinationPort: 443, sequence: 1, ttl: 3))
        #expect(parse(probe) == nil)
    }

    @Test("TCP data offset below 5")
    func tcpDataOffset() {
        #expect(parse(edited(Self.synAck) { $0[32] = 0x40 }) == nil)
    }

    @Test("an ICMP error quoting UDP, ICMP or anything but TCP", arguments: [UInt8(17), 1, 47, 132])
    func quotedNotTCP(proto: UInt8) {
        #expect(parse(edited(Self.te) { $0[28 + 9] = proto }) == nil)
    }

    @Test("an outer protocol other than ICMP and TCP", arguments: [UInt8(17), 0, 41, 50])
    func outerNotICMPOrTCP(proto: UInt8) {
        #expect(parse(edited(Self.reset) { $0[9] = proto }) == nil)
    }

    @Test("quote cut inside the TCP ports/sequence")
    func shortQuote() {
        let probe = write(TCPProbe(
            source: IPv4Address(192, 0, 2, 2), destination: IPv4Address(198, 51, 100, 10), sourcePort: 40000,
            destinationPort: 443, sequence: 1, ttl: 3))
        for quote in 0..<28 {
            let packet = icmpError(type: 11, code: 0, from: IPv4Address(192, 0, 2, 1), quoting: probe, quoteLength: quote)
            #expect(parse(packet) == nil, "quote of \(quote) bytes")
        }
        let enough = icmpError(type: 11, code: 0, from: IPv4Address(192, 0, 2, 1), quoting: probe, quoteLength: 28)
        #expect(parse(enough)?.tagWord == 1)
    }

    @Test("an outer total length shorter than the headers cuts nothing it should not")
    func lyingTotalLength() {
        // A total length smaller than the header is impossible; the parser falls back to the bytes present.
        #expect(parse(edited(Self.reset) { $0[2] = 0; $0[3] = 4 }) != nil)
        // A total length that cuts into the TCP header makes the reply too short.
        #expect(parse(edited(Self.reset) { $0[2] = 0; $0[3] = 30 }) == nil)
    }
}
