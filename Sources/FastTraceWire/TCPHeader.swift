// The TCP header (RFC 793 section 3.1 / RFC 9293): named offsets, read-only views of a whole header
// and of the 8-byte prefix that ICMP errors are guaranteed to quote, and a writer.

/// Field offsets and flag bits of the TCP header.
public enum TCPLayout {
    /// Source port (16 bits).
    @inlinable public static var sourcePort: Int { 0 }
    /// Destination port (16 bits).
    @inlinable public static var destinationPort: Int { 2 }
    /// Sequence number (32 bits).
    @inlinable public static var sequence: Int { 4 }
    /// Acknowledgement number (32 bits).
    @inlinable public static var acknowledgement: Int { 8 }
    /// Data offset in 32-bit words (high 4 bits; the low 4 bits are reserved).
    @inlinable public static var dataOffset: Int { 12 }
    /// Flags (CWR ECE URG ACK PSH RST SYN FIN).
    @inlinable public static var flags: Int { 13 }
    /// Receive window (16 bits).
    @inlinable public static var window: Int { 14 }
    /// Checksum over the pseudo-header, header and data (16 bits).
    @inlinable public static var checksum: Int { 16 }
    /// Urgent pointer (16 bits).
    @inlinable public static var urgentPointer: Int { 18 }
    /// Length of a header without options.
    @inlinable public static var minimumHeaderLength: Int { 20 }
    /// What an ICMP error is guaranteed to quote of a TCP header (RFC 792): ports and sequence number.
    @inlinable public static var quotedLength: Int { 8 }

    /// FIN flag.
    @inlinable public static var fin: UInt8 { 0x01 }
    /// SYN flag.
    @inlinable public static var syn: UInt8 { 0x02 }
    /// RST flag.
    @inlinable public static var rst: UInt8 { 0x04 }
    /// PSH flag.
    @inlinable public static var psh: UInt8 { 0x08 }
    /// ACK flag.
    @inlinable public static var ack: UInt8 { 0x10 }
    /// ECE flag (ECN-Echo; with SYN: ECN-capable, RFC 3168).
    @inlinable public static var ece: UInt8 { 0x40 }
    /// CWR flag (congestion window reduced; with SYN and ECE: the ECN-setup SYN).
    @inlinable public static var cwr: UInt8 { 0x80 }
}

/// A read-only view of a whole (20-byte) TCP header at the start of `bytes`.
///
/// Made only when at least 20 bytes are present and the data offset is at least 5. Options are not
/// required to be present (a capture may cut them off); nothing here reads them.
public struct TCPHeaderView {
    /// The bytes the view was made from, starting at the header; at least 20 long.
    public let bytes: UnsafeRawBufferPointer

    /// Views the TCP header at the start of `bytes`, or nil when fewer than 20 bytes are present or
    /// the data offset is impossible.
    @inlinable @inline(__always)
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= TCPLayout.minimumHeaderLength,
            bytes.wireUInt8(at: TCPLayout.dataOffset) >> 4 >= 5
        else { return nil }
        self.bytes = bytes
    }

    /// Source port.
    @inlinable public var sourcePort: UInt16 { bytes.wireUInt16(at: TCPLayout.sourcePort) }
    /// Destination port.
    @inlinable public var destinationPort: UInt16 { bytes.wireUInt16(at: TCPLayout.destinationPort) }
    /// Sequence number.
    @inlinable public var sequence: UInt32 { bytes.wireUInt32(at: TCPLayout.sequence) }
    /// Acknowledgement number (meaningful only when the ACK flag is set).
    @inlinable public var acknowledgement: UInt32 { bytes.wireUInt32(at: TCPLayout.acknowledgement) }
    /// Header length in bytes (data offset * 4), 20 to 60.
    @inlinable public var headerLength: Int { Int(bytes.wireUInt8(at: TCPLayout.dataOffset) >> 4) * 4 }
    /// The flags byte (`TCPLayout.syn`, `.ack`, `.rst`, ...).
    @inlinable public var flags: UInt8 { bytes.wireUInt8(at: TCPLayout.flags) }
    /// Receive window.
    @inlinable public var window: UInt16 { bytes.wireUInt16(at: TCPLayout.window) }
    /// Checksum as received (not verified).
    @inlinable public var checksum: UInt16 { bytes.wireUInt16(at: TCPLayout.checksum) }
    /// Urgent pointer.
    @inlinable public var urgentPointer: UInt16 { bytes.wireUInt16(at: TCPLayout.urgentPointer) }
}

