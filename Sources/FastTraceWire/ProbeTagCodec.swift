// Writes a ProbeTag into the one 32-bit field every kind of reply brings back (the TCP sequence
// number: quoted by ICMP errors, acknowledged plus one by SYN-ACK and RST) and reads it back, with a
// keyed check so that replies the engine did not provoke are mostly rejected before any lookup.

/// Keyed, reversible encoding of a `ProbeTag` as a 32-bit TCP sequence number.
///
/// **Layout.** The 32-bit plaintext is, from the most significant bit:
/// `slot` (14) | `generation` (2) | `ttl` (8) | `attempt` (3) | `check` (5), where `check` is 5 bits
/// of a keyed hash of the other 27 bits. The word on the wire is a keyed permutation of that
/// plaintext: a 4-round balanced Feistel network on the two 16-bit halves, whose round function
/// is a cheap keyed multiply/xorshift mixer of (half, round number, round key). A Feistel network is
/// a bijection whatever its round function, so `decode(encode(t)) == t` for every tag and key.
///
/// **What the check buys.** `decode` inverts the Feistel network and recomputes the check. A word
/// that was not made by `encode` with this key (a reply to someone else's probe, a middlebox that
/// rewrites sequence numbers, a spoofed or stale reply, a run with another key) decodes to pseudo-
/// random plaintext, and is accepted only when its 5 check bits happen to match: with probability
/// about 2^-5 (1 in 32). Such a word also decodes to an unrelated slot, so the engine's own checks,
/// which every accepted reply must still pass (the slot is occupied, its generation matches, the
/// reply's destination and ports are the slot's), reject nearly all of the rest. The key is secret
/// per run, so an off-path host cannot make words that pass the check more often than by chance.
/// This is a filter against confusion and casual forgery, not cryptographic authentication: with
/// 5 check bits and a 32-bit block it cannot be.
///
/// **Cost.** Encoding or decoding is a handful of multiplies, shifts and xors (no tables, no
/// allocation); everything is inlinable so that it inlines into the engine's hot path.
public struct ProbeTagCodec: Sendable {
    /// Key words of the check hash.
    @usableFromInline let checkKey0: UInt64
    @usableFromInline let checkKey1: UInt64
    /// One 32-bit key per Feistel round.
    @usableFromInline let roundKey0: UInt32
    @usableFromInline let roundKey1: UInt32
    @usableFromInline let roundKey2: UInt32
    @usableFromInline let roundKey3: UInt32

    /// Makes a codec from a per-run secret. Equal keys give equal codecs (tests use fixed keys).
    public init(key0: UInt64, key1: UInt64) {
        // Derive independent-looking check and round keys from the two words, so that related user
        // keys (say 0 and 1) do not give related round keys. SplitMix64's finalizer is a bijection,
        // so every bit of both key words reaches every derived key.
        let mixedKey1 = Self.splitMix(key1 ^ 0x1319_8A2E_0370_7344)
        var counter: UInt64 = 0
        func next() -> UInt64 {
            counter &+= 1
            return Self.splitMix(Self.splitMix(key0 &+ counter &* 0x9E37_79B9_7F4A_7C15) ^ mixedKey1)
        }
        checkKey0 = next()
        checkKey1 = next() | 1
        let r01 = next()
        let r23 = next()
        roundKey0 = UInt32(truncatingIfNeeded: r01)
        roundKey1 = UInt32(truncatingIfNeeded: r01 >> 32)
        roundKey2 = UInt32(truncatingIfNeeded: r23)
        roundKey3 = UInt32(truncatingIfNeeded: r23 >> 32)
    }

    /// A codec with a fresh key from the system's secure random source; use one per run.
    public static func random() -> ProbeTagCodec {
        var rng = SystemRandomNumberGenerator()
        return ProbeTagCodec(key0: rng.next(), key1: rng.next())
    }

    /// SplitMix64 finalizer, used only to derive keys.
    static func splitMix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    // MARK: Bit layout

    @inlinable static var slotShift: UInt32 { 18 }
    @inlinable static var generationShift: UInt32 { 16 }
    @inlinable static var ttlShift: UInt32 { 8 }
    @inlinable static var attemptShift: UInt32 { 5 }
    @inlinable static var checkMask: UInt32 { 0x1F }

