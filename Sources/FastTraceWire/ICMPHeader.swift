// The ICMPv4 header (RFC 792): named offsets and types, a read-only view, and a writer (used by tests
// and the simulated network to build errors that quote a probe).

/// Field offsets and message types of the ICMPv4 header.
public enum ICMPLayout {
    /// Message type.
    @inlinable public static var type: Int { 0 }
    /// Message code.
    @inlinable public static var code: Int { 1 }
    /// Checksum over the whole ICMP message (16 bits).
    @inlinable public static var checksum: Int { 2 }
    /// The type-specific 32-bit "rest of header" (unused, or next-hop MTU, or RFC 4884 length).
    @inlinable public static var restOfHeader: Int { 4 }
    /// Header length; an error's quoted datagram starts here.
    @inlinable public static var headerLength: Int { 8 }

    /// Echo reply.
    @inlinable public static var typeEchoReply: UInt8 { 0 }
    /// Destination unreachable.
    @inlinable public static var typeDestinationUnreachable: UInt8 { 3 }
    /// Echo request.
    @inlinable public static var typeEchoRequest: UInt8 { 8 }
    /// Time exceeded.
    @inlinable public static var typeTimeExceeded: UInt8 { 11 }
}

/// A read-only view of an ICMPv4 header at the start of `bytes`; made only when its 8 bytes are
/// present. For error messages, `payload` is the quoted datagram (from its IPv4 header on).
public struct ICMPHeaderView {
    /// The bytes the view was made from, starting at the header; at least 8 long.
    public let bytes: UnsafeRawBufferPointer

    /// Views the ICMP header at the start of `bytes`, or nil when fewer than 8 bytes are present.
    @inlinable @inline(__always)
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= ICMPLayout.headerLength else { return nil }
        self.bytes = bytes
    }

    /// Message type.
    @inlinable public var type: UInt8 { bytes.wireUInt8(at: ICMPLayout.type) }
    /// Message code.
    @inlinable public var code: UInt8 { bytes.wireUInt8(at: ICMPLayout.code) }
    /// Checksum as received (not verified).
    @inlinable public var checksum: UInt16 { bytes.wireUInt16(at: ICMPLayout.checksum) }
    /// The type-specific second word.
    @inlinable public var restOfHeader: UInt32 { bytes.wireUInt32(at: ICMPLayout.restOfHeader) }
    /// Everything after the 8-byte header that is present.
    @inlinable @inline(__always) public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[ICMPLayout.headerLength...])
    }
}

/// Writes an ICMPv4 header into a mutable buffer that starts at the header and spans the message.
public struct ICMPHeaderWriter {
    /// The buffer being written: the whole ICMP message (at least 8 bytes).
    public let bytes: UnsafeMutableRawBufferPointer

    /// A writer over `bytes`; traps if it is shorter than 8 bytes.
    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= ICMPLayout.headerLength, "buffer too short for an ICMP header")
        self.bytes = bytes
    }

    /// Sets the message type.
    @inlinable public func setType(_ t: UInt8) { bytes.storeWireUInt8(t, at: ICMPLayout.type) }
    /// Sets the message code.
    @inlinable public func setCode(_ c: UInt8) { bytes.storeWireUInt8(c, at: ICMPLayout.code) }
    /// Sets the checksum field to an explicit value.
    @inlinable public func setChecksum(_ c: UInt16) { bytes.storeWireUInt16(c, at: ICMPLayout.checksum) }
    /// Sets the type-specific second word.
    @inlinable public func setRestOfHeader(_ r: UInt32) { bytes.storeWireUInt32(r, at: ICMPLayout.restOfHeader) }

    /// Computes the checksum over the whole buffer (the message) and stores it.
    @inlinable public func updateChecksum() {
        setChecksum(0)
        setChecksum(InternetChecksum.checksum(UnsafeRawBufferPointer(bytes)))
    }
}
