// The probe-tag codec: every tag round-trips, distinct tags get distinct words, and words the codec
// did not make (random, other key, tampered) are rejected at the rate the 5-bit check promises.

import Testing
import FastTraceWire

@Suite("Probe tag codec")
struct ProbeTagCodecTests {
    static let codec = ProbeTagCodec(key0: 0xDEAD_BEEF_0BAD_F00D, key1: 0x0123_4567_89AB_CDEF)

    @Test("decode(encode(t)) == t for random tags under many keys")
    func roundTripRandom() {
        var rng = SeededGenerator(seed: 1)
        var failures = 0
        for _ in 0..<200 {
            let codec = ProbeTagCodec(key0: rng.next(), key1: rng.next())
            for _ in 0..<1_000 {
                let tag = ProbeTag.random(using: &rng)
                if codec.decode(codec.encode(tag)) != tag { failures += 1 }
            }
        }
        #expect(failures == 0)
    }

    @Test("round trip at the edges of every field")
    func roundTripEdges() {
        for key in [(UInt64(0), UInt64(0)), (.max, .max), (1, 0), (0, 1)] {
            let codec = ProbeTagCodec(key0: key.0, key1: key.1)
            for slot in [0, 1, ProbeTag.slotCount / 2, ProbeTag.slotCount - 1] {
                for generation in 0..<ProbeTag.generationCount {
                    for ttl in [0, 1, 2, 30, 64, 128, 254, 255] {
                        for attempt in 0..<ProbeTag.attemptCount {
                            let tag = ProbeTag(
                                slot: UInt16(slot), generation: UInt8(generation), ttl: UInt8(ttl),
                                attempt: UInt8(attempt))
                            #expect(codec.decode(codec.encode(tag)) == tag)
                        }
                    }
                }
            }
        }
    }

    @Test("distinct tags map to distinct words (every slot and generation, several TTLs and attempts)")
    func injective() {
        var words: [UInt32] = []
        words.reserveCapacity(ProbeTag.slotCount * ProbeTag.generationCount * 4)
        for slot in 0..<ProbeTag.slotCount {
            for generation in 0..<ProbeTag.generationCount {
                for (ttl, attempt) in [(1, 0), (1, 1), (2, 0), (64, 7)] as [(UInt8, UInt8)] {
                    let tag = ProbeTag(slot: UInt16(slot), generation: UInt8(generation), ttl: ttl, attempt: attempt)
                    words.append(Self.codec.encode(tag))
                }
            }
        }
        words.sort()
        var duplicates = 0
        for i in 1..<words.count where words[i] == words[i - 1] { duplicates += 1 }
        #expect(duplicates == 0)
        #expect(words.count == 262_144)
    }

    @Test("the word does not show the tag: neighbouring tags give unrelated words")
    func diffusion() {
        // Flipping one tag bit should flip about half of the 32 word bits on average.
        var rng = SeededGenerator(seed: 2)
        var flipped = 0
        var trials = 0
        for _ in 0..<2_000 {
            let tag = ProbeTag.random(using: &rng)
            var neighbour = tag
            neighbour.ttl ^= 1
            flipped += (Self.codec.encode(tag) ^ Self.codec.encode(neighbour)).nonzeroBitCount
            trials += 1
        }
        let mean = Double(flipped) / Double(trials)
        #expect(mean > 14 && mean < 18, "mean flipped bits \(mean)")
    }

    @Test("equal keys give equal encodings; different keys and random() differ")
    func keys() {
        let tag = ProbeTag(slot: 77, generation: 2, ttl: 9, attempt: 1)
        let same = ProbeTagCodec(key0: 0xDEAD_BEEF_0BAD_F00D, key1: 0x0123_4567_89AB_CDEF)
        #expect(same.encode(tag) == Self.codec.encode(tag))
        var rng = SeededGenerator(seed: 3)
        let tags = (0..<64).map { _ in ProbeTag.random(using: &rng) }
        let other = ProbeTagCodec(key0: 0xDEAD_BEEF_0BAD_F00D, key1: 0x0123_4567_89AB_CDEE)
        #expect(tags.map(Self.codec.encode) != tags.map(other.encode))
        let r1 = ProbeTagCodec.random(), r2 = ProbeTagCodec.random()
        #expect(tags.map(r1.encode) != tags.map(r2.encode))
    }

