// Writes a probe's identity into the fields replies bring back and checks it when they do: the tag
// (slot, TTL, attempt) travels encrypted in the TCP sequence number, and a keyed MAC over the tag and
// the whole flow (addresses, ports, protocol, the slot occupant's epoch) fills the rest of the sequence
// number and the IPv4 ID. A reply is accepted only when that MAC checks out against the slot's own
// occupant, so neither a forger nor a late reply for an earlier occupant gets a hop accepted.

/// Keyed encoding and verification of probe identity.
///
/// **Bit budget, per probe kind** (what a reply quotes back, and how it is spent):
///
/// | probe | field | bits | spent on |
/// |---|---|---|---|
/// | TCP SYN, IPv4 | TCP sequence number | 32 | tag (slot 14, TTL 8, attempt 3) + MAC 7, through a keyed 32-bit permutation |
/// | | IPv4 ID | 16 | MAC (next 16 bits) |
/// | | SYN-ACK / RST acknowledgement | 32 | sequence + 1 (+ payload length for RST): tag + MAC 7 |
/// | UDP, IPv4 | UDP checksum (high half, made valid through 2 payload bytes) + IPv4 ID (low half) | 32 | the 32-bit word itself (`TagLayout.splitWithID`); ports stay fixed (Paris) |
/// | | DNS answer: the question's first label, 8 hex digits; NTP answer: origin timestamp's first 32 bits | 32 | the same word, echoed by the service |
/// | ICMP echo, IPv4 (next) | sequence 16 + checksum (payload) 16, IPv4 ID 16 | 48 | identifier stays fixed (Paris) |
/// | TCP SYN, IPv6 (next) | sequence number | 32 | as IPv4 without the IPv4 ID; the flow label stays fixed |
///
/// The 32-bit word is `permute(slot 14 | ttl 8 | attempt 3 | mac 7)`, where `permute` is a 4-round
/// Feistel network keyed per run and `mac` is SipHash-1-3 (128-bit per-run key) over the flow's digest
/// (itself SipHash-1-3 over both 128-bit addresses, the ports, the protocol and the slot's epoch,
/// computed once per slot occupant), the slot, the TTL and the attempt. The IPv4 ID is the MAC's next 16 bits (0 is
/// replaced by 0xFFFF: the kernel overwrites a zero ID on raw sends).
///
/// **The forgery bound, by construction.** The permutation is a bijection, so every 32-bit word
/// decrypts to exactly one (tag, mac) pair, and for a probe still outstanding exactly one word in
/// 2^32 names it with the right MAC. A made-up word is therefore accepted with probability at most
/// (probes outstanding for that flow) × 2^-32; an ICMP error must also carry the quoted IPv4 ID, which
/// cuts that by another 2^-16 to 2^-48 per outstanding probe. The key is secret and fresh per run, so
/// seeing replies to other probes does not help: the MAC of a new (tag, flow, epoch) is unpredictable.
///
/// In the UDP layout the word's low half *is* the IPv4 ID, and the kernel replaces a zero ID on raw
/// sends: the word is walked through the permutation until its low half is not zero (cycle walking,
/// as format-preserving encryption restricts a cipher to a subset; the plaintext's low half holds the
/// TTL, never 0, so it lies in that subset too). It stays a bijection on words with a non-zero low
/// half, so the bound above holds; there are 7 MAC bits and no separate ID, so an ICMP error's bound is
/// the destination answer's, 2^-32 per outstanding probe.
///
/// **Cost.** A permutation and one short SipHash (3 message words): about 20 ns, no allocation.
public struct ProbeTagCodec: Sendable {
    /// SipHash key.
    @usableFromInline let macKey0: UInt64
    @usableFromInline let macKey1: UInt64
    /// One 32-bit key per Feistel round.
    @usableFromInline let roundKey0: UInt32
    @usableFromInline let roundKey1: UInt32
    @usableFromInline let roundKey2: UInt32
    @usableFromInline let roundKey3: UInt32

    /// MAC bits carried in the sequence number.
    public static let sequenceMACBits = 7
    /// MAC bits carried in the IPv4 ID.
    public static let ipIDMACBits = 16