/// A read-only view of the first 8 bytes of a TCP header, which is all that an ICMP error is sure
/// to quote (RFC 792): the ports and the sequence number. Made only when 8 bytes are present.
public struct TCPQuoteView {
    /// The bytes the view was made from; at least 8 long.
    public let bytes: UnsafeRawBufferPointer

    /// Views the quoted TCP prefix at the start of `bytes`, or nil when fewer than 8 bytes are present.
    @inlinable @inline(__always)
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= TCPLayout.quotedLength else { return nil }
        self.bytes = bytes
    }

    /// Source port of the quoted segment.
    @inlinable public var sourcePort: UInt16 { bytes.wireUInt16(at: TCPLayout.sourcePort) }
    /// Destination port of the quoted segment.
    @inlinable public var destinationPort: UInt16 { bytes.wireUInt16(at: TCPLayout.destinationPort) }
    /// Sequence number of the quoted segment.
    @inlinable public var sequence: UInt32 { bytes.wireUInt32(at: TCPLayout.sequence) }
}

/// Writes the fields of a TCP header into a mutable buffer that starts at the header.
public struct TCPHeaderWriter {
    /// The buffer being written, starting at the header (at least 20 bytes).
    public let bytes: UnsafeMutableRawBufferPointer

    /// A writer over `bytes`; traps if it is shorter than 20 bytes.
    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= TCPLayout.minimumHeaderLength, "buffer too short for a TCP header")
        self.bytes = bytes
    }

    /// Sets the source port.
    @inlinable public func setSourcePort(_ p: UInt16) { bytes.storeWireUInt16(p, at: TCPLayout.sourcePort) }
    /// Sets the destination port.
    @inlinable public func setDestinationPort(_ p: UInt16) { bytes.storeWireUInt16(p, at: TCPLayout.destinationPort) }
    /// Sets the sequence number.
    @inlinable public func setSequence(_ s: UInt32) { bytes.storeWireUInt32(s, at: TCPLayout.sequence) }
    /// Sets the acknowledgement number.
    @inlinable public func setAcknowledgement(_ a: UInt32) { bytes.storeWireUInt32(a, at: TCPLayout.acknowledgement) }
    /// Sets the header length in bytes (a multiple of 4, 20...60); the reserved bits are cleared.
    @inlinable public func setHeaderLength(_ length: Int) {
        precondition(length % 4 == 0 && length >= 20 && length <= 60, "bad TCP header length")
        bytes.storeWireUInt8(UInt8(length / 4) << 4, at: TCPLayout.dataOffset)
    }
    /// Sets the flags byte.
    @inlinable public func setFlags(_ f: UInt8) { bytes.storeWireUInt8(f, at: TCPLayout.flags) }
    /// Sets the receive window.
    @inlinable public func setWindow(_ w: UInt16) { bytes.storeWireUInt16(w, at: TCPLayout.window) }
    /// Sets the checksum field to an explicit value.
    @inlinable public func setChecksum(_ c: UInt16) { bytes.storeWireUInt16(c, at: TCPLayout.checksum) }
    /// Sets the urgent pointer.
    @inlinable public func setUrgentPointer(_ u: UInt16) { bytes.storeWireUInt16(u, at: TCPLayout.urgentPointer) }

    /// Computes the checksum of the whole buffer as the segment (header plus data) with the IPv4
    /// pseudo-header for `source` and `destination`, and stores it.
    @inlinable public func updateChecksum(source: IPv4Address, destination: IPv4Address) {
        setChecksum(0)
        setChecksum(InternetChecksum.tcpChecksum(source: source, destination: destination,
                                                 segment: UnsafeRawBufferPointer(bytes)))
    }
}
