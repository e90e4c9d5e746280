// UDP probes through the probe-kind seam: the packet as RFC 768 and the services' RFCs lay it out (the
// checksum field holds the tag word's high half and still verifies, checked with a sum written here
// independently of InternetChecksum), the split tag layout's round trip (including the cycle walk that
// keeps the IPv4 ID non-zero), and every kind of reply read back: routers' errors, the destination's
// port unreachable, DNS and NTP answers echoing the word, and answers that name no probe.

import Testing

@testable import FastTraceWire

@Suite struct UDPProbeTests {
    static let source = IPv4Address(192, 0, 2, 1)
    static let destination = IPv4Address(198, 51, 100, 7)
    static let codec = ProbeTagCodec(key0: 21, key1: 22)

    static func flow(port: UInt16) -> ProbeFlow {
        ProbeFlow(source: source, destination: destination, sourcePort: 40000, destinationPort: port,
            protocolNumber: IPv4Layout.protocolUDP, epoch: 5)
    }

    func written(_ kind: UDPProbeKind, port: UInt16, tag: ProbeTag = ProbeTag(slot: 300, ttl: 6, attempt: 1),
        length: Int = 40) -> (bytes: [UInt8], stamp: ProbeTagCodec.Stamp)
    {
        let flow = Self.flow(port: port)
        let stamp = Self.codec.encode(tag, digest: Self.codec.digest(flow), layout: .splitWithID)
        var buffer = [UInt8](repeating: 0xEE, count: 1600)
        let n = buffer.withUnsafeMutableBytes {
            kind.write(ProbeSpec(flow: flow, ttl: tag.ttl, stamp: stamp, length: length), into: $0)
        }
        return (Array(buffer[0..<n]), stamp)
    }

    /// RFC 768's checksum check, written out: the one's-complement sum of the pseudo-header and the
    /// datagram (checksum field included) is 0xFFFF when the checksum is right.
    static func udpChecksumVerifies(_ packet: [UInt8]) -> Bool {
        let udp = Array(packet[20...])
        var words: [UInt32] = [
            UInt32(packet[12]) << 8 | UInt32(packet[13]), UInt32(packet[14]) << 8 | UInt32(packet[15]),
            UInt32(packet[16]) << 8 | UInt32(packet[17]), UInt32(packet[18]) << 8 | UInt32(packet[19]),
            17, UInt32(udp.count),
        ]
        for i in stride(from: 0, to: udp.count, by: 2) {
            words.append(UInt32(udp[i]) << 8 | (i + 1 < udp.count ? UInt32(udp[i + 1]) : 0))
        }
        var sum: UInt32 = 0
        for w in words {
            sum += w
            sum = (sum & 0xFFFF) + (sum >> 16)
        }
        return sum == 0xFFFF
    }

