// `--shard I/N`: N vantage points share one target list with no coordination, each tracing the target ×
// ports of its own shard. As zmap shards its scan, the split comes from a keyed permutation, so every
// host computes the same split from the list, I/N and the seed alone, and a shard is a scattered sample
// of the list rather than a contiguous block of it (a /16 is not all in one shard).

import FastTraceWire

/// One shard of N. A target × port belongs to exactly one shard: the one its keyed image falls in.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    /// The seed every host uses unless `--shard-seed` says otherwise ("fasttrac" in ASCII). Documented in
    /// the README, so hosts that were given no seed still agree.
    public static let defaultSeed: UInt64 = 0x6661_7374_7472_6163
    /// The most shards a list may be split into.
    public static let maxCount = 1 << 20

    /// This shard, 1...count.
    public let index: Int
    /// How many shards share the list.
    public let count: Int
    /// The permutation's key.
    public let seed: UInt64

    /// Nil unless 1 ≤ index ≤ count ≤ `maxCount`.
    public init?(index: Int, count: Int, seed: UInt64 = Shard.defaultSeed) {
        guard count >= 1, count <= Self.maxCount, index >= 1, index <= count else { return nil }
        self.index = index
        self.count = count
        self.seed = seed
    }

    /// `I/N`, as given.
    public var description: String { "\(index)/\(count)" }

    /// Reads `I/N` (`--shard 2/3`); the reason in one sentence when it is not one.
    public static func parse(_ text: String, seed: UInt64 = Shard.defaultSeed) -> Result<Shard, ShardError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]),
            parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } })
        else {
            return .failure(ShardError("'\(text)' is not I/N: two whole numbers, this host's shard and how many "
                + "share the list (--shard 1/3)"))
        }
        guard n >= 1 && n <= maxCount else {
            return .failure(ShardError("\(text): the number of shards must be 1...\(maxCount)"))
        }
        guard let shard = Shard(index: i, count: n, seed: seed) else {
            return .failure(ShardError("\(text): the shard must be 1...\(n) (shards count from 1: 1/\(n) to \(n)/\(n))"))
        }
        return .success(shard)
    }

    /// The shard (1...count) that traces `address` × `port`.
    public func owner(of address: IPv4Address, port: UInt16) -> Int {
        owner(UInt64(address.value) << 16 | UInt64(port))
    }

    /// The shard (1...count) that traces `address` × `port`, either family. An IPv6 address is first
    /// folded to 32 bits (SplitMix64's finalizer over each half, keyed by the seed), so a v6 target × port
    /// still belongs to exactly one shard and a prefix's addresses scatter over the shards.
    public func owner(of address: IPAddress, port: UInt16) -> Int {
        if let v4 = address.ipv4 { return owner(of: v4, port: port) }
        let folded = Self.mix(Self.mix(address.high ^ seed) ^ address.low)
        return owner(((folded ^ folded >> 32) & 0xFFFF_FFFF) << 16 | UInt64(port))
    }

    /// True when this shard traces `address` × `port`, either family.
    public func contains(_ address: IPAddress, port: UInt16) -> Bool { owner(of: address, port: port) == index }

    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ z >> 30) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ z >> 27) &* 0x94D0_49BB_1331_11EB
        return z ^ z >> 31
    }

    /// The shard that traces a target given by name (a hostname line) × `port`: by the name, which every
    /// host reads alike from the list, not by the address its resolver returns, which may differ per host.
    public func owner(ofName name: String, port: UInt16) -> Int {
        // FNV-1a over the lowercased name, folded to 32 bits: the permutation below does the mixing.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.lowercased().utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return owner(((hash ^ hash >> 32) & 0xFFFF_FFFF) << 16 | UInt64(port))
    }

    /// True when this shard traces `address` × `port`.
    public func contains(_ address: IPv4Address, port: UInt16) -> Bool { owner(of: address, port: port) == index }

    /// True when this shard traces the target named `name` × `port`.
    public func contains(name: String, port: UInt16) -> Bool { owner(ofName: name, port: port) == index }

    private func owner(_ key: UInt64) -> Int { Int(Self.permute(key, seed: seed) % UInt64(count)) + 1 }

    /// A keyed permutation of the 48-bit values (an IPv4 address and a port): a 4-round balanced Feistel
    /// network over two 24-bit halves, each round function SplitMix64's finalizer of the half and a round
    /// key. Every round is invertible, so distinct inputs have distinct images, and the images of a list
    /// are spread as a random sample's would be: taken modulo N they split it evenly.
    static func permute(_ value: UInt64, seed: UInt64) -> UInt64 {
        let mask: UInt64 = 0xFF_FFFF
        var left = value >> 24 & mask
        var right = value & mask
        for round in UInt64(0)..<4 {
            var z = right ^ (seed &+ round &* 0x9E37_79B9_7F4A_7C15)
            z = (z ^ z >> 30) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ z >> 27) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            (left, right) = (right, (left ^ z) & mask)
        }
        return left << 24 | right
    }
}

/// Why `--shard` or `--shard-seed` was refused, as one sentence.
public struct ShardError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
