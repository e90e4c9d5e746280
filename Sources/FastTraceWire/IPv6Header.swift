// The IPv6 header (RFC 8200) and ICMPv6 (RFC 4443): a view that finds the upper-layer payload behind
// the extension headers a reply may carry, and the writer every kind's IPv6 probe starts with. A probe
// keeps its traffic class and flow label fixed for the whole trace (Paris-style: balancers hash the flow
// label with the addresses), and IPv6 has no ID field: what tells probes apart lives in the transport
// header and payload, which an ICMPv6 error quotes as far as 1,280 bytes allow (RFC 4443 §2.4(c)).

/// Field offsets and constants of the IPv6 header and ICMPv6.
public enum IPv6Layout {
    /// Version (4 bits), traffic class (8), flow label (20).
    @inlinable public static var versionClassLabel: Int { 0 }
    /// Payload length: everything after the 40-byte header (16 bits).
    @inlinable public static var payloadLength: Int { 4 }
    /// Next header: the protocol (or extension header) that follows.
    @inlinable public static var nextHeader: Int { 6 }
    /// Hop limit (IPv4's TTL).
    @inlinable public static var hopLimit: Int { 7 }
    /// Source address (16 bytes).
    @inlinable public static var source: Int { 8 }
    /// Destination address (16 bytes).
    @inlinable public static var destination: Int { 24 }
    /// The fixed header's length.
    @inlinable public static var headerLength: Int { 40 }
    /// The smallest MTU every IPv6 link has; an ICMPv6 error never exceeds it, so it quotes a probe of up
    /// to `minimumMTU - 48` bytes whole.
    @inlinable public static var minimumMTU: Int { 1280 }

    /// ICMPv6's next-header value.
    @inlinable public static var protocolICMPv6: UInt8 { 58 }
    /// Extension headers a reply may carry before its payload (RFC 8200 §4): hop-by-hop options,
    /// routing, fragment, destination options.
    @inlinable public static var hopByHop: UInt8 { 0 }
    @inlinable public static var routing: UInt8 { 43 }
    @inlinable public static var fragment: UInt8 { 44 }
    @inlinable public static var destinationOptions: UInt8 { 60 }

    /// ICMPv6 destination unreachable (codes: 0 no route, 1 administratively prohibited, 2 beyond the
    /// source's scope, 3 address unreachable, 4 port unreachable, 5 source address failed policy, 6 reject
    /// route).
    @inlinable public static var typeDestinationUnreachable: UInt8 { 1 }
    /// ICMPv6 time exceeded (code 0: hop limit exceeded in transit).
    @inlinable public static var typeTimeExceeded: UInt8 { 3 }
    /// ICMPv6 echo request.
    @inlinable public static var typeEchoRequest: UInt8 { 128 }
    /// ICMPv6 echo reply.
    @inlinable public static var typeEchoReply: UInt8 { 129 }
    /// ICMPv6 destination unreachable's port-unreachable code.
    @inlinable public static var codePortUnreachable: UInt8 { 4 }
}

/// A read-only view of an IPv6 packet at the start of `bytes`: the fixed header, and the upper-layer
/// protocol and payload found by walking at most four extension headers. Made only when the fixed header
/// is present, the version is 6, every extension header walked is whole, and the packet is not a
/// fragment other than the first (which has no transport header to read).
public struct IPv6HeaderView {
    /// The bytes the view was made from, starting at the fixed header; at least 40 long.
    public let bytes: UnsafeRawBufferPointer
    /// The upper-layer protocol after any extension headers.
    public let proto: UInt8
    /// Where the upper-layer header starts, from the fixed header's first byte.
    public let payloadOffset: Int

