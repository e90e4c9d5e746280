// The probe-kind seam: everything that differs between kinds of probe (TCP SYN, TCP ACK, … and, as they
// land, UDP and ICMP echo over both families) lives behind `ProbeKind`: how the probe is written, where
// its tag travels and how many bits it has there, how a captured packet is read back into the one
// response model, and what a destination's answer says about the port. The scheduler and the
// dispatcher call the kind and never name a protocol. `ProbeMethod` is what a user picks; its `kind`
// is the implementation.

/// What one probe carries, whatever its kind.
public struct ProbeSpec: Sendable, Equatable {
    /// The flow: addresses, ports, protocol and the slot occupant's epoch.
    public var flow: ProbeFlow
    /// IP TTL (hop limit).
    public var ttl: UInt8
    /// The encoded tag: the 32-bit word and the IPv4 ID (`ProbeTagCodec.encode`).
    public var stamp: ProbeTagCodec.Stamp
    /// IP type of service (traffic class).
    public var tos: UInt8
    /// Set IPv4's don't-fragment flag.
    public var dontFragment: Bool
    /// Total packet length from the IP header on.
    public var length: Int

    @inlinable public init(flow: ProbeFlow, ttl: UInt8, stamp: ProbeTagCodec.Stamp, tos: UInt8 = 0,
        dontFragment: Bool = false, length: Int)
    {
        self.flow = flow
        self.ttl = ttl
        self.stamp = stamp
        self.tos = tos
        self.dontFragment = dontFragment
        self.length = length
    }
}

extension IPv4HeaderWriter {
    /// Writes the 20-byte IPv4 header of `probe` (no options) into `header`: its TOS, total `length`, IPv4
    /// ID, DF flag and TTL, `protocol`, the addresses, and the header checksum. The kinds that build their
    /// packets from a `ProbeSpec` share it.
    @inlinable
    public static func writeProbeHeader(_ probe: ProbeSpec, protocol proto: UInt8, length: Int, source: IPv4Address,
        destination: IPv4Address, into header: UnsafeMutableRawBufferPointer)
    {
        let ip = IPv4HeaderWriter(header)
        ip.setHeaderLength(IPv4Layout.minimumHeaderLength)
        ip.setTOS(probe.tos)
        ip.setTotalLength(UInt16(length))
        ip.setIdentification(probe.stamp.ipID)
        ip.setFragmentation(dontFragment: probe.dontFragment)
        ip.setTTL(probe.ttl)
        ip.setProtocol(proto)
        ip.setSource(source)
        ip.setDestination(destination)
        ip.updateChecksum()
    }
}

/// What a destination's answer says about the port, when the trace reached it.
public enum PortState: String, Sendable, Equatable {
    /// The destination accepts connections (a SYN answered SYN-ACK).
    case open
    /// The destination refuses them (a SYN answered RST).
    case closed
    /// The destination answered an ACK probe (RST): nothing on the way filters it (nmap's word). Says
    /// nothing of whether the port is open.
    case unfiltered
    /// The destination never answered, and the trace ran to its end (gap limit, max TTL, unreachable).
    case filtered
    /// A UDP probe's destination never answered, and the trace ran to its end: a UDP service may ignore a
    /// request it does not understand, so silence says open or filtered (nmap's word).
    case openFiltered = "open|filtered"
    /// An ICMP echo's destination answered (an echo reply). ICMP has no port: this is what it can say.
    case reachable
    /// The trace was cut short (interrupted) before the destination answered: the network has not said
    /// anything about the port. JSON writes it as `null`, CSV as `unknown`, text names no state.
    case unknown
}

