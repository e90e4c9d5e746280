// UDP to a service's port (traceroute -U, Paris-style): the probe, its payloads and how its replies are
// read. The ports stay fixed for a whole trace, so a load balancer hashing the 5-tuple sends every probe
// the same way; what tells probes apart travels where no balancer looks: the IPv4 ID and the UDP
// checksum, which every ICMP error quotes (RFC 792's 8 bytes of the transport header are the ports,
// the length and the checksum). The checksum is made to hold the chosen value by two compensating
// payload bytes, as Paris traceroute does. Services that answer get a request they understand, whose
// answer echoes the tag: DNS (53) echoes the question, NTP (123) the client's transmit timestamp.

/// Field offsets of the UDP header (RFC 768).
public enum UDPLayout {
    /// Source port (16 bits).
    @inlinable public static var sourcePort: Int { 0 }
    /// Destination port (16 bits).
    @inlinable public static var destinationPort: Int { 2 }
    /// Length of header and data (16 bits).
    @inlinable public static var length: Int { 4 }
    /// Checksum over the pseudo-header, header and data; 0 means none (16 bits).
    @inlinable public static var checksum: Int { 6 }
    /// Header length.
    @inlinable public static var headerLength: Int { 8 }
}

/// What a UDP probe carries after its header.
public enum UDPPayloadChoice: Sendable, Hashable {
    /// A request the port's service answers where fasttrace has one (a DNS query to 53, an NTP client
    /// request to 123), echoing the probe's tag; zero bytes up to the packet length elsewhere.
    case byPort
    /// These bytes, to every port (`--payload-hex`). Answers to them echo nothing fasttrace can check.
    case fixed([UInt8])
}

/// The payloads fasttrace writes, and where each keeps the tag word and the checksum's compensation.
public enum UDPService: Sendable, Equatable {
    /// A DNS query (RFC 1035): ID = compensation, recursion desired, one question `<8 hex
    /// digits>.fasttrace.invalid` IN A. Every answer (NXDOMAIN, REFUSED, …) echoes the question, and so
    /// the word in its first label. `.invalid` (RFC 6761) never resolves, so no resolver queries on.
    case dns
    /// An NTPv4 client request (RFC 5905), 48 bytes: the transmit timestamp's first 32 bits are the word,
    /// the next 16 the compensation. A server copies the transmit timestamp into its answer's origin
    /// timestamp.
    case ntp
    /// Zero bytes (or `--payload-hex`'s), the compensation in the two bytes after them.
    case raw

    /// The well-known port's service, when fasttrace has a request for it.
    @inlinable public static func forPort(_ port: UInt16) -> UDPService {
        switch port {
        case 53: .dns
        case 123: .ntp
        default: .raw
        }
    }

    /// Bytes of a DNS query: 12 header, question name 1 + 8 + 1 + 9 + 1 + 7 + 1, type and class 4.
    @inlinable public static var dnsLength: Int { 44 }
    /// Bytes of an NTP request.
    @inlinable public static var ntpLength: Int { 48 }
    /// The question name after the word's label, as length-prefixed labels and the root.
    @inlinable static var dnsSuffix: StaticString { "\u{9}fasttrace\u{7}invalid\u{0}" }
}

/// UDP over IPv4, to the service's port.
///
/// Tag: the 32-bit word (`ProbeTagCodec.TagLayout.splitWithID`) travels as the UDP checksum (high half)
/// and the IPv4 ID (low half, never 0); a DNS or NTP answer echoes it whole (the question's first label,
/// the origin timestamp). An ICMP port unreachable from the destination itself says the port is closed;
/// a UDP answer from it, open; silence, open or filtered.
public struct UDPProbeKind: ProbeKind {
    /// What the probes carry.
    public let payload: UDPPayloadChoice

    public init(payload: UDPPayloadChoice = .byPort) { self.payload = payload }

