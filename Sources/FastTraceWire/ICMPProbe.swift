// ICMP echo (traceroute -I, Paris-style): the probe and how its replies are read. Load balancers that
// look at ICMP read its first four bytes where a TCP or UDP header has its ports, so type, code *and
// checksum* stay fixed for the whole trace; the identifier is the run's (it plays the source port's
// part everywhere: filter, dispatcher, flow digest). What tells probes apart is where no balancer looks:
// the sequence number and the IPv4 ID, which ICMP errors quote, and the first payload bytes, which an
// echo reply returns; two payload bytes after them hold the checksum fixed (RFC 1071's sum is order-
// independent, so they cancel whatever the sequence number adds).

/// Field offsets of the ICMP echo message (RFC 792).
public enum ICMPEchoLayout {
    /// Identifier (16 bits): the run's, fixed.
    @inlinable public static var identifier: Int { 4 }
    /// Sequence number (16 bits): the tag word's high half.
    @inlinable public static var sequence: Int { 6 }
    /// Where the data starts: the tag word (32 bits), then the two compensating bytes.
    @inlinable public static var data: Int { 8 }
}

/// ICMP echo request over IPv4.
///
/// Tag: the 32-bit word (`ProbeTagCodec.TagLayout.splitWithID`) travels as the sequence number (high
/// half) and the IPv4 ID (low half, never 0), both quoted by ICMP errors, and whole in the first four
/// data bytes, which the destination's echo reply returns. The checksum is the same for every probe of
/// the run (`checksum(identifier:)`).
public struct ICMPProbeKind: ProbeKind {
    public init() {}

    public var method: ProbeMethod { .icmpEcho }
    public var protocolNumber: UInt8 { IPv4Layout.protocolICMP }
    /// IPv4 20, ICMP 8, the word 4 and the 2 compensating bytes.
    public var minimumLength: Int { 34 }
    public var maximumLength: Int { 1500 }
    public var tagLayout: ProbeTagCodec.TagLayout { .splitWithID }
    public var silentState: PortState { .filtered }

    /// The checksum every probe with this identifier carries: a fixed function of it, so a trace (and a
    /// run) keeps one value.
    @inlinable public static func checksum(identifier: UInt16) -> UInt16 { ~identifier ^ 0x5A5A }

    @inlinable
    public func write(_ probe: ProbeSpec, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let source = probe.flow.source.ipv4, let destination = probe.flow.destination.ipv4 else {
            return write6(probe, into: buffer)
        }
        let length = probe.length
        precondition(length >= minimumLength && length <= maximumLength && buffer.count >= length,
            "ICMP probe length out of range")
        // SAFETY: every slice below lies within buffer[0..<length], checked just above.
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let ipLength = IPv4Layout.minimumHeaderLength
        IPv4HeaderWriter.writeProbeHeader(probe, protocol: IPv4Layout.protocolICMP, length: length, source: source,
            destination: destination, into: UnsafeMutableRawBufferPointer(rebasing: packet[0..<ipLength]))

        let message = UnsafeMutableRawBufferPointer(rebasing: packet[ipLength...])
        writeMessage(probe, type: ICMPLayout.typeEchoRequest, pseudoHeader: 0, into: message)
        return length
    }

    /// The ICMPv6 echo request: type 128, the same fixed checksum, identifier, sequence and word as over
    /// IPv4; the checksum covers the IPv6 pseudo-header too (RFC 4443 §2.3), which is the same for every
    /// probe of a trace, so it stays fixed. 20 bytes longer than `probe.length`, as every IPv6 probe.
    @inlinable
    func write6(_ probe: ProbeSpec, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = probe.length + TCPProbeKind.ipv6Growth
        precondition(probe.length >= minimumLength && length <= buffer.count, "ICMP probe length out of range")
        // SAFETY: every slice below lies within buffer[0..<length], checked just above.
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let ipLength = IPv6Layout.headerLength
        IPv6HeaderWriter.writeProbeHeader(probe, protocol: IPv6Layout.protocolICMPv6, length: length,
            into: UnsafeMutableRawBufferPointer(rebasing: packet[0..<ipLength]))
        let message = UnsafeMutableRawBufferPointer(rebasing: packet[ipLength...])
        let pseudo = InternetChecksum.pseudoHeaderSum(source: probe.flow.source, destination: probe.flow.destination,
            protocol: IPv6Layout.protocolICMPv6, length: message.count)
        writeMessage(probe, type: IPv6Layout.typeEchoRequest, pseudoHeader: pseudo, into: message)
        return length
    }

    /// The echo message: type, the fixed checksum, identifier, the word's high half as the sequence, the
    /// word, and two bytes that make the sum (with `pseudoHeader`) come out right.
    @inlinable
    func writeMessage(_ probe: ProbeSpec, type: UInt8, pseudoHeader: UInt64, into message: UnsafeMutableRawBufferPointer) {
        message.initializeMemory(as: UInt8.self, repeating: 0)
        let word = probe.stamp.sequence
        let identifier = probe.flow.sourcePort
        message.storeWireUInt8(type, at: ICMPLayout.type)
        message.storeWireUInt16(Self.checksum(identifier: identifier), at: ICMPLayout.checksum)
        message.storeWireUInt16(identifier, at: ICMPEchoLayout.identifier)
        message.storeWireUInt16(UInt16(truncatingIfNeeded: word >> 16), at: ICMPEchoLayout.sequence)
        message.storeWireUInt32(word, at: ICMPEchoLayout.data)
        // With the fixed checksum in place the message must sum to 0xFFFF; the two bytes after the word
        // make it so.
        let folded = ~InternetChecksum.finish(InternetChecksum.partialSum(UnsafeRawBufferPointer(message),
            initial: pseudoHeader))
        message.storeWireUInt16(0xFFFF - folded, at: ICMPEchoLayout.data + 4)
    }

