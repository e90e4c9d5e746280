// Deterministic random numbers for tests: the same seed, the same sequence, on every run.

/// xorshift64*: a forger's or a scenario's random numbers (deterministic).
public struct SeededRandom {
    /// The generator's state (never 0).
    public var state: UInt64
    /// A generator seeded with `seed` (made odd, so never 0).
    public init(seed: UInt64) { state = seed | 1 }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
