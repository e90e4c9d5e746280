// IPv6 routes and source addresses, from one netlink dump of the IPv6 main table and addresses, looked
// up by longest-prefix match over the copy, as `RouteTable` does for IPv4. A source address is the
// route's preferred source, else a global address of the egress interface that is neither tentative
// (duplicate address detection still running), failed nor deprecated, sharing the longest prefix with
// the destination (RFC 6724 rule 8's spirit), else any such address of the host. (Policy routing rules
// and tables other than main are not consulted.)

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace
import FastTraceWire

/// The IPv6 main routing table and the host's IPv6 addresses.
public struct RouteTable6: Sendable {
    /// One route.
    public struct Entry: Sendable, Equatable {
        public var destination: IPAddress
        public var prefixLength: Int
        public var kind: RouteTable.Entry.Kind
        public var interfaceIndex: Int32
        public var gateway: IPAddress?
        public var preferredSource: IPAddress?
        public var metric: UInt32
        /// Number of nexthops (more than one for ECMP; `interfaceIndex`/`gateway` are the first's).
        public var nexthops: Int

        public init(destination: IPAddress, prefixLength: Int, kind: RouteTable.Entry.Kind = .unicast,
            interfaceIndex: Int32, gateway: IPAddress? = nil, preferredSource: IPAddress? = nil, metric: UInt32 = 0,
            nexthops: Int = 1)
        {
            precondition((0...128).contains(prefixLength) && destination.family == .v6)
            self.destination = destination.masked(length: prefixLength)
            self.prefixLength = prefixLength
            self.kind = kind
            self.interfaceIndex = interfaceIndex
            self.gateway = gateway
            self.preferredSource = preferredSource
            self.metric = metric
            self.nexthops = nexthops
        }
    }

    /// One address of the host.
    public struct InterfaceAddress: Sendable, Equatable {
        public var interfaceIndex: Int32
        public var address: IPAddress
        public var prefixLength: Int
        /// Global scope, not tentative, failed or deprecated: fit to send from.
        public var usable: Bool

        public init(interfaceIndex: Int32, address: IPAddress, prefixLength: Int, usable: Bool = true) {
            self.interfaceIndex = interfaceIndex
            self.address = address
            self.prefixLength = prefixLength
            self.usable = usable
        }
    }

    public let entries: [Entry]
    public let addresses: [InterfaceAddress]
    public let interfaceNames: [Int32: String]
    private let byPrefix: [Int: [IPAddress: Entry]]
    private let prefixLengths: [Int]

    public init(entries: [Entry], addresses: [InterfaceAddress], interfaceNames: [Int32: String] = [:]) {
        self.entries = entries
        self.addresses = addresses
        self.interfaceNames = interfaceNames
        var byPrefix: [Int: [IPAddress: Entry]] = [:]
        for entry in entries {
            if let existing = byPrefix[entry.prefixLength]?[entry.destination], existing.metric <= entry.metric {
                continue
            }
            byPrefix[entry.prefixLength, default: [:]][entry.destination] = entry
        }
        self.byPrefix = byPrefix
        prefixLengths = byPrefix.keys.sorted(by: >)
    }

    /// Reads the kernel's IPv6 main table and addresses.
    public static func load() throws(SystemError) -> RouteTable6 {
        let routes = try dump("netlink(RTM_GETROUTE dump, IPv6)", initialCapacity: 256) {
            (buffer: UnsafeMutableBufferPointer<cfasttrace_route6>) in
            CFastTrace_dump_routes6(buffer.baseAddress, buffer.count)
        }
        let addresses = try dump("netlink(RTM_GETADDR dump, IPv6)", initialCapacity: 64) {
            (buffer: UnsafeMutableBufferPointer<cfasttrace_address6>) in
            CFastTrace_dump_addresses6(buffer.baseAddress, buffer.count)
        }
        func address<T>(_ tuple: T) -> IPAddress {
            withUnsafeBytes(of: tuple) { IPAddress(bytes: $0) }
        }
        let zero = IPAddress(high: 0, low: 0)
        let entries = routes.map { r -> Entry in
            let kind: RouteTable.Entry.Kind = switch r.type {
            case 1: .unicast
            case 6, 7, 8: .reject
            default: .other(r.type)
            }
            let gateway = address(r.gateway), source = address(r.prefsrc)
            return Entry(destination: address(r.dst), prefixLength: Int(min(r.dst_len, 128)), kind: kind,
                interfaceIndex: r.oif, gateway: gateway == zero ? nil : gateway,
                preferredSource: source == zero ? nil : source, metric: r.priority, nexthops: Int(r.nexthops))
        }
        // IFA_F_TENTATIVE 0x40, IFA_F_DADFAILED 0x08, IFA_F_DEPRECATED 0x20; scope 0 is global.
        let interfaceAddresses = addresses.map {
            InterfaceAddress(interfaceIndex: $0.ifindex, address: address($0.address),
                prefixLength: Int(min($0.prefixlen, 128)), usable: $0.scope == 0 && $0.flags & 0x68 == 0)
        }
        var names: [Int32: String] = [:]
        for index in Set(entries.map(\.interfaceIndex) + interfaceAddresses.map(\.interfaceIndex)) where index > 0 {
            var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
            if name.withUnsafeMutableBufferPointer({ if_indextoname(UInt32(bitPattern: index), $0.baseAddress) }) != nil {
                names[index] = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            }
        }
        return RouteTable6(entries: entries, addresses: interfaceAddresses, interfaceNames: names)
    }

