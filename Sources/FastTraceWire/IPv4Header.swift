// The IPv4 header (RFC 791 section 3.1): named offsets, a bounds-checked read-only view, and a
// writer. Replies are read through the view; probes and test packets are built with the writer.

/// Field offsets and constants of the IPv4 header, shared by `IPv4HeaderView` and `IPv4HeaderWriter`.
public enum IPv4Layout {
    /// Version (high 4 bits) and IHL, the header length in 32-bit words (low 4 bits).
    @inlinable public static var versionAndIHL: Int { 0 }
    /// Type of service / DSCP+ECN.
    @inlinable public static var tos: Int { 1 }
    /// Total length of the datagram in bytes (16 bits).
    @inlinable public static var totalLength: Int { 2 }
    /// Identification (16 bits).
    @inlinable public static var identification: Int { 4 }
    /// Flags (high 3 bits) and fragment offset in 8-byte units (low 13 bits).
    @inlinable public static var flagsAndFragmentOffset: Int { 6 }
    /// Time to live.
    @inlinable public static var ttl: Int { 8 }
    /// Protocol of the payload (1 ICMP, 6 TCP, 17 UDP).
    @inlinable public static var proto: Int { 9 }
    /// Header checksum (16 bits).
    @inlinable public static var checksum: Int { 10 }
    /// Source address (32 bits).
    @inlinable public static var source: Int { 12 }
    /// Destination address (32 bits).
    @inlinable public static var destination: Int { 16 }
    /// Length of a header without options.
    @inlinable public static var minimumHeaderLength: Int { 20 }

    /// The "don't fragment" bit in the flags/fragment-offset word.
    @inlinable public static var dontFragmentBit: UInt16 { 0x4000 }
    /// The "more fragments" bit in the flags/fragment-offset word.
    @inlinable public static var moreFragmentsBit: UInt16 { 0x2000 }
    /// The fragment offset bits in the flags/fragment-offset word.
    @inlinable public static var fragmentOffsetMask: UInt16 { 0x1FFF }

    /// Protocol number of ICMP.
    @inlinable public static var protocolICMP: UInt8 { 1 }
    /// Protocol number of TCP.
    @inlinable public static var protocolTCP: UInt8 { 6 }
    /// Protocol number of UDP.
    @inlinable public static var protocolUDP: UInt8 { 17 }
}

/// A read-only view of an IPv4 header at the start of `bytes`.
///
/// Made only when `bytes` holds a whole header: version 4, IHL at least 5, and at least IHL * 4
/// bytes. Every accessor reads inside those bytes. The total-length field is reported but not
/// trusted: captures may be truncated (shorter) or carry link-layer padding (longer), and ICMP quotes
/// carry the original, untruncated length. The view borrows the memory it was made from.
public struct IPv4HeaderView {
    /// The bytes the view was made from, starting at the header; at least `headerLength` long.
    public let bytes: UnsafeRawBufferPointer

    /// Views the IPv4 header at the start of `bytes`, or nil if it is not one or is cut short.
    @inlinable @inline(__always)
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= IPv4Layout.minimumHeaderLength else { return nil }
        let first = bytes.wireUInt8(at: IPv4Layout.versionAndIHL)
        let headerLength = Int(first & 0x0F) * 4
        guard first >> 4 == 4, headerLength >= IPv4Layout.minimumHeaderLength, bytes.count >= headerLength
        else { return nil }
        self.bytes = bytes
    }

    /// The IP version (always 4 in a view).
    @inlinable public var version: UInt8 { bytes.wireUInt8(at: IPv4Layout.versionAndIHL) >> 4 }
    /// Header length in bytes (IHL * 4), 20 to 60; more than 20 when the header has options.
    @inlinable public var headerLength: Int { Int(bytes.wireUInt8(at: IPv4Layout.versionAndIHL) & 0x0F) * 4 }
    /// Type of service byte.
    @inlinable public var tos: UInt8 { bytes.wireUInt8(at: IPv4Layout.tos) }
    /// Total length as the header states it (not checked against the bytes present).
    @inlinable public var totalLength: UInt16 { bytes.wireUInt16(at: IPv4Layout.totalLength) }
    /// Identification.
    @inlinable public var identification: UInt16 { bytes.wireUInt16(at: IPv4Layout.identification) }
    /// The flags and fragment offset word as it is on the wire.
    @inlinable public var flagsAndFragmentOffset: UInt16 { bytes.wireUInt16(at: IPv4Layout.flagsAndFragmentOffset) }
    /// The DF flag.
    @inlinable public var dontFragment: Bool { flagsAndFragmentOffset & IPv4Layout.dontFragmentBit != 0 }
    /// The MF flag.
    @inlinable public var moreFragments: Bool { flagsAndFragmentOffset & IPv4Layout.moreFragmentsBit != 0 }
    /// Fragment offset in 8-byte units; non-zero for every fragment but the first.
    @inlinable public var fragmentOffset: UInt16 { flagsAndFragmentOffset & IPv4Layout.fragmentOffsetMask }
    /// Time to live.
    @inlinable public var ttl: UInt8 { bytes.wireUInt8(at: IPv4Layout.ttl) }
    /// Protocol of the payload.
    @inlinable public var proto: UInt8 { bytes.wireUInt8(at: IPv4Layout.proto) }
    /// Header checksum as received (not verified).
    @inlinable public var checksum: UInt16 { bytes.wireUInt16(at: IPv4Layout.checksum) }
    /// Source address.
    @inlinable public var source: IPv4Address { IPv4Address(bytes.wireUInt32(at: IPv4Layout.source)) }
    /// Destination address.
    @inlinable public var destination: IPv4Address { IPv4Address(bytes.wireUInt32(at: IPv4Layout.destination)) }
    /// The option bytes (empty when IHL is 5).
    @inlinable public var options: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[IPv4Layout.minimumHeaderLength..<headerLength])
    }

    /// Everything after the header that is present in `bytes` (may be truncated or padded).
    @inlinable @inline(__always) public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[headerLength...])
    }

    /// The payload limited by the total-length field: drops link-layer padding after a short
    /// datagram. Equals `payload` when the total length is larger than what is present (truncated
    /// capture) or impossible (smaller than the header).
    @inlinable @inline(__always) public var payloadWithinTotalLength: UnsafeRawBufferPointer {
        let total = Int(totalLength)
        let end = total >= headerLength && total < bytes.count ? total : bytes.count
        return UnsafeRawBufferPointer(rebasing: bytes[headerLength..<end])
    }
}