    public var method: ProbeMethod { .udp(payload) }
    public var protocolNumber: UInt8 { IPv4Layout.protocolUDP }
    /// IPv4 20, UDP 8 and the 2 compensating bytes.
    public var minimumLength: Int { 30 }
    public var maximumLength: Int { 1500 }
    public var tagLayout: ProbeTagCodec.TagLayout { .splitWithID }
    public var silentState: PortState { .openFiltered }

    /// The service a probe to `port` speaks to: none with a fixed payload.
    @inlinable func service(_ port: UInt16) -> UDPService {
        if case .fixed = payload { return .raw }
        return UDPService.forPort(port)
    }

    /// The packet length a probe to `port` has when `length` is asked for: DNS and NTP requests have their
    /// own, a fixed payload its bytes and the compensation; otherwise `length`.
    @inlinable public func packetLength(port: UInt16, asked length: Int) -> Int {
        let headers = IPv4Layout.minimumHeaderLength + UDPLayout.headerLength
        switch service(port) {
        case .dns: return headers + UDPService.dnsLength
        case .ntp: return headers + UDPService.ntpLength
        case .raw:
            if case .fixed(let bytes) = payload { return headers + bytes.count + 2 }
            return length
        }
    }

    @inlinable
    public func write(_ probe: ProbeSpec, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let source = probe.flow.source.ipv4, let destination = probe.flow.destination.ipv4 else {
            return write6(probe, into: buffer)
        }
        let port = probe.flow.destinationPort
        let length = packetLength(port: port, asked: probe.length)
        precondition(length >= minimumLength && length <= maximumLength && buffer.count >= length,
            "UDP probe length out of range")
        // SAFETY: every slice below lies within buffer[0..<length], checked just above.
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let ipLength = IPv4Layout.minimumHeaderLength
        IPv4HeaderWriter.writeProbeHeader(probe, protocol: IPv4Layout.protocolUDP, length: length, source: source,
            destination: destination, into: UnsafeMutableRawBufferPointer(rebasing: packet[0..<ipLength]))

        let datagram = UnsafeMutableRawBufferPointer(rebasing: packet[ipLength...])
        let compensation = writeDatagram(probe, port: port, into: datagram, lowHalfInPayload: false)
        let sum = InternetChecksum.pseudoHeaderSum(source: source, destination: destination,
            protocol: IPv4Layout.protocolUDP, length: datagram.count)
        Self.compensate(datagram, at: compensation, pseudoHeader: sum)
        return length
    }

    /// The IPv6 probe's length for `port` when `length` (an IPv4 length) is asked for: the same
    /// transport bytes behind a 20-byte-longer header, and for zero or `--payload-hex` payloads 2 more
    /// bytes, which hold the word's low half (IPv6 has no ID to carry it).
    @inlinable public func packetLength6(port: UInt16, asked length: Int) -> Int {
        let growth = TCPProbeKind.ipv6Growth
        switch service(port) {
        case .dns, .ntp: return packetLength(port: port, asked: length) + growth
        case .raw:
            if case .fixed(let bytes) = payload {
                return IPv6Layout.headerLength + UDPLayout.headerLength + 2 + bytes.count + 2
            }
            return max(length + growth, IPv6Layout.headerLength + UDPLayout.headerLength + 4)
        }
    }

    /// The IPv6 probe. The word travels whole in the payload, which an ICMPv6 error quotes: a DNS
    /// question's first label, an NTP transmit timestamp, or (zero and fixed payloads) its high half in
    /// the checksum as over IPv4 and its low half in the payload's first two bytes. The checksum's
    /// compensation is in the last two bytes (the DNS ID for DNS, after the timestamp's word for NTP).
    @inlinable
    func write6(_ probe: ProbeSpec, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let port = probe.flow.destinationPort
        let length = packetLength6(port: port, asked: probe.length)
        precondition(length <= buffer.count, "UDP probe length out of range")
        // SAFETY: every slice below lies within buffer[0..<length], checked just above.
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let ipLength = IPv6Layout.headerLength
        IPv6HeaderWriter.writeProbeHeader(probe, protocol: IPv4Layout.protocolUDP, length: length,
            into: UnsafeMutableRawBufferPointer(rebasing: packet[0..<ipLength]))
        let datagram = UnsafeMutableRawBufferPointer(rebasing: packet[ipLength...])
        let compensation = writeDatagram(probe, port: port, into: datagram, lowHalfInPayload: true)
        let sum = InternetChecksum.pseudoHeaderSum(source: probe.flow.source, destination: probe.flow.destination,
            protocol: IPv4Layout.protocolUDP, length: datagram.count)
        Self.compensate(datagram, at: compensation, pseudoHeader: sum)
        return length
    }

