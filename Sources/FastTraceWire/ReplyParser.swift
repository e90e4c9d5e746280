// Reduces a captured reply (ICMP error quoting a probe, or the target's own SYN-ACK/RST) to the
// handful of fields correlation needs. Pure and allocation-free: it runs once per received packet.

/// A reply to one of our TCP probes, reduced to what correlation needs. The `probe…` fields are
/// the probe's own values as the reply reflects them, whichever kind of reply it is.
public struct ParsedReply: Sendable, Equatable {
    /// How it answers the probe (an ICMP error with its code, or the destination's own answer).
    public var response: Response
    /// Outer source: who answered (either family).
    public var responder: IPAddress
    /// Our address: the quoted source (ICMP) or the outer destination (TCP).
    public var probeSource: IPAddress
    /// The probe's destination: the quoted destination (ICMP) or the outer source (TCP).
    public var probeDestination: IPAddress
    /// The probe's source port: the quoted source port (ICMP) or the reply's destination port (TCP).
    public var sourcePort: UInt16
    /// The probe's destination port: the quoted destination port (ICMP) or the reply's source port (TCP).
    public var destinationPort: UInt16
    /// The probe's sequence number: the quoted sequence (ICMP) or the acknowledgement minus 1 (TCP). A
    /// RST answering a SYN that carried data acknowledges that data too: subtract its length as well.
    public var tagWord: UInt32
    /// Outer IP TTL of the reply (for diagnostics: distance and asymmetry hints).
    public var replyTTL: UInt8
    /// The IPv4 ID of the quoted probe header (ICMPv4 errors); 0 for TCP replies, which quote none, and
    /// for IPv6, which has no ID.
    public var quotedIPID: UInt16
    /// The TTL of the quoted probe header (ICMP errors): what the probe had left when the responder got
    /// it, so the responder sits `probe TTL − quotedTTL + 1` hops out (as scamper and yarrp read it).
    /// 0 for TCP replies, and from routers that zero it.
    public var quotedTTL: UInt8
    /// A destination's answer that carries nothing naming a probe (a UDP answer to a payload no known
    /// service echoes): it says the port answered, not which probe; the dispatcher counts it apart.
    public var unkeyed: Bool = false
    /// The MPLS label stack an ICMP error's extensions carried (RFC 4884, 4950); `.none` otherwise.
    public var mpls: MPLSStack = .none

    /// True for an ICMP error, which quotes the probe's IP header (and so, over IPv4, its ID).
    @inlinable @inline(__always) public var quotesProbe: Bool { response.isICMPError }

    /// True for an ICMPv4 error, whose quote carries the probe's IPv4 ID.
    @inlinable @inline(__always) public var quotesIPID: Bool { response.isICMPError && responder.family == .v4 }

    /// Makes a parsed reply over IPv4 (the parser does this; tests and the simulated network may too).
    @inlinable
    public init(
        response: Response, responder: IPv4Address, probeSource: IPv4Address,
        probeDestination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16, tagWord: UInt32,
        replyTTL: UInt8, quotedIPID: UInt16 = 0, quotedTTL: UInt8 = 0
    ) {
        self.init(response: response, responder: IPAddress(responder), probeSource: IPAddress(probeSource),
            probeDestination: IPAddress(probeDestination), sourcePort: sourcePort, destinationPort: destinationPort,
            tagWord: tagWord, replyTTL: replyTTL, quotedIPID: quotedIPID, quotedTTL: quotedTTL)
    }

    /// Makes a parsed reply of either family.
    @inlinable
    public init(
        response: Response, responder: IPAddress, probeSource: IPAddress,
        probeDestination: IPAddress, sourcePort: UInt16, destinationPort: UInt16, tagWord: UInt32,
        replyTTL: UInt8, quotedIPID: UInt16 = 0, quotedTTL: UInt8 = 0
    ) {
        self.response = response
        self.responder = responder
        self.probeSource = probeSource
        self.probeDestination = probeDestination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.tagWord = tagWord
        self.replyTTL = replyTTL
        self.quotedIPID = quotedIPID
        self.quotedTTL = quotedTTL
    }
}