    static func be16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }

    @Test("the checksum field carries the word and verifies", arguments: [
        (UDPPayloadChoice.byPort, UInt16(53), 72), (.byPort, 123, 76), (.byPort, 33434, 40),
        (.fixed([0xDE, 0xAD, 0xBE]), 7, 33), (.fixed([0x01, 0x02, 0x03, 0x04]), 7, 34),
    ])
    func layout(payload: UDPPayloadChoice, port: UInt16, length: Int) throws {
        let kind = UDPProbeKind(payload: payload)
        for slot in stride(from: UInt16(0), to: 2000, by: 7) {
            let (p, stamp) = written(kind, port: port, tag: ProbeTag(slot: slot, ttl: 3, attempt: 2))
            #expect(p.count == length)
            #expect(p[0] == 0x45 && p[9] == 17 && p[8] == 3 && Int(Self.be16(p, 2)) == length)
            #expect(Self.be16(p, 4) == stamp.ipID && stamp.ipID != 0)
            #expect(UInt32(Self.be16(p, 26)) << 16 | UInt32(Self.be16(p, 4)) == stamp.sequence)
            #expect(Self.be16(p, 20) == 40000 && Self.be16(p, 22) == port && Int(Self.be16(p, 24)) == length - 20)
            // An all-zero checksum field means "none" and verifies nothing; every other value must verify.
            #expect(Self.be16(p, 26) == 0 || Self.udpChecksumVerifies(p))
            #expect(InternetChecksum.checksum(p.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<20]) }) == 0)
            if case .fixed(let bytes) = payload { #expect(Array(p[28..<(28 + bytes.count)]) == bytes) }
        }
    }

    @Test func aDNSProbeIsAQueryForTheWordUnderInvalid() throws {
        let (p, stamp) = written(UDPProbeKind(), port: 53)
        let label = (0..<8).map { String((stamp.sequence >> UInt32(28 - 4 * $0)) & 0xF, radix: 16) }.joined()
        // Flags: recursion desired; one question, no other records; `<word>.fasttrace.invalid` IN A.
        let expected = "0100" + "0001" + "0000" + "0000" + "0000" + "08" + hex(Array(label.utf8))
            + "09" + hex(Array("fasttrace".utf8)) + "07" + hex(Array("invalid".utf8)) + "00" + "0001" + "0001"
        #expect(hex(Array(p[30...])) == expected)
    }

    @Test func anNTPProbeIsAClientRequestWhoseTransmitTimestampHoldsTheWord() throws {
        let (p, stamp) = written(UDPProbeKind(), port: 123)
        let ntp = Array(p[28...])
        #expect(ntp.count == 48 && ntp[0] == 0x23)
        #expect(UInt32(Self.be16(ntp, 40)) << 16 | UInt32(Self.be16(ntp, 42)) == stamp.sequence)
        #expect(ntp[1..<40].allSatisfy { $0 == 0 } && ntp[46] == 0 && ntp[47] == 0)
    }

    @Test func theSplitLayoutRoundTripsAndNeverGivesAZeroID() throws {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<50_000 {
            var tag = ProbeTag.random(using: &rng)
            if tag.ttl == 0 { tag = ProbeTag(slot: tag.slot, ttl: 1, attempt: tag.attempt) }
            let flow = ProbeFlow(source: IPv4Address(UInt32.random(in: 0...UInt32.max, using: &rng)),
                destination: Self.destination, sourcePort: 40000, destinationPort: 53, protocolNumber: 17,
                epoch: UInt16.random(in: 0...UInt16.max, using: &rng))
            let digest = Self.codec.digest(flow)
            let stamp = Self.codec.encode(tag, digest: digest, layout: .splitWithID)
            #expect(stamp.ipID != 0 && stamp.ipID == UInt16(truncatingIfNeeded: stamp.sequence))
            let (read, mac) = Self.codec.identify(stamp.sequence, layout: .splitWithID)
            #expect(read == tag)
            #expect(Self.codec.verify(read, macBits: mac, quotedIPID: nil, digest: digest))
        }
    }

    @Test func aTagWhoseWordWouldHaveAZeroLowHalfIsWalkedOnAndReadBack() throws {
        // Find a tag whose first encryption has a zero low half (1 in 65,536): the walk must move it on
        // and identify must walk back to it.
        let digest = Self.codec.digest(Self.flow(port: 53))
        var found: ProbeTag?
        search: for slot in UInt16(0)..<UInt16(ProbeTag.slotCount) {
            for ttl in UInt8(1)...64 {
                let tag = ProbeTag(slot: slot, ttl: ttl, attempt: 0)
                let plain = ProbeTagCodec.plainWord(tag, mac: Self.codec.mac(tag, digest: digest), layout: .splitWithID)
                if Self.codec.permute(plain) & 0xFFFF == 0 {
                    found = tag
                    break search
                }
            }
        }
        let tag = try #require(found)
        let stamp = Self.codec.encode(tag, digest: digest, layout: .splitWithID)
        #expect(stamp.ipID != 0)
        let (read, mac) = Self.codec.identify(stamp.sequence, layout: .splitWithID)
        #expect(read == tag && Self.codec.verify(read, macBits: mac, quotedIPID: nil, digest: digest))
        // The word the walk skipped names no probe: TTL 0.
        let skipped = Self.codec.permute(ProbeTagCodec.plainWord(tag, mac: Self.codec.mac(tag, digest: digest),
            layout: .splitWithID))
        #expect(Self.codec.identify(skipped, layout: .splitWithID).tag.ttl == 0)
    }

    @Test func routersErrorsAndTheDestinationsPortUnreachableCarryTheWord() throws {
        let kind = UDPProbeKind()
        let (probe, stamp) = written(kind, port: 33434)
        let router = IPv4Address(198, 18, 0, 1)
        let exceeded = try #require(icmpError(type: 11, code: 0, from: router, quoting: probe).withUnsafeBytes {
            kind.parse($0)
        })
        #expect(exceeded.response == .timeExceeded && exceeded.tagWord == stamp.sequence)
        #expect(exceeded.responder == router && exceeded.probeDestination == Self.destination)
        #expect(exceeded.sourcePort == 40000 && exceeded.destinationPort == 33434 && exceeded.quotedTTL == 6)
        let closed = try #require(icmpError(type: 3, code: 3, from: Self.destination, quoting: probe)
            .withUnsafeBytes { kind.parse($0) })
        #expect(closed.response == .portUnreachable && closed.tagWord == stamp.sequence)
        #expect(closed.response.isFromDestination && kind.portState(for: closed.response) == .closed)
        // Port unreachable from anyone but the destination is a router's unreachable like the others.
        let fromRouter = try #require(icmpError(type: 3, code: 3, from: router, quoting: probe)
            .withUnsafeBytes { kind.parse($0) })
        #expect(fromRouter.response == .unreachable(code: 3) && kind.portState(for: fromRouter.response) == nil)
        let prohibited = try #require(icmpError(type: 3, code: 13, from: router, quoting: probe)
            .withUnsafeBytes { kind.parse($0) })
        #expect(prohibited.response == .unreachable(code: 13))
        // A quote shorter than the UDP header, or of a TCP probe, is not a UDP probe's error.
        #expect(icmpError(type: 11, code: 0, from: router, quoting: probe, quoteLength: 27).withUnsafeBytes {
            kind.parse($0) } == nil)
        let tcp = write(TCPProbe(source: Self.source, destination: Self.destination, sourcePort: 40000,
            destinationPort: 53, sequence: 1, ttl: 3))
        #expect(icmpError(type: 11, code: 0, from: router, quoting: tcp).withUnsafeBytes { kind.parse($0) } == nil)
    }

    /// The destination's UDP answer: `data` from `port` to the probe's source port.
    func answer(from port: UInt16, _ data: [UInt8]) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: 28 + data.count)
        packet.withUnsafeMutableBytes { raw in
            let ip = IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[0..<20]))
            ip.setHeaderLength(20)
            ip.setTotalLength(UInt16(raw.count))
            ip.setTTL(60)
            ip.setProtocol(17)
            ip.setSource(Self.destination)
            ip.setDestination(Self.source)
            ip.updateChecksum()
        }
        packet[20] = UInt8(port >> 8); packet[21] = UInt8(port & 0xFF)
        packet[22] = 0x9C; packet[23] = 0x40  // 40000
        packet[24] = UInt8((8 + data.count) >> 8); packet[25] = UInt8((8 + data.count) & 0xFF)
        packet.replaceSubrange(28..., with: data)
        return packet
    }

    @Test func aDNSAnswerEchoesTheWordInItsQuestion() throws {
        let kind = UDPProbeKind()
        let (probe, stamp) = written(kind, port: 53)
        var dns = Array(probe[28...])
        dns[2] |= 0x80  // QR
        dns[3] = 0x83  // NXDOMAIN
        let reply = try #require(answer(from: 53, dns).withUnsafeBytes { kind.parse($0) })
        #expect(reply.response == .udpReply && !reply.unkeyed && reply.tagWord == stamp.sequence)
        #expect(reply.sourcePort == 40000 && reply.destinationPort == 53 && reply.responder == Self.destination)
        #expect(kind.portState(for: reply.response) == .open)
        // Upper-case hex (a server applying 0x20 case randomisation) reads the same.
        var upper = dns
        for i in 13..<21 where upper[i] >= 0x61 { upper[i] -= 0x20 }
        #expect(answer(from: 53, upper).withUnsafeBytes { kind.parse($0) }?.tagWord == stamp.sequence)
        // The query itself (QR clear), a label that is not 8 hex digits, or a cut-off question: no word.
        for bad in [Array(probe[28...]), { var d = dns; d[14] = 0x7A; return d }(), Array(dns.prefix(18))] {
            let read = try #require(answer(from: 53, bad).withUnsafeBytes { kind.parse($0) })
            #expect(read.unkeyed)
        }
    }

    @Test func anNTPAnswerEchoesTheWordInItsOriginTimestamp() throws {
        let kind = UDPProbeKind()
        let (probe, stamp) = written(kind, port: 123)
        var ntp = [UInt8](repeating: 0, count: 48)
        ntp[0] = 0x24  // v4, server
        ntp.replaceSubrange(24..<32, with: probe[(28 + 40)..<(28 + 48)])
        let reply = try #require(answer(from: 123, ntp).withUnsafeBytes { kind.parse($0) })
        #expect(reply.response == .udpReply && !reply.unkeyed && reply.tagWord == stamp.sequence)
        // A client-mode packet, or one cut short, names no probe.
        var client = ntp
        client[0] = 0x23
        #expect(answer(from: 123, client).withUnsafeBytes { kind.parse($0) }?.unkeyed == true)
        #expect(answer(from: 123, Array(ntp.prefix(40))).withUnsafeBytes { kind.parse($0) }?.unkeyed == true)
    }

    @Test func answersFromOtherPortsOrToAFixedPayloadNameNoProbe() throws {
        #expect(answer(from: 7, [1, 2, 3]).withUnsafeBytes { UDPProbeKind().parse($0) }?.unkeyed == true)
        // With --payload-hex nothing is echoed that fasttrace wrote: even port 53's answer is unkeyed.
        let fixed = UDPProbeKind(payload: .fixed([0, 1]))
        let (probe, _) = written(UDPProbeKind(), port: 53)
        var dns = Array(probe[28...])
        dns[2] |= 0x80
        #expect(answer(from: 53, dns).withUnsafeBytes { fixed.parse($0) }?.unkeyed == true)
        // Shorter than a UDP header: not an answer at all.
        #expect(Array(answer(from: 53, []).prefix(27)).withUnsafeBytes { UDPProbeKind().parse($0) } == nil)
    }
}