    /// The 5-bit keyed check of the 27 tag bits (`body` has its low 5 bits zero).
    @inlinable @inline(__always)
    func check(_ body: UInt32) -> UInt32 {
        var x = (UInt64(body) ^ checkKey0) &* checkKey1
        x ^= x >> 29
        x &*= 0xBF58_476D_1CE4_E5B9
        return UInt32(truncatingIfNeeded: x >> 59)  // top 5 bits: the best mixed
    }

    /// The Feistel round function: a keyed mixer of a 16-bit half and the round number.
    @inlinable @inline(__always)
    static func round(_ half: UInt16, _ roundNumber: UInt32, _ key: UInt32) -> UInt16 {
        var x = (UInt32(half) | roundNumber << 16) ^ key
        x &*= 0x9E37_79B1
        x ^= x >> 15
        x &*= 0x85EB_CA6B
        x ^= x >> 13
        return UInt16(truncatingIfNeeded: x >> 16)
    }

    /// The keyed permutation: 4 Feistel rounds, (L, R) -> (R, L ^ F(R)).
    @inlinable @inline(__always)
    func permute(_ plain: UInt32) -> UInt32 {
        var l = UInt16(truncatingIfNeeded: plain >> 16)
        var r = UInt16(truncatingIfNeeded: plain)
        (l, r) = (r, l ^ Self.round(r, 0, roundKey0))
        (l, r) = (r, l ^ Self.round(r, 1, roundKey1))
        (l, r) = (r, l ^ Self.round(r, 2, roundKey2))
        (l, r) = (r, l ^ Self.round(r, 3, roundKey3))
        return UInt32(l) << 16 | UInt32(r)
    }

    /// The inverse permutation: the rounds in reverse, (L, R) -> (R ^ F(L), L).
    @inlinable @inline(__always)
    func unpermute(_ word: UInt32) -> UInt32 {
        var l = UInt16(truncatingIfNeeded: word >> 16)
        var r = UInt16(truncatingIfNeeded: word)
        (l, r) = (r ^ Self.round(l, 3, roundKey3), l)
        (l, r) = (r ^ Self.round(l, 2, roundKey2), l)
        (l, r) = (r ^ Self.round(l, 1, roundKey1), l)
        (l, r) = (r ^ Self.round(l, 0, roundKey0), l)
        return UInt32(l) << 16 | UInt32(r)
    }

    // MARK: Public API

    /// The sequence number that carries `tag`.
    @inlinable
    public func encode(_ tag: ProbeTag) -> UInt32 {
        let body = UInt32(tag.slot) << Self.slotShift
            | UInt32(tag.generation) << Self.generationShift
            | UInt32(tag.ttl) << Self.ttlShift
            | UInt32(tag.attempt) << Self.attemptShift
        return permute(body | check(body))
    }

    /// The tag carried by `word`, or nil when its keyed check fails (the word was not made by this
    /// codec's `encode`, except with probability about 2^-5; see the type's documentation).
    @inlinable
    public func decode(_ word: UInt32) -> ProbeTag? {
        let plain = unpermute(word)
        let body = plain & ~Self.checkMask
        guard plain & Self.checkMask == check(body) else { return nil }
        return ProbeTag(
            uncheckedSlot: UInt16(truncatingIfNeeded: plain >> Self.slotShift),
            generation: UInt8(truncatingIfNeeded: plain >> Self.generationShift & 0x3),
            ttl: UInt8(truncatingIfNeeded: plain >> Self.ttlShift),
            attempt: UInt8(truncatingIfNeeded: plain >> Self.attemptShift & 0x7))
    }
}

extension ProbeTag {
    /// Makes a tag from fields already known to be in range (they come out of fixed-width bit
    /// fields), skipping the range check of the public initializer on the decode path.
    @inlinable @inline(__always)
    init(uncheckedSlot slot: UInt16, generation: UInt8, ttl: UInt8, attempt: UInt8) {
        self.slot = slot
        self.generation = generation
        self.ttl = ttl
        self.attempt = attempt
    }
}
