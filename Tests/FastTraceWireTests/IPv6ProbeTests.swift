// Every probe kind over IPv6: the probe as RFC 8200 and the transport's RFC lay it out (checked with a
// pseudo-header sum written here byte by byte, independently of InternetChecksum), the fields a load
// balancer hashes the same for every probe of a trace (traffic class, flow label, ports; for ICMPv6 the
// type, code and checksum), and every reply read back: a router's ICMPv6 error quoting the probe (with
// extension headers before it, MPLS extensions after it, or cut short anywhere), and each kind's answer
// from the destination. The builders here play the router and the destination from raw bytes.

import Testing

@testable import FastTraceWire

@Suite struct IPv6ProbeTests {
    static let source = IPAddress("2001:db8:1::10")!
    static let destination = IPAddress("2001:db8:ff::7")!
    static let router = IPAddress("2001:db8:a::1")!
    static let codec = ProbeTagCodec(key0: 61, key1: 62)

    static func flow(_ kind: any ProbeKind, port: UInt16) -> ProbeFlow {
        ProbeFlow(source: source, destination: destination, sourcePort: 42000, destinationPort: port,
            protocolNumber: kind.protocolNumber, epoch: 5)
    }

    /// `kind`'s IPv6 probe for `tag` (asked for `length` as an IPv4 length), and its stamp.
    static func written(_ kind: any ProbeKind, port: UInt16, _ tag: ProbeTag, length: Int = 60, tos: UInt8 = 0)
        -> (bytes: [UInt8], stamp: ProbeTagCodec.Stamp)
    {
        let f = flow(kind, port: port)
        let stamp = codec.encode(tag, digest: codec.digest(f), layout: kind.tagLayout)
        var buffer = [UInt8](repeating: 0xEE, count: 1700)
        let n = buffer.withUnsafeMutableBytes {
            kind.write(ProbeSpec(flow: f, ttl: tag.ttl, stamp: stamp, tos: tos, length: length), into: $0)
        }
        return (Array(buffer[0..<n]), stamp)
    }

