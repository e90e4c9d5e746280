// What output says about a hop address besides the address: its reverse DNS name (unless -n) and the
// AS that announces it (--asn-db). Names come from resolver threads, so finished output waits here,
// on the engine's thread, until the names it shows are known or the name timeout has passed; the
// engine's probing never waits for a name.

import FastTraceAnnotations
import FastTraceCore
import FastTraceLinux
import FastTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// What output knows of one hop address. Every formatter reads hops' annotations through
/// `HopAnnotator`, so a new format gets names and AS numbers by asking it.
struct HopAnnotation: Equatable {
    /// The reverse DNS name; nil when the address has none, the lookup failed or timed out, or with -n.
    var name: String?
    /// The AS announcing the address; nil when the table has none for it (or says AS 0, not routed).
    var asn: UInt32?
    /// The AS's name from the table (iptoasn's AS_description); nil when the table gives none.
    var asName: String?
}

/// The annotations of one trace's (or one hop's) addresses, frozen when it is written.
struct HopAnnotator {
    /// Names were looked up (not -n): formats show a name field (JSON `"name"`, null when none).
    let showsNames: Bool
    /// The table from --asn-db, if any: formats show AS fields (JSON `"asn"`/`"as_name"`, text `[ASn]`).
    let asnTable: ASNTable?
    /// The names found, one per address that has one (a trace has a handful).
    let names: [(IPAddress, String)]

    /// No names, no AS numbers (-n without --asn-db).
    static let plain = HopAnnotator(showsNames: false, asnTable: nil, names: [])

    /// Whether AS fields are shown.
    var showsASN: Bool { asnTable != nil }

    /// What is known of `address`.
    subscript(_ address: IPAddress) -> HopAnnotation {
        var annotation = HopAnnotation()
        annotation.name = names.first { $0.0 == address }?.1
        if let asnTable {
            let found = if let v4 = address.ipv4 { asnTable.asn(v4: v4.value) } else {
                asnTable.asn(v6: UInt128(address.high) << 64 | UInt128(address.low))
            }
            guard let asn = found else { return annotation }
            annotation.asn = asn
            annotation.asName = asnTable.name(ofAS: asn)
        }
        return annotation
    }
}

extension IPAddress {
    /// RFC 1918 for IPv4, unique local (fc00::/7, RFC 4193) and link-local (fe80::/10) for IPv6.
    var isPrivate: Bool {
        if let v4 = ipv4 { return v4.isRFC1918 }
        return high >> 57 == 0x7E || high >> 54 == 0x3FA
    }
}

/// Whether a hop address gets a reverse lookup: as in tcptraceroute, RFC 1918 addresses only with -N
/// (`includePrivate`); their reverse zones are private, and asking public DNS only leaks them.
func looksUpName(of address: IPAddress, includePrivate: Bool) -> Bool {
    includePrivate || !address.isPrivate
}

/// Holds finished output until the names it shows are known, then writes it, in the order it was
/// submitted. Lives on the engine's thread, the only one that writes output: `submit` from the engine's
/// callbacks, `drain` every scheduler turn (from `shouldCancel`), `finish` after the engine returns.
///
/// Each piece of output waits at most the resolver's wait (the name timeout) from when it was
/// submitted; what is not known by then is printed without a name. Output that needs no lookup (-n,
/// or every name already cached) is written at once when nothing is waiting ahead of it. Memory:
/// what waits is at most the traces finished within one name timeout.
final class OutputStage {
    private struct Item {
        /// Addresses whose names are still pending.
        var waiting: [IPAddress]
        /// Names found so far.
        var names: [(IPAddress, String)]
        var deadline: UInt64
        var write: (HopAnnotator) -> Void
    }

    private let resolver: NameResolver?
    private let asnTable: ASNTable?
    private let looksUp: (IPAddress) -> Bool
    private var items: [Item] = []
    private var head = 0

    /// Output annotated with names from `resolver` (nil: -n) for the addresses `looksUp` accepts (not
    /// RFC 1918 ones without -N), and AS numbers from `asnTable`.
    init(resolver: NameResolver?, asnTable: ASNTable?, looksUp: @escaping (IPAddress) -> Bool = { _ in true }) {
        self.resolver = resolver
        self.asnTable = asnTable
        self.looksUp = looksUp
    }

    /// Pieces of output waiting for names.
    var waitingCount: Int { items.count - head }

    /// Whether output shows AS numbers (--asn-db given).
    var showsASN: Bool { asnTable != nil }

    /// Queues `write` to run once the names of `addresses` are known (or the name timeout has passed);
    /// it gets their annotations.
    func submit<Addresses: Sequence<IPAddress>>(addresses: Addresses, write: @escaping (HopAnnotator) -> Void) {
        guard let resolver else {
            if waitingCount == 0 {
                write(HopAnnotator(showsNames: false, asnTable: asnTable, names: []))
            } else {
                items.append(Item(waiting: [], names: [], deadline: 0, write: write))
            }
            return
        }
        var waiting: [IPAddress] = []
        var names: [(IPAddress, String)] = []
        for address in addresses
        where looksUp(address) && !waiting.contains(address) && !names.contains(where: { $0.0 == address }) {
            switch resolver.ask(address) {
            case .known(let name?): names.append((address, name))
            case .pending: waiting.append(address)
            case .known(nil), .unavailable: break
            }
        }
        if waiting.isEmpty && waitingCount == 0 {
            write(HopAnnotator(showsNames: true, asnTable: asnTable, names: names))
            return
        }
        items.append(Item(waiting: waiting, names: names, deadline: now() + resolver.waitNanos, write: write))
    }

    /// Writes every piece of output at the head of the queue whose names are in (or timed out).
    /// Cheap when nothing waits; called every scheduler turn.
    func drain() {
        guard waitingCount > 0 else { return }
        let time = now()
        while head < items.count {
            if !settle(&items[head], now: time) { break }
            let item = items[head]
            items[head].write = { _ in }
            head += 1
            item.write(HopAnnotator(showsNames: resolver != nil, asnTable: asnTable, names: item.names))
        }
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }

    /// Writes everything still waiting: as names come in, each piece at its deadline at the latest, or
    /// at once with the names known so far when `cancelled` says so (an interrupt). `tick` runs every
    /// millisecond meanwhile (to flush output that is due).
    func finish(cancelled: () -> Bool, tick: () -> Void) {
        while waitingCount > 0 {
            if cancelled() {
                for index in head..<items.count { items[index].deadline = 0 }
            }
            drain()
            tick()
            if waitingCount > 0 { usleep(1000) }
        }
    }

    /// Moves names that have come in into `item`; true when it can be written.
    private func settle(_ item: inout Item, now time: UInt64) -> Bool {
        if let resolver {
            item.waiting.removeAll { address in
                switch resolver.peek(address) {
                case .pending: return false
                case .known(let name):
                    if let name { item.names.append((address, name)) }
                    return true
                case .unavailable: return true
                }
            }
        }
        return item.waiting.isEmpty || time >= item.deadline
    }

    private func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

extension HopResult {
    /// Every address that answered at this TTL (a few; duplicates possible).
    var responders: some Sequence<IPAddress> { probes.lazy.compactMap(\.responder) }
}

extension TraceResult {
    /// Every address that answered this trace (duplicates possible).
    var responders: some Sequence<IPAddress> { hops.lazy.flatMap(\.responders) }
}