/// Parses captured IPv4 packets into `ParsedReply`s.
public enum ReplyParser {
    /// Which TCP answers from the destination a probe can draw, and where they carry its tag word.
    public enum TCPAnswers: Sendable {
        /// Answers to a SYN: SYN+ACK or RST+ACK acknowledging the probe's sequence number plus one.
        case toSyn
        /// Answers to an ACK: a RST whose sequence number is the probe's acknowledgement number (RFC 793).
        case resetToAck
    }

    /// Parses one packet. `packet` starts at the IPv4 header (as an AF_PACKET SOCK_DGRAM socket
    /// delivers it) and may be truncated by the capture length or followed by link-layer padding.
    ///
    /// Returns nil for anything that is not a well-formed reply to a TCP probe: not IPv4, a bad
    /// IHL, truncated before the needed fields, a non-first fragment, ICMP other than time exceeded
    /// (11) and destination unreachable (3), an ICMP error whose quoted datagram is not IPv4 + TCP
    /// with at least 8 bytes of TCP (options in the quoted IPv4 header are skipped by its IHL), or
    /// TCP that is neither SYN+ACK nor RST+ACK (a RST without ACK has no usable acknowledgement).
    /// Checksums are not verified (the tag's keyed check does that job); every read is bounded.
    @inlinable
    public static func parse(_ packet: UnsafeRawBufferPointer) -> ParsedReply? { parse(packet, answers: .toSyn) }

    /// Parses one packet, reading a TCP answer from the destination as `answers` says.
    @inlinable @inline(__always)
    public static func parse(_ packet: UnsafeRawBufferPointer, answers: TCPAnswers) -> ParsedReply? {
        if packet.count > 0 && packet.wireUInt8(at: 0) >> 4 == 6 { return parse6(packet, answers: answers) }
        guard let ip = IPv4HeaderView(packet), ip.fragmentOffset == 0 else { return nil }
        let payload = ip.payloadWithinTotalLength
        switch ip.proto {
        case IPv4Layout.protocolICMP:
            return parseICMP(outer: ip, payload)
        case IPv4Layout.protocolTCP:
            return answers == .toSyn ? parseTCP(outer: ip, payload) : parseResetToAck(outer: ip, payload)
        default:
            return nil
        }
    }

    /// An ICMP error quoting a TCP probe.
    @inlinable @inline(__always)
    static func parseICMP(outer ip: IPv4HeaderView, _ payload: UnsafeRawBufferPointer) -> ParsedReply? {
        guard let icmp = ICMPHeaderView(payload) else { return nil }
        let response: Response
        switch icmp.type {
        case ICMPLayout.typeTimeExceeded: response = .timeExceeded
        case ICMPLayout.typeDestinationUnreachable: response = .unreachable(code: icmp.code)
        default: return nil
        }
        // The quoted datagram is our probe as the responder received it. A quote of a non-first
        // fragment would not start with a TCP header.
        guard let quoted = IPv4HeaderView(icmp.payload), quoted.proto == IPv4Layout.protocolTCP,
            quoted.fragmentOffset == 0, let tcp = TCPQuoteView(quoted.payload)
        else { return nil }
        var reply = ParsedReply(
            response: response, responder: ip.source,
            probeSource: quoted.source, probeDestination: quoted.destination,
            sourcePort: tcp.sourcePort, destinationPort: tcp.destinationPort,
            tagWord: tcp.sequence, replyTTL: ip.ttl, quotedIPID: quoted.identification, quotedTTL: quoted.ttl)
        reply.mpls = ICMPExtensions.mplsStack(icmp)
        return reply
    }

    /// The target's RST answering an ACK probe: no ACK flag, its sequence number is the probe's
    /// acknowledgement number. Anything else (a SYN, an ACK-only segment) is no answer to an ACK probe.
    @inlinable @inline(__always)
    static func parseResetToAck(outer ip: IPv4HeaderView, _ payload: UnsafeRawBufferPointer) -> ParsedReply? {
        guard let tcp = TCPHeaderView(payload), tcp.flags & TCPLayout.rst != 0, tcp.flags & TCPLayout.syn == 0 else {
            return nil
        }
        return ParsedReply(
            response: .reset, responder: ip.source,
            probeSource: ip.destination, probeDestination: ip.source,
            sourcePort: tcp.destinationPort, destinationPort: tcp.sourcePort,
            tagWord: tcp.sequence, replyTTL: ip.ttl)
    }

