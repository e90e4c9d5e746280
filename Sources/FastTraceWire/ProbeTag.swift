// The identity a probe carries in the fields a reply quotes back. Defined here, beside the codec
// that writes it into a TCP sequence number, because it is a wire-format fact.

/// Which probe a reply belongs to: the in-flight trace slot, that slot's reuse generation, the TTL
/// and the attempt at that TTL. Encoded by `ProbeTagCodec` into the probe's 32-bit TCP sequence
/// number, which comes back in ICMP quotes (the first 8 bytes of TCP) and, plus one, as the
/// acknowledgement number of a SYN-ACK or RST.
public struct ProbeTag: Hashable, Sendable, CustomStringConvertible {
    /// Number of trace slots a run can have in flight (14 bits).
    public static let slotCount = 1 << 14
    /// Number of generations a slot cycles through before a number repeats (2 bits).
    public static let generationCount = 4
    /// Attempts per TTL a tag can name (3 bits).
    public static let attemptCount = 8

    /// In-flight trace slot, `0..<slotCount`.
    public var slot: UInt16
    /// Reuse generation of the slot, `0..<generationCount`.
    public var generation: UInt8
    /// The probe's IP TTL (hop limit), 1...255.
    public var ttl: UInt8
    /// Attempt number at this TTL, `0..<attemptCount`.
    public var attempt: UInt8

    /// Makes a tag; the fields must lie in their ranges (checked).
    @inlinable public init(slot: UInt16, generation: UInt8, ttl: UInt8, attempt: UInt8) {
        precondition(Int(slot) < Self.slotCount && Int(generation) < Self.generationCount
            && Int(attempt) < Self.attemptCount, "ProbeTag field out of range")
        self.slot = slot
        self.generation = generation
        self.ttl = ttl
        self.attempt = attempt
    }

    public var description: String { "slot \(slot)/g\(generation) ttl \(ttl) #\(attempt)" }
}