    /// Writes the UDP header and payload of `probe` into `datagram` (all of it) and returns where the two
    /// compensating bytes go. With `lowHalfInPayload` (IPv6) a zero or fixed payload starts with the
    /// word's low half.
    @inlinable
    func writeDatagram(_ probe: ProbeSpec, port: UInt16, into datagram: UnsafeMutableRawBufferPointer,
        lowHalfInPayload: Bool) -> Int
    {
        let udpLength = datagram.count
        let word = probe.stamp.sequence
        datagram.initializeMemory(as: UInt8.self, repeating: 0)
        datagram.storeWireUInt16(probe.flow.sourcePort, at: UDPLayout.sourcePort)
        datagram.storeWireUInt16(port, at: UDPLayout.destinationPort)
        datagram.storeWireUInt16(UInt16(udpLength), at: UDPLayout.length)
        datagram.storeWireUInt16(UInt16(truncatingIfNeeded: word >> 16), at: UDPLayout.checksum)
        var data = UDPLayout.headerLength
        switch service(port) {
        case .dns:
            // ID (compensation), flags: recursion desired; one question.
            datagram.storeWireUInt16(0x0100, at: data + 2)
            datagram.storeWireUInt16(1, at: data + 4)
            datagram.storeWireUInt8(8, at: data + 12)
            for i in 0..<8 {
                let nibble = UInt8(truncatingIfNeeded: word >> UInt32(28 - 4 * i)) & 0xF
                datagram.storeWireUInt8(nibble < 10 ? 0x30 + nibble : 0x57 + nibble, at: data + 13 + i)
            }
            let suffix = UDPService.dnsSuffix
            for i in 0..<suffix.utf8CodeUnitCount {
                datagram.storeWireUInt8(suffix.utf8Start[i], at: data + 21 + i)
            }
            datagram.storeWireUInt16(1, at: data + 40)  // type A
            datagram.storeWireUInt16(1, at: data + 42)  // class IN
            return data
        case .ntp:
            datagram.storeWireUInt8(0x23, at: data)  // leap 0, version 4, mode 3 (client)
            datagram.storeWireUInt32(word, at: data + 40)
            return data + 44
        case .raw:
            if lowHalfInPayload {
                datagram.storeWireUInt16(UInt16(truncatingIfNeeded: word), at: data)
                data += 2
            }
            if case .fixed(let bytes) = payload {
                for (i, byte) in bytes.enumerated() { datagram.storeWireUInt8(byte, at: data + i) }
                return data + bytes.count
            }
            return udpLength - 2
        }
    }

    /// Makes the checksum field hold the value already in it: the one's-complement sum of the pseudo-
    /// header and everything must come to 0xFFFF, and the two bytes at `offset` make it so. Two bytes at
    /// an odd offset add in swapped order (RFC 1071 §2(B)).
    @inlinable
    static func compensate(_ datagram: UnsafeMutableRawBufferPointer, at offset: Int, pseudoHeader sum: UInt64) {
        let folded = ~InternetChecksum.finish(InternetChecksum.partialSum(UnsafeRawBufferPointer(datagram), initial: sum))
        let fix = 0xFFFF - folded
        datagram.storeWireUInt16(offset & 1 == 0 ? fix : fix.byteSwapped, at: offset)
    }