    /// The target's own SYN+ACK or RST+ACK, acknowledging the probe's sequence number plus one.
    @inlinable @inline(__always)
    static func parseTCP(outer ip: IPv4HeaderView, _ payload: UnsafeRawBufferPointer) -> ParsedReply? {
        guard let tcp = TCPHeaderView(payload) else { return nil }
        let flags = tcp.flags
        guard flags & TCPLayout.ack != 0 else { return nil }
        let response: Response
        if flags & TCPLayout.rst != 0 {
            response = .reset
        } else if flags & TCPLayout.syn != 0 {
            response = flags & TCPLayout.ece != 0 ? .synAckECN : .synAck
        } else {
            return nil
        }
        return ParsedReply(
            response: response, responder: ip.source,
            probeSource: ip.destination, probeDestination: ip.source,
            sourcePort: tcp.destinationPort, destinationPort: tcp.sourcePort,
            tagWord: tcp.acknowledgement &- 1, replyTTL: ip.ttl)
    }

    /// Parses one IPv6 packet: an ICMPv6 error quoting a TCP probe, or the destination's TCP answer.
    @inlinable
    static func parse6(_ packet: UnsafeRawBufferPointer, answers: TCPAnswers) -> ParsedReply? {
        guard let ip = IPv6HeaderView(packet) else { return nil }
        let payload = ip.payloadWithinLength
        switch ip.proto {
        case IPv6Layout.protocolICMPv6:
            guard let icmp = ICMPHeaderView(payload), let response = errorResponse6(icmp),
                let quoted = IPv6HeaderView(icmp.payload), quoted.proto == IPv4Layout.protocolTCP,
                let tcp = TCPQuoteView(quoted.payload)
            else { return nil }
            var reply = ParsedReply(
                response: response, responder: ip.source, probeSource: quoted.source,
                probeDestination: quoted.destination, sourcePort: tcp.sourcePort,
                destinationPort: tcp.destinationPort, tagWord: tcp.sequence, replyTTL: ip.hopLimit,
                quotedTTL: quoted.hopLimit)
            reply.mpls = ICMPExtensions.mplsStack6(icmp)
            return reply
        case IPv4Layout.protocolTCP:
            guard let tcp = TCPHeaderView(payload) else { return nil }
            let flags = tcp.flags
            let response: Response
            let word: UInt32
            switch answers {
            case .resetToAck:
                guard flags & TCPLayout.rst != 0, flags & TCPLayout.syn == 0 else { return nil }
                (response, word) = (.reset, tcp.sequence)
            case .toSyn:
                guard flags & TCPLayout.ack != 0 else { return nil }
                if flags & TCPLayout.rst != 0 {
                    response = .reset
                } else if flags & TCPLayout.syn != 0 {
                    response = flags & TCPLayout.ece != 0 ? .synAckECN : .synAck
                } else {
                    return nil
                }
                word = tcp.acknowledgement &- 1
            }
            return ParsedReply(
                response: response, responder: ip.source, probeSource: ip.destination,
                probeDestination: ip.source, sourcePort: tcp.destinationPort, destinationPort: tcp.sourcePort,
                tagWord: word, replyTTL: ip.hopLimit)
        default:
            return nil
        }
    }

    /// What an ICMPv6 error says, for the errors that answer a probe (time exceeded, destination
    /// unreachable); nil for any other ICMPv6 message. A port unreachable is left as an unreachable here:
    /// only a kind that knows who its destination is calls it the destination's answer.
    @inlinable
    public static func errorResponse6(_ icmp: ICMPHeaderView) -> Response? {
        switch icmp.type {
        case IPv6Layout.typeTimeExceeded: icmp.code == 0 ? .timeExceeded : nil
        case IPv6Layout.typeDestinationUnreachable: .unreachableV6(code: icmp.code)
        default: nil
        }
    }
}