    static func be16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }
    static func be32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(be16(b, at)) << 16 | UInt32(be16(b, at + 2)) }

    static func addressBytes(_ a: IPAddress) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        out.withUnsafeMutableBytes { a.write(into: $0) }
        return out
    }

    /// RFC 8200 §8.1 written out: source, destination, upper-layer length (32 bits), three zero bytes and
    /// the next header, then the upper-layer bytes; their 16-bit one's-complement sum must be 0xFFFF.
    static func sumsRight(_ packet: [UInt8]) -> Bool {
        let upper = Array(packet[40...])
        var bytes = Array(packet[8..<40])
        let n = UInt32(upper.count)
        bytes += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), 0, 0, 0, packet[6]]
        bytes += upper
        var sum: UInt32 = 0
        for i in stride(from: 0, to: bytes.count, by: 2) {
            sum += UInt32(bytes[i]) << 8 | (i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0)
            sum = (sum & 0xFFFF) + (sum >> 16)
        }
        return sum == 0xFFFF
    }

    /// A fixed IPv6 header: payload length from `payload`, hop limit 60.
    static func header6(from: IPAddress, to: IPAddress, next: UInt8, payloadLength: Int, hopLimit: UInt8 = 60) -> [UInt8] {
        [0x60, 0, 0, 0, UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), next, hopLimit]
            + addressBytes(from) + addressBytes(to)
    }

    /// An ICMPv6 error from `from` quoting `probe` (cut to 1,232 bytes as RFC 4443 says), with `extra`
    /// (say, RFC 4884 extensions) after the quote and `byte4` in the first unused byte (RFC 4884's length).
    static func icmpError(type: UInt8, code: UInt8, from: IPAddress = router, quoting probe: [UInt8],
        byte4: UInt8 = 0, extra: [UInt8] = [], extensionHeader: Bool = false) -> [UInt8]
    {
        let quote = Array(probe.prefix(1232))
        let icmp = [type, code, 0, 0, byte4, 0, 0, 0] + quote + extra
        if extensionHeader {
            // A hop-by-hop options header (8 bytes: next header, length 0, a PadN option) before ICMPv6.
            let hbh: [UInt8] = [58, 0, 1, 4, 0, 0, 0, 0]
            return header6(from: from, to: source, next: 0, payloadLength: hbh.count + icmp.count) + hbh + icmp
        }
        return header6(from: from, to: source, next: 58, payloadLength: icmp.count) + icmp
    }

    static func parse(_ kind: any ProbeKind, _ packet: [UInt8]) -> ParsedReply? {
        packet.withUnsafeBytes { kind.parse($0) }
    }

    static let kinds: [(any ProbeKind, UInt16)] = [
        (TCPProbeKind(flags: .syn), 443), (TCPProbeKind(flags: .ack), 443), (TCPProbeKind(flags: .synECN), 443),
        (UDPProbeKind(), 53), (UDPProbeKind(), 123), (UDPProbeKind(), 33434),
        (UDPProbeKind(payload: .fixed([0xC0, 0xFF, 0xEE])), 9999), (ICMPProbeKind(), 0),
    ]

    @Test("each kind's IPv6 probe: header, hashed fields fixed, checksum right, 20 bytes more than IPv4")
    func layout() throws {
        for (kind, port) in Self.kinds {
            var fixed: Set<[UInt8]> = []
            for slot in stride(from: UInt16(0), to: 2000, by: 13) {
                let tag = ProbeTag(slot: slot, ttl: UInt8(slot % 30 + 1), attempt: UInt8(slot % 3))
                let (p, stamp) = Self.written(kind, port: port, tag, length: 60, tos: 0x28)
                #expect(p[0] >> 4 == 6 && Self.be32(p, 0) >> 20 & 0xFF == 0x28, "\(kind.method)")
                #expect(Self.be32(p, 0) & 0xF_FFFF == 0, "flow label fixed at 0: \(kind.method)")
                #expect(Int(Self.be16(p, 4)) == p.count - 40 && p[7] == tag.ttl)
                #expect(p[6] == (kind is ICMPProbeKind ? 58 : kind.protocolNumber))
                #expect(Array(p[8..<24]) == Self.addressBytes(Self.source)
                    && Array(p[24..<40]) == Self.addressBytes(Self.destination))
                #expect(Self.sumsRight(p), "checksum of \(kind.method) slot \(slot)")
                switch kind {
                case is TCPProbeKind:
                    #expect(p.count == 80 && Self.be32(p, 44) == stamp.sequence)
                    fixed.insert(Array(p[40..<44]))
                case is ICMPProbeKind:
                    #expect(p.count == 80 && p[40] == 128 && p[41] == 0 && Self.be32(p, 48) == stamp.sequence)
                    #expect(UInt32(Self.be16(p, 46)) == stamp.sequence >> 16)
                    fixed.insert(Array(p[40..<46]))  // type, code, checksum, identifier
                default:
                    fixed.insert(Array(p[40..<44]))  // ports
                    #expect(Self.be16(p, 46) == UInt16(stamp.sequence >> 16), "checksum holds the high half")
                    let udp = UDPProbeKind(payload: (kind as! UDPProbeKind).payload)
                    #expect(p.count == udp.packetLength6(port: port, asked: 60))
                }
            }
            #expect(fixed.count == 1, "\(kind.method): the fields a balancer hashes never change")
        }
    }

    @Test("a router's time exceeded and unreachables quote each kind's word, with or without an extension header")
    func routerErrors() throws {
        for (kind, port) in Self.kinds {
            let tag = ProbeTag(slot: 321, ttl: 7, attempt: 1)
            let (probe, stamp) = Self.written(kind, port: port, tag, length: 200)
            var quoted = probe
            quoted[7] = 1  // the hop limit the router saw
            for hbh in [false, true] {
                let reply = try #require(Self.parse(kind, Self.icmpError(type: 3, code: 0, quoting: quoted,
                    extensionHeader: hbh)), "\(kind.method)")
                #expect(reply.response == .timeExceeded && reply.responder == Self.router)
                #expect(reply.probeSource == Self.source && reply.probeDestination == Self.destination)
                #expect(reply.tagWord == stamp.sequence && reply.quotedTTL == 1 && reply.sourcePort == 42000)
                #expect(reply.destinationPort == port && !reply.quotesIPID && reply.quotesProbe)
                #expect(reply.replyTTL == 60 && reply.mpls == .none)
            }
            for code: UInt8 in [0, 1, 3, 4] {
                let reply = try #require(Self.parse(kind, Self.icmpError(type: 1, code: code, quoting: quoted)))
                #expect(reply.response == .unreachableV6(code: code) && reply.tagWord == stamp.sequence,
                    "a router's port unreachable is not the destination's: \(kind.method)")
                #expect(reply.response.unreachableCode! == (code, .v6))
            }
            // Other ICMPv6 messages answer no probe: packet too big, parameter problem, time exceeded in
            // fragment reassembly.
            #expect(Self.parse(kind, Self.icmpError(type: 2, code: 0, quoting: quoted)) == nil)
            #expect(Self.parse(kind, Self.icmpError(type: 4, code: 0, quoting: quoted)) == nil)
            #expect(Self.parse(kind, Self.icmpError(type: 3, code: 1, quoting: quoted)) == nil)
        }
    }

    @Test("each kind's destination answer over IPv6 carries the word")
    func destinationAnswers() throws {
        let tag = ProbeTag(slot: 77, ttl: 9, attempt: 0)
        // TCP SYN: SYN-ACK acknowledging sequence + 1, and RST-ACK.
        let (syn, synStamp) = Self.written(TCPProbeKind(flags: .syn), port: 443, tag)
        for (flags, want) in [(UInt8(0x12), Response.synAck), (0x14, .reset), (0x52, .synAckECN)] {
            let ack = synStamp.sequence &+ 1
            let tcp: [UInt8] = [1, 187, 0xA4, 0x10, 0, 0, 0, 9, UInt8(ack >> 24), UInt8(ack >> 16 & 0xFF),
                UInt8(ack >> 8 & 0xFF), UInt8(ack & 0xFF), 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
            let packet = Self.header6(from: Self.destination, to: Self.source, next: 6, payloadLength: 20) + tcp
            let reply = try #require(Self.parse(TCPProbeKind(flags: .syn), packet))
            #expect(reply.response == want && reply.tagWord == synStamp.sequence && reply.responder == Self.destination)
            #expect(reply.sourcePort == 42000 && reply.destinationPort == 443 && !reply.quotesProbe)
        }
        _ = syn
        // TCP ACK: a RST whose sequence number is the probe's acknowledgement number.
        let (_, ackStamp) = Self.written(TCPProbeKind(flags: .ack), port: 443, tag)
        let s = ackStamp.sequence
        let rst: [UInt8] = [1, 187, 0xA4, 0x10, UInt8(s >> 24), UInt8(s >> 16 & 0xFF), UInt8(s >> 8 & 0xFF),
            UInt8(s & 0xFF), 0, 0, 0, 0, 0x50, 0x04, 0, 0, 0, 0, 0, 0]
        let rstReply = try #require(Self.parse(TCPProbeKind(flags: .ack),
            Self.header6(from: Self.destination, to: Self.source, next: 6, payloadLength: 20) + rst))
        #expect(rstReply.response == .reset && rstReply.tagWord == s)

        // ICMPv6 echo reply: the request's identifier, sequence and data back.
        let (echo, echoStamp) = Self.written(ICMPProbeKind(), port: 0, tag)
        var replyMessage = Array(echo[40...])
        replyMessage[0] = 129
        let echoReply = try #require(Self.parse(ICMPProbeKind(),
            Self.header6(from: Self.destination, to: Self.source, next: 58, payloadLength: replyMessage.count)
                + replyMessage))
        #expect(echoReply.response == .echoReply && echoReply.tagWord == echoStamp.sequence)
        #expect(echoReply.sourcePort == 42000 && echoReply.responder == Self.destination)
        // A reply whose sequence disagrees with its data is no answer to our request.
        replyMessage[6] ^= 0xFF
        #expect(Self.parse(ICMPProbeKind(), Self.header6(from: Self.destination, to: Self.source, next: 58,
            payloadLength: replyMessage.count) + replyMessage) == nil)

        // UDP: the destination's own port unreachable says closed; a DNS answer echoes the question.
        for port: UInt16 in [53, 123, 33434] {
            let (probe, stamp) = Self.written(UDPProbeKind(), port: port, tag)
            let closed = try #require(Self.parse(UDPProbeKind(), Self.icmpError(type: 1, code: 4,
                from: Self.destination, quoting: probe)))
            #expect(closed.response == .portUnreachable && closed.tagWord == stamp.sequence, "port \(port)")
        }
        let (dnsProbe, dnsStamp) = Self.written(UDPProbeKind(), port: 53, tag)
        var answer = Array(dnsProbe[48...])
        answer[2] |= 0x80  // QR: a response, question echoed
        let udp: [UInt8] = [0, 53, 0xA4, 0x10, UInt8((answer.count + 8) >> 8), UInt8((answer.count + 8) & 0xFF), 0, 0]
        let dns = try #require(Self.parse(UDPProbeKind(), Self.header6(from: Self.destination, to: Self.source,
            next: 17, payloadLength: answer.count + 8) + udp + answer))
        #expect(dns.response == .udpReply && dns.tagWord == dnsStamp.sequence && !dns.unkeyed)
    }

    @Test("RFC 4884 over ICMPv6: the length counts 64-bit words, the MPLS stack is read")
    func mplsExtensions() throws {
        let kind = UDPProbeKind()
        let (probe, stamp) = Self.written(kind, port: 33434, ProbeTag(slot: 5, ttl: 3, attempt: 0), length: 60)
        // Original datagram padded to 128 bytes (16 64-bit words), then the extension structure: version 2,
        // checksum, one MPLS object (class 1, C-type 1) with two entries.
        var original = probe
        original += [UInt8](repeating: 0, count: 128 - original.count)
        var structure: [UInt8] = [0x20, 0, 0, 0, 0, 12, 1, 1, 0x05, 0xDC, 0x10, 0x01, 0x00, 0x01, 0x01, 0xFE]
        var sum: UInt32 = 0
        for i in stride(from: 0, to: structure.count, by: 2) { sum += UInt32(structure[i]) << 8 | UInt32(structure[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        let check = ~UInt16(sum)
        structure[2] = UInt8(check >> 8)
        structure[3] = UInt8(check & 0xFF)
        let packet = Self.icmpError(type: 3, code: 0, quoting: original, byte4: 16, extra: structure)
        let reply = try #require(Self.parse(kind, packet))
        #expect(reply.tagWord == stamp.sequence && reply.mpls.depth == 2)
        #expect(reply.mpls.entries.first?.label == 24001)
        // A length of 8 words (64 bytes) is shorter than RFC 4884's 128-byte original datagram: no stack.
        let short = Self.icmpError(type: 3, code: 0, quoting: original, byte4: 8, extra: structure)
        #expect(try #require(Self.parse(kind, short)).mpls == .none)
    }

    @Test("a reply cut short anywhere, or a later fragment, is refused without reading past its end")
    func truncatedAndFragments() throws {
        for (kind, port) in Self.kinds {
            let (probe, _) = Self.written(kind, port: port, ProbeTag(slot: 9, ttl: 2, attempt: 0), length: 100)
            let full = Self.icmpError(type: 3, code: 0, quoting: probe, extensionHeader: true)
            for cut in 0..<full.count {
                // Exactly the bytes present: a read past them would trip the address sanitizer / bounds.
                let prefix = Array(full[0..<cut])
                if let reply = Self.parse(kind, prefix) { #expect(reply.response == .timeExceeded) }
            }
            // A fragment header with a non-zero offset before the ICMPv6 message: not a first fragment.
            let icmp = Array(full[48...])
            let fragment: [UInt8] = [58, 0, 0x01, 0x00, 0, 0, 0, 1]
            let later = Self.header6(from: Self.router, to: Self.source, next: 44, payloadLength: 8 + icmp.count)
                + fragment + icmp
            #expect(Self.parse(kind, later) == nil, "\(kind.method)")
            let first: [UInt8] = [58, 0, 0x00, 0x01, 0, 0, 0, 1]  // offset 0, more fragments
            let firstFragment = Self.header6(from: Self.router, to: Self.source, next: 44, payloadLength: 8 + icmp.count)
                + first + icmp
            #expect(Self.parse(kind, firstFragment)?.response == .timeExceeded, "\(kind.method)")
        }
    }

    @Test("the response codes of both families survive a result cell's packing")
    func packedCodes() {
        for code: UInt8 in 0...7 {
            #expect(Response(packedCode: Response.unreachableV6(code: code).packedCode) == .unreachableV6(code: code))
        }
        for code: UInt8 in 0...15 {
            #expect(Response(packedCode: Response.unreachable(code: code).packedCode) == .unreachable(code: code))
        }
        #expect(Response.unreachableV6(code: 1).isICMPError && Response.unreachableV6(code: 1).isUnreachable)
        #expect(!Response.unreachableV6(code: 1).isFromDestination)
    }
}