    /// The route to `destination` with its source address, or nil (no route, a reject route, or no
    /// address to send from).
    public func lookup(_ destination: IPAddress) -> Route? {
        guard let entry = bestEntry(for: destination), entry.kind == .unicast, entry.interfaceIndex > 0,
            let source = sourceAddress(for: entry, destination: destination)
        else { return nil }
        return Route(interfaceIndex: entry.interfaceIndex,
            interfaceName: interfaceNames[entry.interfaceIndex] ?? "if\(entry.interfaceIndex)", source: source,
            gateway: entry.gateway)
    }

    /// The longest-prefix match for `destination`, whatever its kind.
    public func bestEntry(for destination: IPAddress) -> Entry? {
        for length in prefixLengths {
            if let entry = byPrefix[length]?[destination.masked(length: length)] { return entry }
        }
        return nil
    }

    /// The table with only the routes through one interface (and the reject routes), as `-i` asks.
    public func restricted(toInterface index: Int32) -> RouteTable6 {
        RouteTable6(entries: entries.filter { $0.interfaceIndex == index || $0.kind == .reject },
            addresses: addresses, interfaceNames: interfaceNames)
    }

    /// Why `source` cannot be used on `route`, or nil when it can.
    public func problem(source: IPAddress, on route: Route) -> String? {
        if source == route.source { return nil }
        if addresses.contains(where: { $0.interfaceIndex == route.interfaceIndex && $0.address == source }) {
            return nil
        }
        let owner = addresses.first { $0.address == source }.map { interfaceNames[$0.interfaceIndex] ?? "if\($0.interfaceIndex)" }
        return "the route leaves through \(route.interfaceName), and \(source) is "
            + (owner.map { "an address of \($0)" } ?? "not an address of it")
    }

    /// True when `address` is one of the host's IPv6 addresses.
    public func sourceAddressExists(_ address: IPAddress) -> Bool { addresses.contains { $0.address == address } }

    private func sourceAddress(for entry: Entry, destination: IPAddress) -> IPAddress? {
        if let preferred = entry.preferredSource { return preferred }
        func common(_ a: IPAddress) -> Int {
            let high = (a.high ^ destination.high).leadingZeroBitCount
            return high < 64 ? high : 64 + (a.low ^ destination.low).leadingZeroBitCount
        }
        let usable = addresses.filter(\.usable)
        let onInterface = usable.filter { $0.interfaceIndex == entry.interfaceIndex }
        return (onInterface.isEmpty ? usable : onInterface).max { common($0.address) < common($1.address) }?.address
    }

    private static func dump<T>(_ operation: String, initialCapacity: Int,
        _ body: (UnsafeMutableBufferPointer<T>) -> Int32) throws(SystemError) -> [T]
    {
        var capacity = initialCapacity
        for _ in 0..<8 {
            var found: Int32 = 0
            let items = [T](unsafeUninitializedCapacity: capacity) { buffer, initialized in
                found = body(buffer)
                initialized = found < 0 ? 0 : min(Int(found), capacity)
            }
            if found < 0 { throw SystemError(operation: operation, errno: -found) }
            if Int(found) <= capacity { return items }
            capacity = Int(found) * 2
        }
        throw SystemError(operation: operation + " (table kept growing)", errno: EAGAIN)
    }
}