    @inlinable @inline(__always)
    public func parse(_ packet: UnsafeRawBufferPointer) -> ParsedReply? {
        if packet.count > 0 && packet.wireUInt8(at: 0) >> 4 == 6 { return parse6(packet) }
        guard let ip = IPv4HeaderView(packet), ip.fragmentOffset == 0 else { return nil }
        let payload = ip.payloadWithinTotalLength
        switch ip.proto {
        case IPv4Layout.protocolICMP: return parseICMP(outer: ip, payload)
        case IPv4Layout.protocolUDP: return parseAnswer(outer: ip, payload)
        default: return nil
        }
    }

    /// Parses an IPv6 packet: an ICMPv6 error quoting a UDP probe (the word read from the quoted
    /// payload, where `write6` put it), or a UDP answer from the destination's port.
    @inlinable
    func parse6(_ packet: UnsafeRawBufferPointer) -> ParsedReply? {
        guard let ip = IPv6HeaderView(packet) else { return nil }
        let payload = ip.payloadWithinLength
        switch ip.proto {
        case IPv6Layout.protocolICMPv6:
            guard let icmp = ICMPHeaderView(payload), var response = ReplyParser.errorResponse6(icmp),
                let quoted = IPv6HeaderView(icmp.payload), quoted.proto == IPv4Layout.protocolUDP
            else { return nil }
            let udp = quoted.payload
            guard udp.count >= UDPLayout.headerLength else { return nil }
            let port = udp.wireUInt16(at: UDPLayout.destinationPort)
            // SAFETY: headerLength <= udp.count, checked above.
            let data = UnsafeRawBufferPointer(rebasing: udp[UDPLayout.headerLength...])
            let word: UInt32
            switch service(port) {
            case .dns:
                guard let w = Self.dnsQuestionWord(data) else { return nil }
                word = w
            case .ntp:
                guard data.count >= 44 else { return nil }
                word = data.wireUInt32(at: 40)
            case .raw:
                guard data.count >= 2 else { return nil }
                word = UInt32(udp.wireUInt16(at: UDPLayout.checksum)) << 16 | UInt32(data.wireUInt16(at: 0))
            }
            if response == .unreachableV6(code: IPv6Layout.codePortUnreachable) && ip.source == quoted.destination {
                response = .portUnreachable
            }
            var reply = ParsedReply(
                response: response, responder: ip.source, probeSource: quoted.source,
                probeDestination: quoted.destination, sourcePort: udp.wireUInt16(at: UDPLayout.sourcePort),
                destinationPort: port, tagWord: word, replyTTL: ip.hopLimit, quotedTTL: quoted.hopLimit)
            reply.mpls = ICMPExtensions.mplsStack6(icmp)
            return reply
        case IPv4Layout.protocolUDP:
            return answer(payload, from: ip.source, to: ip.destination, replyTTL: ip.hopLimit)
        default:
            return nil
        }
    }

    /// The word in a DNS message's question, query or answer alike: a first label of 8 hex digits.
    @inlinable
    static func dnsQuestionWord(_ message: UnsafeRawBufferPointer) -> UInt32? {
        guard message.count >= 21, message.wireUInt8(at: 12) == 8 else { return nil }
        var word: UInt32 = 0
        for i in 0..<8 {
            let c = message.wireUInt8(at: 13 + i) | 0x20  // either case
            let nibble: UInt8
            switch c {
            case 0x30...0x39: nibble = c - 0x30
            case 0x61...0x66: nibble = c - 0x57
            default: return nil
            }
            word = word << 4 | UInt32(nibble)
        }
        return word
    }