    /// Views the IPv6 packet at the start of `bytes`, or nil (see the type's comment).
    @inlinable
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= IPv6Layout.headerLength, bytes.wireUInt8(at: 0) >> 4 == 6 else { return nil }
        var next = bytes.wireUInt8(at: IPv6Layout.nextHeader)
        var offset = IPv6Layout.headerLength
        for _ in 0..<4 {
            switch next {
            case IPv6Layout.hopByHop, IPv6Layout.routing, IPv6Layout.destinationOptions:
                guard bytes.count >= offset + 8 else { return nil }
                let length = (Int(bytes.wireUInt8(at: offset + 1)) + 1) * 8
                guard bytes.count >= offset + length else { return nil }
                next = bytes.wireUInt8(at: offset)
                offset += length
            case IPv6Layout.fragment:
                guard bytes.count >= offset + 8, bytes.wireUInt16(at: offset + 2) & 0xFFF8 == 0 else { return nil }
                next = bytes.wireUInt8(at: offset)
                offset += 8
            default:
                self.bytes = bytes
                self.proto = next
                self.payloadOffset = offset
                return
            }
        }
        return nil
    }

    /// Traffic class.
    @inlinable public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: bytes.wireUInt32(at: 0) >> 20) }
    /// Flow label (20 bits).
    @inlinable public var flowLabel: UInt32 { bytes.wireUInt32(at: 0) & 0xF_FFFF }
    /// Payload length as the header states it (not checked against the bytes present).
    @inlinable public var payloadLength: UInt16 { bytes.wireUInt16(at: IPv6Layout.payloadLength) }
    /// Hop limit.
    @inlinable public var hopLimit: UInt8 { bytes.wireUInt8(at: IPv6Layout.hopLimit) }
    /// Source address.
    @inlinable public var source: IPAddress {
        // SAFETY: 8 + 16 <= 40 <= bytes.count, checked when the view was made.
        IPAddress(bytes: UnsafeRawBufferPointer(rebasing: bytes[IPv6Layout.source..<IPv6Layout.source + 16]))
    }
    /// Destination address.
    @inlinable public var destination: IPAddress {
        // SAFETY: 24 + 16 <= 40 <= bytes.count, checked when the view was made.
        IPAddress(bytes: UnsafeRawBufferPointer(rebasing: bytes[IPv6Layout.destination..<IPv6Layout.destination + 16]))
    }

    /// The upper-layer bytes present (may be truncated or followed by link-layer padding).
    @inlinable public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[payloadOffset...])
    }

    /// The upper-layer bytes limited by the payload-length field: drops link-layer padding. Equals
    /// `payload` when the stated length is more than is present (a truncated capture or quote).
    @inlinable public var payloadWithinLength: UnsafeRawBufferPointer {
        let end = IPv6Layout.headerLength + Int(payloadLength)
        guard end >= payloadOffset, end < bytes.count else { return payload }
        return UnsafeRawBufferPointer(rebasing: bytes[payloadOffset..<end])
    }
}

/// Writes the 40-byte IPv6 header of a probe.
public enum IPv6HeaderWriter {
    /// Writes `probe`'s fixed header (no extension headers) into `header`: traffic class from the TOS,
    /// flow label 0 (the same for every probe, so a balancer hashing it keeps the trace on one path),
    /// payload length `length − 40`, next header `proto`, hop limit from the TTL and the addresses.
    @inlinable
    public static func writeProbeHeader(_ probe: ProbeSpec, protocol proto: UInt8, length: Int,
        into header: UnsafeMutableRawBufferPointer)
    {
        precondition(header.count >= IPv6Layout.headerLength, "an IPv6 header is 40 bytes")
        header.storeWireUInt32(6 << 28 | UInt32(probe.tos) << 20, at: IPv6Layout.versionClassLabel)
        header.storeWireUInt16(UInt16(length - IPv6Layout.headerLength), at: IPv6Layout.payloadLength)
        header.storeWireUInt8(proto, at: IPv6Layout.nextHeader)
        header.storeWireUInt8(probe.ttl, at: IPv6Layout.hopLimit)
        // SAFETY: both 16-byte slices lie within header[0..<40], checked above.
        probe.flow.source.write(into: UnsafeMutableRawBufferPointer(rebasing: header[8..<24]))
        probe.flow.destination.write(into: UnsafeMutableRawBufferPointer(rebasing: header[24..<40]))
    }
}

extension InternetChecksum {
    /// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): both addresses, the upper-layer length
    /// and the next header.
    @inlinable
    public static func pseudoHeaderSum(source: IPAddress, destination: IPAddress, protocol proto: UInt8,
        length: Int) -> UInt64
    {
        @inline(__always) func groups(_ word: UInt64) -> UInt64 {
            word >> 48 &+ (word >> 32 & 0xFFFF) &+ (word >> 16 & 0xFFFF) &+ (word & 0xFFFF)
        }
        let sum = groups(source.high) &+ groups(source.low) &+ groups(destination.high) &+ groups(destination.low)
        return sum &+ UInt64(UInt32(length) >> 16) &+ UInt64(UInt32(length) & 0xFFFF) &+ UInt64(proto)
    }

    /// The pseudo-header sum for a probe's flow in its own family (IPv4 or IPv6).
    @inlinable
    public static func pseudoHeaderSum(_ flow: ProbeFlow, protocol proto: UInt8, length: Int) -> UInt64 {
        if let source = flow.source.ipv4, let destination = flow.destination.ipv4 {
            return pseudoHeaderSum(source: source, destination: destination, protocol: proto, length: length)
        }
        return pseudoHeaderSum(source: flow.source, destination: flow.destination, protocol: proto, length: length)
    }
}
