// Routes and source addresses, from one netlink dump of the IPv4 main table and addresses. Lookups
// are longest-prefix matches over that copy, so 64k targets cost one dump, not 64k kernel round trips.
// (Policy routing rules and tables other than main are not consulted.)

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace
import FastTraceWire
import Logging

/// Where the kernel would send a packet for a destination: out of which interface, from which source
/// address, via which gateway (nil when the destination is on the link).
public struct Route: Sendable, Equatable {
    /// The outgoing interface's index.
    public var interfaceIndex: Int32
    /// The outgoing interface's name (`"veth0"`), or `"if<N>"` if it has none.
    public var interfaceName: String
    /// The source address probes should carry (of the destination's family).
    public var source: IPAddress
    /// The next hop, or nil for a directly connected destination.
    public var gateway: IPAddress?

    /// Makes a route.
    public init(interfaceIndex: Int32, interfaceName: String, source: IPAddress, gateway: IPAddress?) {
        self.interfaceIndex = interfaceIndex
        self.interfaceName = interfaceName
        self.source = source
        self.gateway = gateway
    }
}

/// A snapshot of the IPv4 main routing table and the interface addresses, with local lookups.
public struct RouteTable: Sendable {
    /// The answer type of `lookup`.
    public typealias Route = FastTraceLinux.Route

    /// One route as the kernel reported it.
    public struct Entry: Sendable, Equatable {
        /// Kind of route, as `rtm_type`.
        public enum Kind: Sendable, Equatable {
            /// Forward the packet (RTN_UNICAST).
            case unicast
            /// Drop, reject or prohibit (RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT): no route.
            case reject
            /// Anything else (local, broadcast, multicast, …): not usable for probes.
            case other(UInt8)
        }
        public var destination: IPv4Address
        public var prefixLength: Int
        public var kind: Kind
        public var interfaceIndex: Int32
        public var gateway: IPv4Address?
        public var preferredSource: IPv4Address?
        public var metric: UInt32
        /// Number of nexthops (more than one for ECMP; `interfaceIndex`/`gateway` are the first's).
        public var nexthops: Int

        /// Makes an entry; `destination` is masked to `prefixLength`.
        public init(destination: IPv4Address, prefixLength: Int, kind: Kind = .unicast, interfaceIndex: Int32,
                    gateway: IPv4Address? = nil, preferredSource: IPv4Address? = nil, metric: UInt32 = 0,
                    nexthops: Int = 1) {
            precondition((0...32).contains(prefixLength))
            self.destination = IPv4Address(destination.value & IPv4Address.prefixMask(length: prefixLength))
            self.prefixLength = prefixLength
            self.kind = kind
            self.interfaceIndex = interfaceIndex
            self.gateway = gateway
            self.preferredSource = preferredSource
            self.metric = metric
            self.nexthops = nexthops
        }
    }

    /// An IPv4 address configured on an interface.
    public struct InterfaceAddress: Sendable, Equatable {
        public var interfaceIndex: Int32
        public var address: IPv4Address
        public var prefixLength: Int
        /// Makes an interface address.
        public init(interfaceIndex: Int32, address: IPv4Address, prefixLength: Int) {
            self.interfaceIndex = interfaceIndex
            self.address = address
            self.prefixLength = prefixLength
        }
    }

    /// The routes, as dumped.
    public let entries: [Entry]
    /// The addresses, as dumped.
    public let addresses: [InterfaceAddress]
    /// Interface names by index.
    public let interfaceNames: [Int32: String]
    /// Best entry per (prefix length, masked destination): the one with the lowest metric.
    private let byPrefix: [[UInt32: Entry]]
    /// Prefix lengths that have entries, longest first.
    private let prefixLengths: [Int]

    /// Builds a table from entries and addresses (for tests and for `load`).
    public init(entries: [Entry], addresses: [InterfaceAddress], interfaceNames: [Int32: String] = [:]) {
        self.entries = entries
        self.addresses = addresses
        self.interfaceNames = interfaceNames
        var byPrefix = [[UInt32: Entry]](repeating: [:], count: 33)
        for entry in entries {
            let key = entry.destination.value
            if let existing = byPrefix[entry.prefixLength][key], existing.metric <= entry.metric { continue }
            byPrefix[entry.prefixLength][key] = entry
        }
        self.byPrefix = byPrefix
        self.prefixLengths = (0...32).reversed().filter { !byPrefix[$0].isEmpty }
    }

    /// Dumps the IPv4 main table and addresses of the calling thread's network namespace.
    public static func load() throws(SystemError) -> RouteTable {
        let routes = try dump("netlink(RTM_GETROUTE dump)", initialCapacity: 256) {
            (buffer: UnsafeMutableBufferPointer<cfasttrace_route>) in
            CFastTrace_dump_routes(buffer.baseAddress, buffer.count)
        }
        let addresses = try dump("netlink(RTM_GETADDR dump)", initialCapacity: 64) {
            (buffer: UnsafeMutableBufferPointer<cfasttrace_address>) in
            CFastTrace_dump_addresses(buffer.baseAddress, buffer.count)
        }
        let entries = routes.map { r -> Entry in
            let kind: Entry.Kind
            switch r.type {
            case 1: kind = .unicast  // RTN_UNICAST
            case 6, 7, 8: kind = .reject  // RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT
            default: kind = .other(r.type)
            }
            return Entry(
                destination: IPv4Address(r.dst), prefixLength: Int(min(r.dst_len, 32)), kind: kind,
                interfaceIndex: r.oif, gateway: r.gateway == 0 ? nil : IPv4Address(r.gateway),
                preferredSource: r.prefsrc == 0 ? nil : IPv4Address(r.prefsrc), metric: r.priority,
                nexthops: Int(r.nexthops))
        }
        let interfaceAddresses = addresses.map {
            InterfaceAddress(interfaceIndex: $0.ifindex, address: IPv4Address($0.address),
                             prefixLength: Int(min($0.prefixlen, 32)))
        }
        var names: [Int32: String] = [:]
        for index in Set(entries.map(\.interfaceIndex) + interfaceAddresses.map(\.interfaceIndex)) where index > 0 {
            names[index] = interfaceName(index)
        }
        Logger(label: "fasttrace.linux").debug(
            "route table loaded", metadata: ["routes": "\(entries.count)", "addresses": "\(interfaceAddresses.count)"])
        return RouteTable(entries: entries, addresses: interfaceAddresses, interfaceNames: names)
    }

