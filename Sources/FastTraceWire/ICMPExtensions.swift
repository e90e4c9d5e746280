// ICMP extensions (RFC 4884) on time exceeded and destination unreachable, and the one object routers
// put there that a traceroute reports: the MPLS label stack the probe carried when it expired (RFC
// 4950). Pure and allocation-free: it runs on the receive thread for every ICMP error.

/// One MPLS label stack entry (RFC 3032): label, traffic class, bottom of stack, TTL.
public struct MPLSLabelEntry: Sendable, Hashable, CustomStringConvertible {
    /// The entry as it is on the wire (big-endian 32 bits): label 20, TC 3, S 1, TTL 8.
    public let raw: UInt32

    @inlinable public init(raw: UInt32) { self.raw = raw }

    /// Makes an entry from its fields.
    @inlinable public init(label: UInt32, tc: UInt8, bottom: Bool, ttl: UInt8) {
        raw = (label & 0xFFFFF) << 12 | UInt32(tc & 7) << 9 | (bottom ? 1 << 8 : 0) | UInt32(ttl)
    }

    /// The label (20 bits).
    @inlinable public var label: UInt32 { raw >> 12 }
    /// Traffic class (the former EXP bits).
    @inlinable public var tc: UInt8 { UInt8(truncatingIfNeeded: raw >> 9) & 7 }
    /// Bottom of stack.
    @inlinable public var bottom: Bool { raw >> 8 & 1 == 1 }
    /// The entry's TTL.
    @inlinable public var ttl: UInt8 { UInt8(truncatingIfNeeded: raw) }

    /// traceroute's form: `L=24001,E=0,S=1,T=1`.
    public var description: String { "L=\(label),E=\(tc),S=\(bottom ? 1 : 0),T=\(ttl)" }
}

/// The MPLS label stack an ICMP error carried, as much of it as a reply keeps: its depth and its top two
/// entries (deeper ones are counted, not kept).
public struct MPLSStack: Sendable, Equatable {
    /// Entries in the stack the router reported (0: none), at most 15 counted.
    public var depth: UInt8
    /// The top entry and the one below it (zero where the stack is shallower).
    public var top: UInt32
    public var second: UInt32

    @inlinable public init(depth: UInt8 = 0, top: UInt32 = 0, second: UInt32 = 0) {
        self.depth = depth
        self.top = top
        self.second = second
    }

    /// No stack.
    @inlinable public static var none: MPLSStack { MPLSStack() }

    /// The entries kept (at most two).
    public var entries: [MPLSLabelEntry] {
        [top, second].prefix(Int(min(depth, 2))).map(MPLSLabelEntry.init(raw:))
    }
}

/// Reads RFC 4884 extensions.
public enum ICMPExtensions {
    /// The smallest "original datagram" field a message with extensions has (RFC 4884 §4.1).
    @inlinable public static var minimumOriginalLength: Int { 128 }
    /// The extension structure's version (RFC 4884 §7).
    @inlinable public static var version: UInt8 { 2 }
    /// MPLS label stack object: class 1, C-Type 1 (RFC 4950).
    @inlinable public static var mplsClass: UInt8 { 1 }

    /// The MPLS label stack in the extensions of the ICMPv4 error `icmp` (time exceeded or destination
    /// unreachable), or `.none`. Where the extensions start: the length field (byte 5, in 32-bit words)
    /// when it is set (RFC 4884); when it is 0, at 128 bytes if a structure with the right version and a
    /// checksum that verifies is there (routers that predate RFC 4884's length field put it there). A
    /// structure whose checksum does not verify, or an object that runs past the message, gives `.none`.
    @inlinable @inline(__always)
    public static func mplsStack(_ icmp: ICMPHeaderView) -> MPLSStack {
        mplsStack(icmp, statedLength: Int(icmp.bytes.wireUInt8(at: 5)) * 4)
    }

    /// The MPLS label stack in the extensions of the ICMPv6 error `icmp`: as `mplsStack`, but RFC 4884's
    /// length field is byte 4 and counts 64-bit words (§5.2).
    @inlinable @inline(__always)
    public static func mplsStack6(_ icmp: ICMPHeaderView) -> MPLSStack {
        mplsStack(icmp, statedLength: Int(icmp.bytes.wireUInt8(at: 4)) * 8)
    }

    @inlinable @inline(__always)
    static func mplsStack(_ icmp: ICMPHeaderView, statedLength stated: Int) -> MPLSStack {
        // The length checks inline (most errors quote less than 128 bytes and carry no extensions), the
        // structure's walk out of line.
        let data = icmp.payload
        let start: Int
        if stated > 0 {
            guard stated >= minimumOriginalLength else { return .none }
            start = stated
        } else {
            start = minimumOriginalLength
        }
        guard data.count >= start + 4 else { return .none }
        return mplsStack(data, start: start, stated: stated)
    }

    /// The label stack in the extension structure at `start` of `data` (`start + 4 <= data.count`).
    @inlinable @inline(never)
    static func mplsStack(_ data: UnsafeRawBufferPointer, start: Int, stated: Int) -> MPLSStack {
        // SAFETY: start + 4 <= data.count, checked by the caller.
        let structure = UnsafeRawBufferPointer(rebasing: data[start...])
        guard structure.wireUInt8(at: 0) >> 4 == version else { return .none }
        // A checksum of 0 means "not computed" only in RFC 4884's compliant form (length set).
        let checksum = structure.wireUInt16(at: 2)
        if InternetChecksum.checksum(structure) != 0 && !(checksum == 0 && stated > 0) { return .none }
        var offset = 4
        while offset + 4 <= structure.count {
            let length = Int(structure.wireUInt16(at: offset))
            guard length >= 4, offset + length <= structure.count else { return .none }
            if structure.wireUInt8(at: offset + 2) == mplsClass && structure.wireUInt8(at: offset + 3) == 1 {
                let count = (length - 4) / 4
                guard count > 0 else { return .none }
                return MPLSStack(depth: UInt8(min(count, 15)), top: structure.wireUInt32(at: offset + 4),
                    second: count > 1 ? structure.wireUInt32(at: offset + 8) : 0)
            }
            offset += length
        }
        return .none
    }
}
