// How a probe was answered: one model for every probe kind and family. A reply is either a router's
// (or the destination's) ICMP error with its code, or an answer from the destination itself, whose
// meaning for the port the probe kind decides (`ProbeKind.portState`). The parser produces it, the
// dispatcher packs it into a result cell, results carry it and the output names it, all as this one
// type: its packed code, its name and its precedence are defined here and nowhere else.

/// How one probe was answered.
public enum Response: Sendable, Hashable, CustomStringConvertible {
    /// No answer within the wait time.
    case none
    /// ICMP time exceeded (IPv4 type 11): a router on the path, at the probe's TTL.
    case timeExceeded
    /// ICMP destination unreachable (IPv4 type 3) with its code (1 host, 3 port, 13 administratively
    /// filtered, …), from a router or from the destination.
    case unreachable(code: UInt8)
    /// ICMPv6 destination unreachable (type 1) with its code (0 no route, 1 administratively prohibited,
    /// 2 beyond scope, 3 address unreachable, 5 source address failed policy, 6 reject route), from a
    /// router or from the destination. Its codes are ICMPv6's own, never translated to ICMPv4's.
    case unreachableV6(code: UInt8)
    /// TCP SYN+ACK from the destination.
    case synAck
    /// TCP SYN+ACK with ECE from the destination: it accepted an ECN-setup SYN (RFC 3168 6.1.1;
    /// tcptraceroute's `[open, ecn]`).
    case synAckECN
    /// TCP RST from the destination (or a device speaking for it).
    case reset
    /// ICMP port unreachable (IPv4 type 3 code 3) from the probe's destination itself: the UDP port is
    /// closed. A destination answer that quotes the probe.
    case portUnreachable
    /// A UDP datagram from the destination's port, echoing the probe's tag (a DNS answer's question, an
    /// NTP answer's origin timestamp): the service answered.
    case udpReply
    /// An ICMP echo reply from the destination, returning the probe's data: it answers.
    case echoReply

    /// The name JSON, CSV and tests use.
    public var description: String {
        switch self {
        case .none: "none"
        case .timeExceeded: "time-exceeded"
        case .unreachable, .unreachableV6: "unreachable"
        case .synAck: "syn-ack"
        case .synAckECN: "syn-ack-ecn"
        case .reset: "rst"
        case .portUnreachable: "port-unreachable"
        case .udpReply: "udp-reply"
        case .echoReply: "echo-reply"
        }
    }

    /// True for answers from the destination itself (not ICMP errors).
    @inlinable public var isFromDestination: Bool {
        switch self {
        case .synAck, .synAckECN, .reset, .portUnreachable, .udpReply, .echoReply: true
        case .none, .timeExceeded, .unreachable, .unreachableV6: false
        }
    }

    /// True for a destination unreachable of either family.
    @inlinable public var isUnreachable: Bool {
        switch self {
        case .unreachable, .unreachableV6: true
        default: false
        }
    }

    /// The unreachable's code as its own family numbers it, and the family; nil for other responses.
    @inlinable public var unreachableCode: (code: UInt8, family: IPFamily)? {
        switch self {
        case .unreachable(let code): (code, .v4)
        case .unreachableV6(let code): (code, .v6)
        default: nil
        }
    }

    /// True for an ICMP error, which quotes the probe (and so its IP header and ID). A port unreachable
    /// is one, and a destination answer too.
    @inlinable @inline(__always) public var isICMPError: Bool {
        switch self {
        case .timeExceeded, .unreachable, .unreachableV6, .portUnreachable: true
        case .none, .synAck, .synAckECN, .reset, .udpReply, .echoReply: false
        }
    }

    /// The 5-bit code a result cell stores: 0 none, 1 time exceeded, 2 SYN-ACK, 3 RST, 4 SYN-ACK with ECE,
    /// 5 port unreachable from the destination, 6 UDP answer, 7 echo reply, 8 + code for an ICMPv6
    /// unreachable (code 0...7), 16 + code for an ICMPv4 unreachable (code 0...15).
    @inlinable @inline(__always) public var packedCode: UInt8 {
        switch self {
        case .none: 0
        case .timeExceeded: 1
        case .synAck: 2
        case .reset: 3
        case .synAckECN: 4
        case .portUnreachable: 5
        case .udpReply: 6
        case .echoReply: 7
        case .unreachableV6(let code): 8 + (code & 0x07)
        case .unreachable(let code): 16 + (code & 0x0F)
        }
    }

    /// The response a packed code names (`packedCode`); codes no response has read as `.none`.
    @inlinable public init(packedCode: UInt8) {
        switch packedCode & 0x1F {
        case 1: self = .timeExceeded
        case 2: self = .synAck
        case 3: self = .reset
        case 4: self = .synAckECN
        case 5: self = .portUnreachable
        case 6: self = .udpReply
        case 7: self = .echoReply
        case let c where c >= 16: self = .unreachable(code: c - 16)
        case let c where c >= 8: self = .unreachableV6(code: c - 8)
        default: self = .none
        }
    }

    /// How telling an answer is when several probes at one TTL were answered differently: a destination
    /// answer (SYN-ACK before RST, a UDP answer before port unreachable) beats an unreachable beats time
    /// exceeded beats none.
    @inlinable public var precedence: Int {
        switch self {
        case .none: 0
        case .timeExceeded: 1
        case .unreachable, .unreachableV6: 2
        case .reset, .portUnreachable: 3
        case .synAck, .synAckECN, .udpReply, .echoReply: 4
        }
    }
}
