// Which Ethernet address a probe's frame goes to when it leaves through the transmit ring: the route
// to its destination (main table, as RouteTable and RouteTable6 read it) names the next hop, a gateway
// (for IPv6 often a link-local fe80:: address, which is just as good: the neighbour table is the
// interface's own) or, on the link, the destination itself; the kernel's neighbour tables (RTM_GETNEIGH:
// ARP for IPv4, NDP for IPv6) name that next hop's MAC.
// A destination whose route the ring cannot follow exactly as the kernel would (another interface, a
// multipath route whose next hop the kernel picks per flow, no route) or whose next hop has no usable
// neighbour entry yet goes through the raw socket instead; the kernel then resolves the neighbour as it
// sends, and the next refresh of the table moves that next hop onto the ring.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace
import FastTraceWire

/// Where one probe's next hop is, for the ring.
enum NextHopOf<Address: Equatable & Sendable>: Equatable, Sendable {
    /// Send to this next hop (a gateway, or the destination on the link) on the ring's interface.
    case address(Address)
    /// The ring cannot follow this route as the kernel would: send through the raw socket.
    case socketOnly
}

/// An IPv4 next hop (the address as a host-order word).
typealias NextHop = NextHopOf<UInt32>
/// An IPv6 next hop.
typealias NextHop6 = NextHopOf<IPAddress>

/// The routes of the ring's interface, reduced to what picks a next hop. Lookups allocate nothing.
struct NextHopRoutes {
    /// One route: destination prefix and what it means for the ring.
    struct Rule: Equatable {
        var network: UInt32
        var mask: UInt32
        var hop: Hop
        enum Hop: Equatable {
            case gateway(UInt32)
            case onLink
            case socketOnly
        }
    }

    /// Up to `linearLimit` rules, longest prefix first (a first match is the longest match); nil when
    /// the table is bigger, and lookups go through `table` instead.
    private let rules: [Rule]?
    private let table: RouteTable
    private let interfaceIndex: Int32
    /// Above this many routes, a linear scan costs more than RouteTable's hashed longest-prefix match.
    static let linearLimit = 32

    /// The routes of `table` as the ring on interface `interfaceIndex` follows them.
    init(table: RouteTable, interfaceIndex: Int32) {
        self.table = table
        self.interfaceIndex = interfaceIndex
        // Best entry per (length, prefix), as RouteTable's own lookup keeps it (lowest metric).
        var best: [Int: RouteTable.Entry] = [:]
        for entry in table.entries {
            let key = entry.prefixLength << 32 | Int(entry.destination.value)
            if let existing = best[key], existing.metric <= entry.metric { continue }
            best[key] = entry
        }
        if best.count <= Self.linearLimit {
            rules = best.values.sorted { $0.prefixLength > $1.prefixLength }.map { entry in
                Rule(network: entry.destination.value, mask: IPv4Address.prefixMask(length: entry.prefixLength),
                     hop: Self.hop(of: entry, interfaceIndex: interfaceIndex))
            }
        } else {
            rules = nil
        }
    }

    static func hop(of entry: RouteTable.Entry, interfaceIndex: Int32) -> Rule.Hop {
        guard entry.kind == .unicast, entry.interfaceIndex == interfaceIndex, entry.nexthops == 1 else {
            return .socketOnly
        }
        return entry.gateway.map { .gateway($0.value) } ?? .onLink
    }

    /// The next hop of `destination`.
    @inline(__always)
    func nextHop(_ destination: UInt32) -> NextHop {
        if let rules {
            for rule in rules where destination & rule.mask == rule.network {
                return Self.resolve(rule.hop, destination)
            }
            return .socketOnly
        }
        guard let entry = table.bestEntry(for: IPv4Address(destination)) else { return .socketOnly }
        return Self.resolve(Self.hop(of: entry, interfaceIndex: interfaceIndex), destination)
    }

    @inline(__always)
    private static func resolve(_ hop: Rule.Hop, _ destination: UInt32) -> NextHop {
        switch hop {
        case .gateway(let gateway): .address(gateway)
        case .onLink: .address(destination)
        case .socketOnly: .socketOnly
        }
    }

    /// The gateways the routes name (to say which next hop the ring sends to).
    var gateways: [UInt32] {
        let hops = rules?.map(\.hop) ?? table.entries.map { Self.hop(of: $0, interfaceIndex: interfaceIndex) }
        var seen: [UInt32] = []
        for case .gateway(let g) in hops where !seen.contains(g) { seen.append(g) }
        return seen
    }
}

/// The IPv6 routes of the ring's interface, reduced to what picks a next hop, as `NextHopRoutes` does for
/// IPv4. Lookups allocate nothing.
struct NextHopRoutes6 {
    /// One route: destination prefix (as two masked words) and what it means for the ring.
    struct Rule: Equatable {
        var high: UInt64
        var low: UInt64
        var highMask: UInt64
        var lowMask: UInt64
        var hop: Hop
        enum Hop: Equatable {
            case gateway(IPAddress)
            case onLink
            case socketOnly
        }
    }

    /// Up to `NextHopRoutes.linearLimit` rules, longest prefix first; nil when the table is bigger, and
    /// lookups go through `table` instead.
    private let rules: [Rule]?
    private let table: RouteTable6
    private let interfaceIndex: Int32

