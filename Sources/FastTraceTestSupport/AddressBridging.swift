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

import FastTraceCore

extension TargetSpec {
    /// An IPv4 address target.
    public static func address(_ v4: IPv4Address) -> TargetSpec { .address(IPAddress(v4)) }
    /// An IPv4 prefix target.
    public static func prefix(_ v4: IPv4Address, length: Int) -> TargetSpec { .prefix(IPAddress(v4), length: length) }
}

extension HostAddressCheck {
    public func problem(_ v4: IPv4Address) -> String? { problem(IPAddress(v4)) }
}

extension HostAddressCheck.OnLink {
    public init(address: IPv4Address, length: Int, interface: String) {
        self.init(address: IPAddress(address), length: length, interface: interface)
    }
}

extension SeenTargets {
    public func contains(_ v4: IPv4Address) -> Bool { contains(IPAddress(v4)) }
    public mutating func insert(_ v4: IPv4Address) -> Bool { insert(IPAddress(v4)) }
    public mutating func insertPrefix(_ v4: IPv4Address, length: Int) { insertPrefix(IPAddress(v4), length: length) }
}