    /// Reads an IPv6 packet: the destination's echo reply (type 129), or an ICMPv6 error quoting an echo
    /// request, whose word is read whole from the quoted data (IPv6 has no ID; the quote has the data).
    @inlinable
    func parse6(_ packet: UnsafeRawBufferPointer) -> ParsedReply? {
        guard let ip = IPv6HeaderView(packet), ip.proto == IPv6Layout.protocolICMPv6,
            let icmp = ICMPHeaderView(ip.payloadWithinLength)
        else { return nil }
        if icmp.type == IPv6Layout.typeEchoReply {
            let data = icmp.payload
            guard icmp.code == 0, data.count >= 4 else { return nil }
            let word = data.wireUInt32(at: 0)
            guard UInt16(truncatingIfNeeded: word >> 16) == icmp.bytes.wireUInt16(at: ICMPEchoLayout.sequence) else {
                return nil
            }
            return ParsedReply(
                response: .echoReply, responder: ip.source, probeSource: ip.destination, probeDestination: ip.source,
                sourcePort: icmp.bytes.wireUInt16(at: ICMPEchoLayout.identifier), destinationPort: 0, tagWord: word,
                replyTTL: ip.hopLimit)
        }
        guard let response = ReplyParser.errorResponse6(icmp), let quoted = IPv6HeaderView(icmp.payload),
            quoted.proto == IPv6Layout.protocolICMPv6, let echo = ICMPHeaderView(quoted.payload),
            echo.type == IPv6Layout.typeEchoRequest, echo.payload.count >= 4
        else { return nil }
        let word = echo.payload.wireUInt32(at: 0)
        guard UInt16(truncatingIfNeeded: word >> 16) == echo.bytes.wireUInt16(at: ICMPEchoLayout.sequence) else {
            return nil
        }
        var reply = ParsedReply(
            response: response, responder: ip.source, probeSource: quoted.source,
            probeDestination: quoted.destination, sourcePort: echo.bytes.wireUInt16(at: ICMPEchoLayout.identifier),
            destinationPort: 0, tagWord: word, replyTTL: ip.hopLimit, quotedTTL: quoted.hopLimit)
        reply.mpls = ICMPExtensions.mplsStack6(icmp)
        return reply
    }

    @inlinable @inline(__always)
    public func parse(_ packet: UnsafeRawBufferPointer) -> ParsedReply? {
        if packet.count > 0 && packet.wireUInt8(at: 0) >> 4 == 6 { return parse6(packet) }
        guard let ip = IPv4HeaderView(packet), ip.fragmentOffset == 0, ip.proto == IPv4Layout.protocolICMP,
            let icmp = ICMPHeaderView(ip.payloadWithinTotalLength)
        else { return nil }
        switch icmp.type {
        case ICMPLayout.typeEchoReply:
            // The destination's echo reply: identifier, sequence and data as we sent them.
            let data = icmp.payload
            guard icmp.code == 0, data.count >= 4 else { return nil }
            let word = data.wireUInt32(at: 0)
            let sequence = icmp.bytes.wireUInt16(at: ICMPEchoLayout.sequence)
            guard UInt16(truncatingIfNeeded: word >> 16) == sequence else { return nil }
            return ParsedReply(
                response: .echoReply, responder: ip.source, probeSource: ip.destination,
                probeDestination: ip.source, sourcePort: icmp.bytes.wireUInt16(at: ICMPEchoLayout.identifier),
                destinationPort: 0, tagWord: word, replyTTL: ip.ttl)
        case ICMPLayout.typeTimeExceeded, ICMPLayout.typeDestinationUnreachable:
            guard let quoted = IPv4HeaderView(icmp.payload), quoted.proto == IPv4Layout.protocolICMP,
                quoted.fragmentOffset == 0, let echo = ICMPHeaderView(quoted.payload),
                echo.type == ICMPLayout.typeEchoRequest
            else { return nil }
            let response: Response = icmp.type == ICMPLayout.typeTimeExceeded
                ? .timeExceeded : .unreachable(code: icmp.code)
            let word = UInt32(echo.bytes.wireUInt16(at: ICMPEchoLayout.sequence)) << 16 | UInt32(quoted.identification)
            var reply = ParsedReply(
                response: response, responder: ip.source, probeSource: quoted.source,
                probeDestination: quoted.destination,
                sourcePort: echo.bytes.wireUInt16(at: ICMPEchoLayout.identifier), destinationPort: 0,
                tagWord: word, replyTTL: ip.ttl, quotedIPID: quoted.identification, quotedTTL: quoted.ttl)
            reply.mpls = ICMPExtensions.mplsStack(icmp)
            return reply
        default:
            return nil
        }
    }

    @inlinable
    public func alternateTagWord(of reply: ParsedReply, payloadLength: Int) -> UInt32? { nil }

    public func portState(for response: Response) -> PortState? { response == .echoReply ? .reachable : nil }
}
