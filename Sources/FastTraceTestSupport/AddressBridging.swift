// For tests written against IPv4 addresses: results now carry addresses of either family (`IPAddress`);
// these let an IPv4 test compare them with the `IPv4Address`es it built. Tests only.

import FastTraceWire

extension IPAddress {
    /// The IPv4 address's 32 bits; traps for an IPv6 address (an IPv4 test that met one has failed).
    public var value: UInt32 { ipv4!.value }
}

/// An address of either family against an IPv4 address.
public func == (lhs: IPAddress?, rhs: IPv4Address) -> Bool { lhs == IPAddress(rhs) }
public func != (lhs: IPAddress?, rhs: IPv4Address) -> Bool { !(lhs == rhs) }
public func == (lhs: [IPAddress], rhs: [IPv4Address]) -> Bool { lhs == rhs.map(IPAddress.init) }
public func == (lhs: [IPAddress?], rhs: [IPv4Address?]) -> Bool { lhs == rhs.map { $0.map(IPAddress.init) } }
