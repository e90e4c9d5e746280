// Which Ethernet address a probe's frame goes to when it leaves through the transmit ring: the route
// to its destination (main table, as RouteTable reads it) names the next hop, a gateway or, on the
// link, the destination itself; the kernel's neighbour table (RTM_GETNEIGH) names that next hop's MAC.
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
enum NextHop: Equatable {
    /// Send to this IPv4 next hop (a gateway, or the destination on the link) on the ring's interface.
    case address(UInt32)
    /// The ring cannot follow this route as the kernel would: send through the raw socket.
    case socketOnly
}

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

/// The IPv4 neighbours of one interface with a usable link-layer address, read from the kernel.
struct NeighbourTable {
    /// One entry as the kernel reported it.
    struct Entry: Equatable {
        var address: UInt32
        var state: UInt16
        var mac: MACAddress?
        /// The kernel would send to `mac` without asking again (NUD_VALID) and it is an Ethernet MAC.
        var usable: Bool { mac != nil && state & CFastTrace_NUD_VALID() != 0 }
    }

    /// Usable entries by address.
    private(set) var macs: [UInt32: MACAddress] = [:]
    /// Every entry of the last read (usable or not).
    private(set) var entries: [Entry] = []

    /// Reads the IPv4 neighbours of interface `index` again.
    mutating func reload(interfaceIndex index: Int32) throws(SystemError) {
        var capacity = 64
        for _ in 0..<8 {
            var found: Int32 = 0
            let raw = [cfasttrace_neighbour](unsafeUninitializedCapacity: capacity) { buffer, initialized in
                found = CFastTrace_dump_neighbours(index, buffer.baseAddress, buffer.count)
                initialized = found < 0 ? 0 : min(Int(found), capacity)
            }
            if found < 0 { throw SystemError(operation: "netlink(RTM_GETNEIGH dump)", errno: -found) }
            if Int(found) <= capacity {
                entries = raw.map { n in
                    let bytes = withUnsafeBytes(of: n.lladdr) { Array($0.prefix(Int(n.lladdr_len))) }
                    return Entry(address: n.address, state: n.state, mac: bytes.count == 6 ? MACAddress(bytes: bytes) : nil)
                }
                macs.removeAll(keepingCapacity: true)
                for entry in entries where entry.usable { macs[entry.address] = entry.mac }
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