    /// The routes of `table` as the ring on interface `interfaceIndex` follows them.
    init(table: RouteTable6, interfaceIndex: Int32) {
        self.table = table
        self.interfaceIndex = interfaceIndex
        // Best entry per (length, prefix), as RouteTable6's own lookup keeps it (lowest metric).
        var best: [Int: [IPAddress: RouteTable6.Entry]] = [:]
        var count = 0
        for entry in table.entries {
            if let existing = best[entry.prefixLength]?[entry.destination], existing.metric <= entry.metric { continue }
            if best[entry.prefixLength]?[entry.destination] == nil { count += 1 }
            best[entry.prefixLength, default: [:]][entry.destination] = entry
        }
        if count <= NextHopRoutes.linearLimit {
            rules = best.values.flatMap(\.values).sorted { $0.prefixLength > $1.prefixLength }.map { entry in
                let mask = IPAddress(high: ~0, low: ~0).masked(length: entry.prefixLength)
                return Rule(high: entry.destination.high, low: entry.destination.low, highMask: mask.high,
                    lowMask: mask.low, hop: Self.hop(of: entry, interfaceIndex: interfaceIndex))
            }
        } else {
            rules = nil
        }
    }

    static func hop(of entry: RouteTable6.Entry, interfaceIndex: Int32) -> Rule.Hop {
        guard entry.kind == .unicast, entry.interfaceIndex == interfaceIndex, entry.nexthops == 1 else {
            return .socketOnly
        }
        return entry.gateway.map { .gateway($0) } ?? .onLink
    }

    /// The next hop of `destination` (an IPv6 address). A link-local destination (fe80::/10) goes through
    /// the socket: which link it is on takes a scope the destination alone does not carry.
    @inline(__always)
    func nextHop(_ destination: IPAddress) -> NextHop6 {
        if destination.high >> 54 == 0x3FA { return .socketOnly }  // fe80::/10
        if let rules {
            for rule in rules where destination.high & rule.highMask == rule.high && destination.low & rule.lowMask == rule.low {
                return Self.resolve(rule.hop, destination)
            }
            return .socketOnly
        }
        guard let entry = table.bestEntry(for: destination) else { return .socketOnly }
        return Self.resolve(Self.hop(of: entry, interfaceIndex: interfaceIndex), destination)
    }

    @inline(__always)
    private static func resolve(_ hop: Rule.Hop, _ destination: IPAddress) -> NextHop6 {
        switch hop {
        case .gateway(let gateway): .address(gateway)
        case .onLink: .address(destination)
        case .socketOnly: .socketOnly
        }
    }

    /// The gateways the routes name (to say which next hop the ring sends to).
    var gateways: [IPAddress] {
        let hops = rules?.map(\.hop) ?? table.entries.map { Self.hop(of: $0, interfaceIndex: interfaceIndex) }
        var seen: [IPAddress] = []
        for case .gateway(let g) in hops where !seen.contains(g) { seen.append(g) }
        return seen
    }
}

/// The IPv4 (ARP) and IPv6 (NDP) neighbours of one interface with a usable link-layer address, read
/// from the kernel in one dump.
struct NeighbourTable {
    /// One entry as the kernel reported it.
    struct Entry: Equatable {
        var address: IPAddress
        var state: UInt16
        var mac: MACAddress?
        /// The kernel would send to `mac` without asking again (NUD_VALID) and it is an Ethernet MAC.
        var usable: Bool { mac != nil && state & CFastTrace_NUD_VALID() != 0 }
    }

    /// Usable IPv4 entries by address (host order).
    private(set) var macs: [UInt32: MACAddress] = [:]
    /// Usable IPv6 entries by address.
    private(set) var macs6: [IPAddress: MACAddress] = [:]
    /// Every entry of the last read (usable or not).
    private(set) var entries: [Entry] = []

    /// Reads the neighbours of interface `index` again, both families.
    mutating func reload(interfaceIndex index: Int32) throws(SystemError) {
        var capacity = 64
        for _ in 0..<8 {
            var found: Int32 = 0
            let raw = [cfasttrace_neighbour](unsafeUninitializedCapacity: capacity) { buffer, initialized in
                found = CFastTrace_dump_neighbours(index, AF_UNSPEC, buffer.baseAddress, buffer.count)
                initialized = found < 0 ? 0 : min(Int(found), capacity)
            }
            if found < 0 { throw SystemError(operation: "netlink(RTM_GETNEIGH dump)", errno: -found) }
            if Int(found) <= capacity {
                entries = raw.map { n in
                    let bytes = withUnsafeBytes(of: n.lladdr) { Array($0.prefix(Int(n.lladdr_len))) }
                    let address = withUnsafeBytes(of: n.address) { raw in
                        Int32(n.family) == AF_INET6 ? IPAddress(bytes: raw)
                            : IPAddress(IPv4Address(UInt32(raw[0]) << 24 | UInt32(raw[1]) << 16
                                | UInt32(raw[2]) << 8 | UInt32(raw[3])))
                    }
                    return Entry(address: address, state: n.state, mac: bytes.count == 6 ? MACAddress(bytes: bytes) : nil)
                }
                macs.removeAll(keepingCapacity: true)
                macs6.removeAll(keepingCapacity: true)
                for entry in entries where entry.usable {
                    if let v4 = entry.address.ipv4 { macs[v4.value] = entry.mac } else { macs6[entry.address] = entry.mac }
                }
                return
            }
            capacity = Int(found) * 2
        }
        throw SystemError(operation: "netlink(RTM_GETNEIGH dump) (table kept growing)", errno: EAGAIN)
    }

    /// The state's name as `ip neigh` prints it.
    static func stateName(_ state: UInt16) -> String {
        let names: [(UInt16, String)] = [(0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"),
            (0x10, "PROBE"), (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT")]
        let set = names.filter { state & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "NONE" : set.joined(separator: "|")
    }
}