/// One kind of probe: how it is written and how its replies are read.
public protocol ProbeKind: Sendable {
    /// The method this kind implements.
    var method: ProbeMethod { get }
    /// The IP protocol number the probe carries (and its flow's MAC covers).
    var protocolNumber: UInt8 { get }
    /// Smallest packet this kind writes (headers only).
    var minimumLength: Int { get }
    /// Largest packet.
    var maximumLength: Int { get }
    /// Writes `probe` from its IP header on into `buffer` and returns its length. Allocation-free.
    func write(_ probe: ProbeSpec, into buffer: UnsafeMutableRawBufferPointer) -> Int
    /// Reads a captured packet (from its IP header on): a router's error quoting a probe of this kind,
    /// or the destination's answer to one, with the tag word it carries; nil for anything else.
    /// Allocation-free; every read bounded.
    func parse(_ packet: UnsafeRawBufferPointer) -> ParsedReply?
    /// A second reading of a destination answer's tag word, tried when the first fails the keyed check;
    /// nil when there is none. (A RST to a SYN that carried data acknowledges the data as well; a
    /// middlebox answering for the destination may acknowledge only the SYN.)
    func alternateTagWord(of reply: ParsedReply, payloadLength: Int) -> UInt32?
    /// What a destination's answer says about the port; nil for a response that is not one.
    func portState(for response: Response) -> PortState?
    /// Where the probe carries its tag word (`ProbeTagCodec.TagLayout`).
    var tagLayout: ProbeTagCodec.TagLayout { get }
    /// The port's state when the destination never answered and the trace ran to its end.
    var silentState: PortState { get }
}

/// The TCP flags a TCP probe carries (tcptraceroute's `-S`, `-A`, `-E`).
public enum TCPProbeFlags: String, Sendable, Hashable, CaseIterable {
    /// SYN: a connection request. The destination answers SYN-ACK (open) or RST (closed).
    case syn
    /// ACK with no connection behind it: a stateful firewall drops it, a stateless one or the host
    /// answers RST (`unfiltered`), whether the port is open or not.
    case ack
    /// SYN with ECE and CWR (RFC 3168's ECN-setup SYN): answered as a SYN, but some middleboxes treat it
    /// differently.
    case synECN = "syn-ecn"

    /// The flag byte.
    @inlinable public var bits: UInt8 {
        switch self {
        case .syn: TCPLayout.syn
        case .ack: TCPLayout.ack
        case .synECN: TCPLayout.syn | TCPLayout.ece | TCPLayout.cwr
        }
    }
}

/// What to send, as a user picks it. Hashable, so a result can name the method that traced it.
public enum ProbeMethod: Sendable, Hashable, CustomStringConvertible {
    /// TCP with the given flags, to the service's port.
    case tcp(TCPProbeFlags)
    /// UDP to the service's port, with a payload its service answers where fasttrace has one.
    case udp(UDPPayloadChoice)
    /// ICMP echo requests (traceroute -I): no port; the destination answers an echo reply.
    case icmpEcho

    /// The kind that implements this method.
    public var kind: any ProbeKind {
        switch self {
        case .tcp(let flags): TCPProbeKind(flags: flags)
        case .udp(let payload): UDPProbeKind(payload: payload)
        case .icmpEcho: ICMPProbeKind()
        }
    }

    /// The protocol's name, as JSON's `protocol` and the text header write it.
    public var protocolName: String {
        switch self {
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmpEcho: "icmp"
        }
    }

    /// True for a method whose probes go to no port (ICMP echo): a target is traced once, not per port.
    public var hasPorts: Bool { self != .icmpEcho }

    /// The TCP flags, for a TCP method.
    public var tcpFlags: TCPProbeFlags? {
        switch self {
        case .tcp(let flags): flags
        case .udp, .icmpEcho: nil
        }
    }

    /// `tcp`, `tcp-ack`, `tcp-syn-ecn`, `udp`: the protocol, and the flags when they are not a plain SYN.
    public var description: String {
        switch self {
        case .tcp(.syn): "tcp"
        case .tcp(let flags): "tcp-\(flags.rawValue)"
        case .udp: "udp"
        case .icmpEcho: "icmp"
        }
    }

    /// What a destination's answer says about the port (the kind's `portState`).
    public func portState(for response: Response) -> PortState? { kind.portState(for: response) }
}

/// TCP over IPv4, with SYN, ACK or ECN-setup SYN flags.
///
/// Tag: the 32-bit word travels in the sequence number, which every ICMP error quotes (RFC 792
/// guarantees the first 8 bytes of the transport header: ports and sequence), with 16 more MAC bits in
/// the IPv4 ID. A SYN's answer acknowledges sequence + 1 (SYN-ACK, RST-ACK); an ACK probe carries the
/// word as its acknowledgement number too, and the RST answering it takes its sequence number from
/// there (RFC 793: a reset to a segment with ACK set has SEQ = SEG.ACK).
public struct TCPProbeKind: ProbeKind {
    /// The flags every probe carries.
    public let flags: TCPProbeFlags