    /// The route to `destination` by longest-prefix match (lowest metric among equal prefixes); nil
    /// when there is none or the best match is a blackhole, unreachable or prohibit route, or when no
    /// source address can be chosen.
    public func lookup(_ destination: IPv4Address) -> Route? {
        guard let entry = bestEntry(for: destination), entry.kind == .unicast, entry.interfaceIndex > 0 else {
            return nil
        }
        guard let source = sourceAddress(for: entry, destination: destination) else { return nil }
        return Route(
            interfaceIndex: entry.interfaceIndex,
            interfaceName: interfaceNames[entry.interfaceIndex] ?? "if\(entry.interfaceIndex)",
            source: IPAddress(source), gateway: entry.gateway.map(IPAddress.init))
    }

    /// The most specific entry covering `destination`, whatever its kind.
    public func bestEntry(for destination: IPv4Address) -> Entry? {
        for length in prefixLengths {
            if let entry = byPrefix[length][destination.value & IPv4Address.prefixMask(length: length)] { return entry }
        }
        return nil
    }

    /// The table a socket bound to interface `index` sees (`SO_BINDTODEVICE`, fasttrace's `-i`): the
    /// kernel's lookup then skips routes whose next hop is another interface, while blackhole,
    /// unreachable and prohibit routes still apply. (The kernel would treat a destination with no route
    /// through the interface as on-link and ARP for it; `lookup` on this table says "no route" instead.)
    /// For a multipath route only the first next hop's interface is known here.
    public func restricted(toInterface index: Int32) -> RouteTable {
        RouteTable(entries: entries.filter { $0.interfaceIndex == index || $0.kind == .reject },
                   addresses: addresses, interfaceNames: interfaceNames)
    }

    /// Why `source` cannot be the source of probes along `route`, or nil when it can: it must be the
    /// route's preferred source or an address of the route's outgoing interface, so the probes say
    /// where they left from and the replies can come back to it. (A loopback source on a path out of
    /// the host, or an address of another interface, would leave every hop silent.)
    public func problem(source: IPv4Address, on route: Route) -> String? {
        if IPAddress(source) == route.source { return nil }
        if addresses.contains(where: { $0.interfaceIndex == route.interfaceIndex && $0.address == source }) {
            return nil
        }
        let owner = addresses.first { $0.address == source }.map { interfaceNames[$0.interfaceIndex] ?? "if\($0.interfaceIndex)" }
        return "the route leaves through \(route.interfaceName), and \(source) is "
            + (owner.map { "an address of \($0)" } ?? "not an address of it")
    }

    /// True when `address` is configured on some interface (to validate a user's `-s`).
    public func sourceAddressExists(_ address: IPv4Address) -> Bool {
        addresses.contains { $0.address == address }
    }

    /// The index of the interface called `name`, or nil.
    public func interfaceIndex(named name: String) -> Int32? {
        if let (index, _) = interfaceNames.first(where: { $0.value == name }) { return index }
        let index = if_nametoindex(name)
        return index == 0 ? nil : Int32(bitPattern: index)
    }

    /// The first IPv4 address on the interface called `name` (for `-i`), or nil.
    public func firstAddress(ofInterface name: String) -> IPv4Address? {
        guard let index = interfaceIndex(named: name) else { return nil }
        return addresses.first { $0.interfaceIndex == index }?.address
    }

    /// The route's preferred source; else the first address on its interface whose subnet holds the
    /// gateway (or, on-link, the destination); else the first address on the interface; else the
    /// first non-loopback address anywhere (the kernel would pick some address too).
    private func sourceAddress(for entry: Entry, destination: IPv4Address) -> IPv4Address? {
        if let preferred = entry.preferredSource { return preferred }
        let onInterface = addresses.filter { $0.interfaceIndex == entry.interfaceIndex }
        let neighbour = entry.gateway ?? destination
        if let match = onInterface.first(where: {
            let mask = IPv4Address.prefixMask(length: $0.prefixLength)
            return $0.address.value & mask == neighbour.value & mask
        }) {
            return match.address
        }
        if let first = onInterface.first { return first.address }
        return addresses.first { $0.address.value >> 24 != 127 }?.address
    }

    private static func interfaceName(_ index: Int32) -> String {
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard name.withUnsafeMutableBufferPointer({ if_indextoname(UInt32(bitPattern: index), $0.baseAddress) })
            != nil
        else { return "if\(index)" }
        return name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Runs a dump into a growing array until it fits (the count can change between tries; bounded).
    private static func dump<T>(
        _ operation: String, initialCapacity: Int,
        _ body: (UnsafeMutableBufferPointer<T>) -> Int32
    ) throws(SystemError) -> [T] {
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