    @Test("random words pass the check at about 2^-5")
    func forgeryRate() {
        var rng = SeededGenerator(seed: 4)
        let n = 1_000_000
        var accepted = 0
        for _ in 0..<n where Self.codec.decode(UInt32(truncatingIfNeeded: rng.next())) != nil {
            accepted += 1
        }
        let rate = Double(accepted) / Double(n)
        #expect(rate > 1.0 / 40 && rate < 1.0 / 25, "acceptance rate \(rate)")
    }

    @Test("words made with another key: accepted at about 2^-5, and almost never as the right tag")
    func otherKey() {
        var rng = SeededGenerator(seed: 5)
        let n = 200_000
        var accepted = 0
        var rightTag = 0
        for _ in 0..<n {
            let other = ProbeTagCodec(key0: rng.next(), key1: rng.next())
            let tag = ProbeTag.random(using: &rng)
            if let decoded = Self.codec.decode(other.encode(tag)) {
                accepted += 1
                if decoded == tag { rightTag += 1 }
            }
        }
        let rate = Double(accepted) / Double(n)
        #expect(rate > 1.0 / 40 && rate < 1.0 / 25, "acceptance rate \(rate)")
        #expect(rightTag <= n / 25)
        #expect(rightTag <= 2, "decoded to the right tag \(rightTag) times")
    }

    @Test("tampered words (bit flips) are rejected at least 95% of the time")
    func tampering() {
        var rng = SeededGenerator(seed: 6)
        var rejected = 0
        var trials = 0
        var rejectedPerBit = [Int](repeating: 0, count: 32)
        for _ in 0..<2_000 {
            let tag = ProbeTag.random(using: &rng)
            let word = Self.codec.encode(tag)
            for bit in 0..<32 {  // every single-bit flip
                trials += 1
                if Self.codec.decode(word ^ (1 << UInt32(bit))) == nil { rejected += 1; rejectedPerBit[bit] += 1 }
            }
            for _ in 0..<32 {  // random multi-bit flips
                let mask = UInt32(truncatingIfNeeded: rng.next()) | 1 << UInt32.random(in: 0..<32, using: &rng)
                trials += 1
                if Self.codec.decode(word ^ mask) == nil { rejected += 1 }
            }
        }
        #expect(Double(rejected) / Double(trials) >= 0.95, "rejected \(rejected) of \(trials)")
        // No bit position is a weak spot.
        for bit in 0..<32 {
            #expect(rejectedPerBit[bit] >= 1_850, "bit \(bit): \(rejectedPerBit[bit]) of 2000 rejected")
        }
    }

    @Test("a reply with the right addresses and ports but a tampered sequence number is rejected")
    func tamperedReply() {
        var rng = SeededGenerator(seed: 8)
        let router = IPv4Address(198, 18, 0, 1)
        var rejected = 0
        var trials = 0
        for _ in 0..<2_000 {
            let tag = ProbeTag.random(using: &rng)
            let good = Self.codec.encode(tag)
            let forged = good ^ (1 << UInt32.random(in: 0..<32, using: &rng))
            let probe = write(TCPProbe(
                source: IPv4Address(192, 0, 2, 2), destination: IPv4Address(203, 0, 113, 80), sourcePort: 50_000,
                destinationPort: 443, sequence: forged, ttl: tag.ttl))
            let reply = parse(icmpError(type: 11, code: 0, from: router, quoting: probe))
            #expect(reply?.tagWord == forged)
            trials += 1
            if let word = reply?.tagWord, Self.codec.decode(word) == nil { rejected += 1 }
        }
        #expect(Double(rejected) / Double(trials) >= 0.95, "rejected \(rejected) of \(trials)")
    }
}