    public init(flags: TCPProbeFlags) { self.flags = flags }

    public var method: ProbeMethod { .tcp(flags) }
    public var protocolNumber: UInt8 { IPv4Layout.protocolTCP }
    public var minimumLength: Int { TCPProbeWriter.minimumLength }
    public var maximumLength: Int { TCPProbeWriter.maximumLength }
    public var tagLayout: ProbeTagCodec.TagLayout { .separateID }
    public var silentState: PortState { .filtered }

    @inlinable
    public func write(_ probe: ProbeSpec, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let source = probe.flow.source.ipv4, let destination = probe.flow.destination.ipv4 else {
            return write6(probe, into: buffer)
        }
        return TCPProbeWriter.write(TCPProbe(
            source: source, destination: destination, sourcePort: probe.flow.sourcePort,
            destinationPort: probe.flow.destinationPort, sequence: probe.stamp.sequence, ttl: probe.ttl,
            tos: probe.tos, ipID: probe.stamp.ipID, dontFragment: probe.dontFragment, length: probe.length,
            flags: flags.bits, acknowledgement: flags == .ack ? probe.stamp.sequence : 0), into: buffer)
    }

    /// The IPv6 probe: the fixed header, the TCP header as over IPv4 and the same zero payload (so the
    /// packet is 20 bytes longer than `probe.length`, which counts an IPv4 header). No IPv4 ID: the word
    /// alone names the probe.
    @inlinable
    func write6(_ probe: ProbeSpec, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = probe.length + Self.ipv6Growth
        precondition(probe.length >= TCPProbeWriter.minimumLength && length <= buffer.count,
            "TCP probe length out of range")
        // SAFETY: every slice below lies within buffer[0..<length], checked just above.
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let ipLength = IPv6Layout.headerLength
        IPv6HeaderWriter.writeProbeHeader(probe, protocol: IPv4Layout.protocolTCP, length: length,
            into: UnsafeMutableRawBufferPointer(rebasing: packet[0..<ipLength]))
        let segment = UnsafeMutableRawBufferPointer(rebasing: packet[ipLength...])
        segment.initializeMemory(as: UInt8.self, repeating: 0)
        let tcp = TCPHeaderWriter(segment)
        tcp.setSourcePort(probe.flow.sourcePort)
        tcp.setDestinationPort(probe.flow.destinationPort)
        tcp.setSequence(probe.stamp.sequence)
        tcp.setAcknowledgement(flags == .ack ? probe.stamp.sequence : 0)
        tcp.setHeaderLength(TCPLayout.minimumHeaderLength)
        tcp.setFlags(flags.bits)
        tcp.setWindow(TCPProbeWriter.window)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: probe.flow.source,
            destination: probe.flow.destination, protocol: IPv4Layout.protocolTCP, length: segment.count)
        tcp.setChecksum(InternetChecksum.finish(InternetChecksum.partialSum(UnsafeRawBufferPointer(segment),
            initial: pseudo)))
        return length
    }

    /// How much longer an IPv6 probe is than the IPv4 one of the same `probe.length`: the headers differ
    /// by 20 bytes and the transport bytes are the same.
    @inlinable public static var ipv6Growth: Int { IPv6Layout.headerLength - IPv4Layout.minimumHeaderLength }

    @inlinable @inline(__always)
    public func parse(_ packet: UnsafeRawBufferPointer) -> ParsedReply? {
        ReplyParser.parse(packet, answers: flags == .ack ? .resetToAck : .toSyn)
    }

    @inlinable @inline(__always)
    public func alternateTagWord(of reply: ParsedReply, payloadLength: Int) -> UInt32? {
        guard flags != .ack, case .reset = reply.response, payloadLength > 0 else { return nil }
        return reply.tagWord &- UInt32(payloadLength)
    }

    public func portState(for response: Response) -> PortState? {
        switch (flags, response) {
        case (.ack, .reset): .unfiltered
        case (.ack, _): nil
        case (_, .synAck), (_, .synAckECN): .open
        case (_, .reset): .closed
        default: nil
        }
    }
}
