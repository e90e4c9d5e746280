// Newtypes for the small integers that are easy to mix up in engine code: a port is not a TTL is not
// a slot number. The wire structs (`TCPProbe`, `ParsedReply`) keep plain integers, as headers do.

/// A TCP or UDP port number.
public struct Port: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The port number.
    public var value: UInt16

    /// Makes a port from its number.
    @inlinable public init(_ v: UInt16) { self.value = v }

    /// The decimal port number.
    public var description: String { String(value) }

    @inlinable public static func < (lhs: Port, rhs: Port) -> Bool { lhs.value < rhs.value }
}

/// An IPv4 time-to-live (hop limit): the hop a probe is meant to expire at.
public struct TTL: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The TTL value.
    public var value: UInt8

    /// Makes a TTL from its value.
    @inlinable public init(_ v: UInt8) { self.value = v }

    /// The decimal TTL.
    public var description: String { String(value) }

    @inlinable public static func < (lhs: TTL, rhs: TTL) -> Bool { lhs.value < rhs.value }
}
