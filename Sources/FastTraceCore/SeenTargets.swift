// The duplicate check of a streamed target list: every address listed so far, so that a target listed
// twice (again, through a name that resolves to it, or inside a prefix) is traced once. Every line of a
// list is traced on the same ports, so a repeated (address, port) is exactly a repeated address: one
// set of addresses is enough.
//
// Memory: single addresses (and names' addresses) in a hash set of 32-bit values, about 9 bytes per
// address at the set's load (measured, release build: 1,000,000 addresses 9 MB of RSS and 0.1 s to
// insert and look each up once; 4,194,304, the limit, 34 MB and 0.7 s); a prefix is
// one entry in a second set, never its addresses, so a /16 costs 8 bytes, not 65,536 entries. Asking
// costs one lookup in the first set and one per distinct prefix length listed (at most 33). Past
// `limit` addresses the set stops growing: later repeats of addresses it could not record are traced
// again, and `full` says so.

import FastTraceWire

/// Addresses and prefixes seen so far in a target list.
public struct SeenTargets: Sendable {
    /// Single addresses recorded at most (prefixes do not count).
    public let limit: Int
    private var addresses: Set<UInt32> = []
    /// Prefixes as `base << 8 | length`.
    private var prefixes: Set<UInt64> = []
    /// The distinct lengths in `prefixes`.
    private var lengths: [Int] = []
    /// True once an address could not be recorded because `limit` was reached.
    public private(set) var full = false

    /// Records up to `limit` single addresses (default 4,194,304: at most about 34 MB).
    public init(limit: Int = 1 << 22) {
        self.limit = limit
    }

    /// Single addresses recorded.
    public var count: Int { addresses.count + addresses6.count }

    /// IPv6 addresses and prefixes: sets of the whole addresses (IPv6 lists are rarer, and 16 bytes
    /// each).
    private struct Prefix6: Hashable {
        var base: IPAddress
        var length: Int
    }
    private var addresses6: Set<IPAddress> = []
    private var prefixes6: Set<Prefix6> = []
    private var lengths6: [Int] = []

    private func contains6(_ address: IPAddress) -> Bool {
        if addresses6.contains(address) { return true }
        return lengths6.contains { prefixes6.contains(Prefix6(base: address.masked(length: $0), length: $0)) }
    }

    /// Whether `address` was listed before: as an address, a name's address, or inside a prefix.
    public func contains(_ address: IPAddress) -> Bool {
        guard let address = address.ipv4 else { return contains6(address) }
        if addresses.contains(address.value) { return true }
        for length in lengths {
            let base = UInt64(address.value & IPv4Address.prefixMask(length: length))
            if prefixes.contains(base << 8 | UInt64(length)) { return true }
        }
        return false
    }

    /// Records `address`; false if it was listed before.
    public mutating func insert(_ address: IPAddress) -> Bool {
        if contains(address) { return false }
        if count < limit {
            if let v4 = address.ipv4 { addresses.insert(v4.value) } else { addresses6.insert(address) }
        } else {
            full = true
        }
        return true
    }

    /// Records every address of `base/length` (ask `contains` for each first: this only records).
    public mutating func insertPrefix(_ base: IPAddress, length: Int) {
        guard let base = base.ipv4 else {
            prefixes6.insert(Prefix6(base: base.masked(length: length), length: length))
            if !lengths6.contains(length) { lengths6.append(length) }
            return
        }
        let masked = UInt64(base.value & IPv4Address.prefixMask(length: length))
        prefixes.insert(masked << 8 | UInt64(length))
        if !lengths.contains(length) { lengths.append(length) }
    }
}