/// Writes the fields of an IPv4 header into a mutable buffer that starts at the header.
///
/// The buffer must hold at least the 20-byte basic header (checked once when the writer is made).
/// Setters store in network byte order; `updateChecksum()` computes the header checksum last.
public struct IPv4HeaderWriter {
    /// The buffer being written, starting at the header.
    public let bytes: UnsafeMutableRawBufferPointer

    /// A writer over `bytes`; traps if it is shorter than 20 bytes.
    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= IPv4Layout.minimumHeaderLength, "buffer too short for an IPv4 header")
        self.bytes = bytes
    }

    /// Sets version 4 and the header length in bytes (a multiple of 4, 20...60, within the buffer).
    @inlinable public func setHeaderLength(_ length: Int) {
        precondition(length % 4 == 0 && length >= 20 && length <= 60 && length <= bytes.count, "bad IPv4 header length")
        bytes.storeWireUInt8(0x40 | UInt8(length / 4), at: IPv4Layout.versionAndIHL)
    }
    /// Sets the type of service byte.
    @inlinable public func setTOS(_ tos: UInt8) { bytes.storeWireUInt8(tos, at: IPv4Layout.tos) }
    /// Sets the total length.
    @inlinable public func setTotalLength(_ length: UInt16) { bytes.storeWireUInt16(length, at: IPv4Layout.totalLength) }
    /// Sets the identification.
    @inlinable public func setIdentification(_ id: UInt16) { bytes.storeWireUInt16(id, at: IPv4Layout.identification) }
    /// Sets the flags and the fragment offset (in 8-byte units).
    @inlinable public func setFragmentation(dontFragment: Bool, moreFragments: Bool = false, offset: UInt16 = 0) {
        let word = (dontFragment ? IPv4Layout.dontFragmentBit : 0) | (moreFragments ? IPv4Layout.moreFragmentsBit : 0)
            | (offset & IPv4Layout.fragmentOffsetMask)
        bytes.storeWireUInt16(word, at: IPv4Layout.flagsAndFragmentOffset)
    }
    /// Sets the time to live.
    @inlinable public func setTTL(_ ttl: UInt8) { bytes.storeWireUInt8(ttl, at: IPv4Layout.ttl) }
    /// Sets the payload protocol.
    @inlinable public func setProtocol(_ proto: UInt8) { bytes.storeWireUInt8(proto, at: IPv4Layout.proto) }
    /// Sets the checksum field to an explicit value.
    @inlinable public func setChecksum(_ sum: UInt16) { bytes.storeWireUInt16(sum, at: IPv4Layout.checksum) }
    /// Sets the source address.
    @inlinable public func setSource(_ a: IPv4Address) { bytes.storeWireUInt32(a.value, at: IPv4Layout.source) }
    /// Sets the destination address.
    @inlinable public func setDestination(_ a: IPv4Address) { bytes.storeWireUInt32(a.value, at: IPv4Layout.destination) }

    /// Computes the header checksum over the header length already set, and stores it.
    @inlinable @inline(__always) public func updateChecksum() {
        setChecksum(0)
        let length = Int(bytes.load(fromByteOffset: IPv4Layout.versionAndIHL, as: UInt8.self) & 0x0F) * 4
        precondition(length >= 20 && length <= bytes.count, "set the header length first")
        setChecksum(InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<length])))
    }
}