    /// Makes a codec from a per-run secret. Equal keys give equal codecs (tests use fixed keys).
    public init(key0: UInt64, key1: UInt64) {
        // Derive independent-looking MAC and round keys from the two words, so that related user keys
        // (say 0 and 1) do not give related derived keys. SplitMix64's finalizer is a bijection.
        let mixedKey1 = Self.splitMix(key1 ^ 0x1319_8A2E_0370_7344)
        var counter: UInt64 = 0
        func next() -> UInt64 {
            counter &+= 1
            return Self.splitMix(Self.splitMix(key0 &+ counter &* 0x9E37_79B9_7F4A_7C15) ^ mixedKey1)
        }
        macKey0 = next()
        macKey1 = next()
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

    // MARK: Bit layout of the plaintext word

    @inlinable static var slotShift: UInt32 { 18 }
    @inlinable static var ttlShift: UInt32 { 10 }
    @inlinable static var attemptShift: UInt32 { 7 }
    @inlinable static var macMask: UInt32 { 0x7F }

    // MARK: The MAC


    /// SipHash-1-3 state, compressing 64-bit message words one at a time.
    @usableFromInline struct SipState {
        @usableFromInline var v0: UInt64, v1: UInt64, v2: UInt64, v3: UInt64

        @inlinable @inline(__always) init(_ k0: UInt64, _ k1: UInt64) {
            v0 = k0 ^ 0x736f_6d65_7073_6575
            v1 = k1 ^ 0x646f_7261_6e64_6f6d
            v2 = k0 ^ 0x6c79_6765_6e65_7261
            v3 = k1 ^ 0x7465_6462_7974_6573
        }

        @inlinable @inline(__always) mutating func round() {
            v0 &+= v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
            v2 &+= v3; v3 = rotl(v3, 16); v3 ^= v2
            v0 &+= v3; v3 = rotl(v3, 21); v3 ^= v0
            v2 &+= v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
        }

        @inlinable @inline(__always) mutating func add(_ m: UInt64) {
            v3 ^= m; round(); v0 ^= m
        }

        /// The hash of the `words` words added (no tail bytes; the length byte only).
        @inlinable @inline(__always) mutating func finish(words: UInt64) -> UInt64 {
            add((words * 8) << 56)
            v2 ^= 0xFF
            round(); round(); round()
            return v0 ^ v1 ^ v2 ^ v3
        }
    }

    /// SipHash-1-3 of three 64-bit words (24 bytes) under the codec's key.
    @inlinable @inline(__always)
    func sipHash(_ m0: UInt64, _ m1: UInt64, _ m2: UInt64) -> UInt64 {
        var state = SipState(macKey0, macKey1)
        state.add(m0); state.add(m1); state.add(m2)
        return state.finish(words: 3)
    }

    /// The flow's digest: SipHash-1-3 (the codec's key) over both 128-bit addresses, the ports, the
    /// protocol and the slot occupant's epoch. Computed once when a trace takes its slot; every MAC of
    /// that occupant is computed from it, so a MAC binds the whole flow in either family's width.
    @inlinable
    public func digest(_ flow: ProbeFlow) -> UInt64 {
        var state = SipState(macKey0, macKey1)
        state.add(flow.source.high); state.add(flow.source.low)
        state.add(flow.destination.high); state.add(flow.destination.low)
        state.add(UInt64(flow.sourcePort) << 48 | UInt64(flow.destinationPort) << 32
            | UInt64(flow.protocolNumber) << 16 | UInt64(flow.epoch))
        return state.finish(words: 5)
    }

    /// The 64-bit MAC of one probe: its tag and its flow's digest (`digest(_:)`).
    @inlinable @inline(__always)
    public func mac(_ tag: ProbeTag, digest: UInt64) -> UInt64 {
        let probe = UInt64(tag.slot) << 16 | UInt64(tag.ttl) << 8 | UInt64(tag.attempt)
        return sipHash(digest, probe, 0x7072_6f62_6531)  // "probe1": the MAC's own domain
    }

    /// The 64-bit MAC of one probe: its tag, its flow and its slot's epoch.
    @inlinable @inline(__always)
    public func mac(_ tag: ProbeTag, _ flow: ProbeFlow) -> UInt64 { mac(tag, digest: digest(flow)) }

    /// The IPv4 ID a probe with this MAC carries (never 0).
    @inlinable @inline(__always)
    public static func ipID(fromMAC mac: UInt64) -> UInt16 {
        let id = UInt16(truncatingIfNeeded: mac >> 7)
        return id == 0 ? 0xFFFF : id
    }

    // MARK: The permutation

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
    ///
    /// Written out so that each round's key is XORed into the half that is known a round early: a round
    /// mixes `L ^ key`, and the next round's `L ^ key'` is `(R ^ key') ^ F(L)`, where `R` (the previous
    /// `L`) is already known, so the chain every reply waits for is the mixing alone. The same function
    /// as the rounds of `round` in reverse (ProbeTagCodecTests.unpermuteMatchesTheRounds compares them).
    @inlinable @inline(__always)
    func unpermute(_ word: UInt32) -> UInt32 {
        let l0 = word >> 16, r0 = word & 0xFFFF
        // Each round's key with its number in it, as `round` forms `(half | number << 16) ^ key`.
        let k0 = roundKey0, k1 = roundKey1 ^ 1 << 16, k2 = roundKey2 ^ 2 << 16, k3 = roundKey3 ^ 3 << 16
        let a1 = Self.mix(l0 ^ k3, into: r0 ^ k2)  // L1 ^ k2, L1 = R0 ^ F3(L0)
        let a2 = Self.mix(a1, into: l0 ^ k1)  // L2 ^ k1 (R1 = L0)
        let l1 = a1 ^ k2
        let a3 = Self.mix(a2, into: l1 ^ k0)  // L3 ^ k0 (R2 = L1)
        let l2 = a2 ^ k1
        let l4 = Self.mix(a3, into: l2)  // R3 = L2
        let l3 = a3 ^ k0
        return l4 << 16 | l3
    }

    /// `round`'s mixing of an input already keyed (`(half | round << 16) ^ key`), XORed into `other`.
    @inlinable @inline(__always)
    static func mix(_ keyed: UInt32, into other: UInt32) -> UInt32 {
        var x = keyed &* 0x9E37_79B1
        x ^= x >> 15
        x &*= 0x85EB_CA6B
        return other ^ (x >> 16 ^ x >> 29)
    }

    // MARK: Public API

    /// Where a kind's probe carries the 32-bit word, which decides how it is laid out.
    public enum TagLayout: Sendable, Equatable {
        /// In a field of its own (TCP's sequence number), with 16 more MAC bits in the IPv4 ID.
        case separateID
        /// Split across a 16-bit field (high half) and the IPv4 ID (low half, never 0): UDP's checksum.
        case splitWithID
    }

    /// The cycle walk's bound: a genuine word needs more than one step 1 time in 65,536, more than 8
    /// about never (2^-128); a word that needs more is refused as made up.
    @inlinable static var walkLimit: Int { 8 }

    /// `permute`, walked until the low half is not zero (`TagLayout.splitWithID`).
    @inlinable @inline(__always)
    func permuteNonZeroLow(_ plain: UInt32) -> UInt32 {
        var word = permute(plain)
        var steps = 0
        while word & 0xFFFF == 0 && steps < Self.walkLimit {
            word = permute(word)
            steps += 1
        }
        return word
    }

    /// The inverse of `permuteNonZeroLow`; nil for a word it never produces.
    @inlinable @inline(__always)
    func unpermuteNonZeroLow(_ word: UInt32) -> UInt32? {
        guard word & 0xFFFF != 0 else { return nil }
        var plain = unpermute(word)
        var steps = 0
        while plain & 0xFFFF == 0 {
            guard steps < Self.walkLimit else { return nil }
            plain = unpermute(plain)
            steps += 1
        }
        return plain
    }

    /// The plaintext word of a tag and MAC in `layout`: for `splitWithID` rotated so the TTL (1...255)
    /// sits in the low half, which therefore is never 0.
    @inlinable @inline(__always)
    static func plainWord(_ tag: ProbeTag, mac: UInt64, layout: TagLayout) -> UInt32 {
        let plain = UInt32(tag.slot) << slotShift | UInt32(tag.ttl) << ttlShift
            | UInt32(tag.attempt) << attemptShift | UInt32(truncatingIfNeeded: mac) & macMask
        return layout == .separateID ? plain : plain >> ttlShift | plain << (32 - ttlShift)
    }

    /// What a probe carries: its sequence number and its IPv4 ID.
    public struct Stamp: Sendable, Equatable {
        /// The TCP sequence number.
        public var sequence: UInt32
        /// The IPv4 identification.
        public var ipID: UInt16

        @inlinable public init(sequence: UInt32, ipID: UInt16) {
            self.sequence = sequence
            self.ipID = ipID
        }
    }

    /// The sequence number and IPv4 ID of the probe `tag` of `flow`.
    @inlinable
    public func encode(_ tag: ProbeTag, flow: ProbeFlow) -> Stamp { encode(tag, digest: digest(flow)) }

    /// The sequence number and IPv4 ID of the probe `tag` of the flow whose digest is `digest`.
    @inlinable
    public func encode(_ tag: ProbeTag, digest: UInt64) -> Stamp { encode(tag, digest: digest, layout: .separateID) }

    /// The word and IPv4 ID of the probe `tag` of the flow whose digest is `digest`, laid out for a kind
    /// that carries its word as `layout` says. For `splitWithID` the ID is the word's low half.
    @inlinable
    public func encode(_ tag: ProbeTag, digest: UInt64, layout: TagLayout) -> Stamp {
        let mac = mac(tag, digest: digest)
        let plain = Self.plainWord(tag, mac: mac, layout: layout)
        switch layout {
        case .separateID:
            return Stamp(sequence: permute(plain), ipID: Self.ipID(fromMAC: mac))
        case .splitWithID:
            let word = permuteNonZeroLow(plain)
            return Stamp(sequence: word, ipID: UInt16(truncatingIfNeeded: word))
        }
    }

    /// The tag a sequence number names, and the MAC bits it carries. Every word names some tag (the
    /// permutation is a bijection); only `verify` says whether the word is genuine.
    @inlinable @inline(__always)
    public func identify(_ word: UInt32) -> (tag: ProbeTag, mac: UInt8) { identify(word, layout: .separateID) }

    /// `identify` for a word laid out as `layout`. A `splitWithID` word no probe carries (low half 0)
    /// names TTL 0, which no probe has, so it fails the caller's range check.
    @inlinable @inline(__always)
    public func identify(_ word: UInt32, layout: TagLayout) -> (tag: ProbeTag, mac: UInt8) {
        let plain: UInt32
        switch layout {
        case .separateID:
            plain = unpermute(word)
        case .splitWithID:
            guard let rotated = unpermuteNonZeroLow(word) else {
                return (ProbeTag(uncheckedSlot: 0, ttl: 0, attempt: 0), 0)
            }
            plain = rotated << Self.ttlShift | rotated >> (32 - Self.ttlShift)
        }
        return (ProbeTag(uncheckedSlot: UInt16(truncatingIfNeeded: plain >> Self.slotShift),
            ttl: UInt8(truncatingIfNeeded: plain >> Self.ttlShift),
            attempt: UInt8(truncatingIfNeeded: plain >> Self.attemptShift & 0x7)),
            UInt8(truncatingIfNeeded: plain & Self.macMask))
    }

    /// True when `macBits` (from `identify`) and, for an ICMP quote, the quoted IPv4 ID are exactly
    /// what probe `tag` of `flow` carried.
    @inlinable @inline(__always)
    public func verify(_ tag: ProbeTag, macBits: UInt8, quotedIPID: UInt16?, flow: ProbeFlow) -> Bool {
        check(tag, macBits: macBits, quotedIPID: quotedIPID, flow: flow) == .genuine
    }

    /// `verify` against a flow's digest (`digest(_:)`), as the receive thread has it from the slot table.
    @inlinable @inline(__always)
    public func verify(_ tag: ProbeTag, macBits: UInt8, quotedIPID: UInt16?, digest: UInt64) -> Bool {
        check(tag, macBits: macBits, quotedIPID: quotedIPID, digest: digest) == .genuine
    }

    /// What the keyed check says of a reply.
    public enum Verdict: Sendable, Equatable {
        /// The sequence number's MAC bits and (for a quote) the quoted IPv4 ID are what the probe carried.
        case genuine
        /// The sequence number's MAC bits check out for this flow, but the quoted IPv4 ID is not the one
        /// sent: the path rewrote the ID (a NAT or scrubber), or, 1 time in 128, a made-up quote.
        case ipIDMismatch
        /// The sequence number's MAC bits do not check out.
        case forged
    }

    /// Checks `macBits` (from `identify`) and, for an ICMP quote, the quoted IPv4 ID against probe `tag`
    /// of `flow`, saying which part failed. One MAC computation, no allocation.
    @inlinable @inline(__always)
    public func check(_ tag: ProbeTag, macBits: UInt8, quotedIPID: UInt16?, flow: ProbeFlow) -> Verdict {
        check(tag, macBits: macBits, quotedIPID: quotedIPID, digest: digest(flow))
    }

    /// `check` against a flow's digest, as the receive thread has it from the slot table.
    @inlinable @inline(__always)
    public func check(_ tag: ProbeTag, macBits: UInt8, quotedIPID: UInt16?, digest: UInt64) -> Verdict {
        let mac = mac(tag, digest: digest)
        guard UInt8(truncatingIfNeeded: mac) & UInt8(Self.macMask) == macBits else { return .forged }
        if let quotedIPID, quotedIPID != Self.ipID(fromMAC: mac) { return .ipIDMismatch }
        return .genuine
    }
}

@inlinable @inline(__always)
func rotl(_ x: UInt64, _ b: UInt64) -> UInt64 { (x << b) | (x >> (64 &- b)) }