    /// An ICMP error quoting a UDP probe: the word is the quoted checksum and IPv4 ID.
    @inlinable
    func parseICMP(outer ip: IPv4HeaderView, _ payload: UnsafeRawBufferPointer) -> ParsedReply? {
        guard let icmp = ICMPHeaderView(payload) else { return nil }
        guard let quoted = IPv4HeaderView(icmp.payload), quoted.proto == IPv4Layout.protocolUDP,
            quoted.fragmentOffset == 0
        else { return nil }
        let udp = quoted.payload
        guard udp.count >= UDPLayout.headerLength else { return nil }
        let response: Response
        switch icmp.type {
        case ICMPLayout.typeTimeExceeded: response = .timeExceeded
        case ICMPLayout.typeDestinationUnreachable:
            // Port unreachable is what the destination itself says of a closed port; from anyone else it
            // is a router's unreachable like the others.
            response = icmp.code == 3 && ip.source == quoted.destination ? .portUnreachable
                : .unreachable(code: icmp.code)
        default: return nil
        }
        let word = UInt32(udp.wireUInt16(at: UDPLayout.checksum)) << 16 | UInt32(quoted.identification)
        var reply = ParsedReply(
            response: response, responder: ip.source, probeSource: quoted.source,
            probeDestination: quoted.destination, sourcePort: udp.wireUInt16(at: UDPLayout.sourcePort),
            destinationPort: udp.wireUInt16(at: UDPLayout.destinationPort), tagWord: word, replyTTL: ip.ttl,
            quotedIPID: quoted.identification, quotedTTL: quoted.ttl)
        reply.mpls = ICMPExtensions.mplsStack(icmp)
        return reply
    }

    /// A UDP datagram from the destination's port: keyed when it is the answer of a service fasttrace
    /// spoke to, `unkeyed` otherwise (nothing in it names a probe).
    @inlinable
    func parseAnswer(outer ip: IPv4HeaderView, _ payload: UnsafeRawBufferPointer) -> ParsedReply? {
        answer(payload, from: IPAddress(ip.source), to: IPAddress(ip.destination), replyTTL: ip.ttl)
    }

    /// A UDP datagram (`payload`, from its header on) from `source` to `destination`, either family.
    @inlinable
    func answer(_ payload: UnsafeRawBufferPointer, from source: IPAddress, to destination: IPAddress,
        replyTTL: UInt8) -> ParsedReply?
    {
        guard payload.count >= UDPLayout.headerLength else { return nil }
        let servicePort = payload.wireUInt16(at: UDPLayout.sourcePort)
        let stated = Int(payload.wireUInt16(at: UDPLayout.length))
        let end = stated >= UDPLayout.headerLength && stated < payload.count ? stated : payload.count
        // SAFETY: headerLength...end lies within payload (end <= payload.count, checked above).
        let data = UnsafeRawBufferPointer(rebasing: payload[UDPLayout.headerLength..<end])
        var word: UInt32?
        switch service(servicePort) {
        case .dns: word = Self.dnsWord(data)
        case .ntp: word = Self.ntpWord(data)
        case .raw: word = nil
        }
        var reply = ParsedReply(
            response: .udpReply, responder: source, probeSource: destination, probeDestination: source,
            sourcePort: payload.wireUInt16(at: UDPLayout.destinationPort), destinationPort: servicePort,
            tagWord: word ?? 0, replyTTL: replyTTL)
        reply.unkeyed = word == nil
        return reply
    }

    /// The word in a DNS answer's question: a response (QR set) with a question whose first label is 8
    /// hex digits.
    @inlinable
    static func dnsWord(_ message: UnsafeRawBufferPointer) -> UInt32? {
        guard message.count >= 21, message.wireUInt8(at: 2) & 0x80 != 0, message.wireUInt16(at: 4) >= 1 else {
            return nil
        }
        return dnsQuestionWord(message)
    }

    /// The word in an NTP answer: a server's (mode 4) origin timestamp's first 32 bits.
    @inlinable
    static func ntpWord(_ message: UnsafeRawBufferPointer) -> UInt32? {
        guard message.count >= UDPService.ntpLength, message.wireUInt8(at: 0) & 0x7 == 4 else { return nil }
        return message.wireUInt32(at: 24)
    }

    @inlinable
    public func alternateTagWord(of reply: ParsedReply, payloadLength: Int) -> UInt32? { nil }

    public func portState(for response: Response) -> PortState? {
        switch response {
        case .udpReply: .open
        case .portUnreachable: .closed
        default: nil
        }
    }
}
