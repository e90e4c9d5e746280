// Correlates replies to probes on the receive thread. A reply names its probe through the tag the
// probe carried (slot, generation, TTL, attempt); the dispatcher checks it against the slot's current
// occupant and writes the result into that probe's preallocated cell with a release store. No lock,
// no search, no allocation: the scheduler finds the result by reading the same cell.

import FastTraceWire
import Synchronization

/// The packed result of one probe, as stored in a result cell.
///
/// Layout (64 bits): `valid:1 | generation:2 | kind:5 | rttMicros:24 | responder:32`. `kind` is
/// 1 time exceeded, 2 SYN-ACK, 3 RST, 4+code destination unreachable (code 0...15).
public struct PackedReply: Sendable, Equatable {
    /// The raw word.
    public var word: UInt64

    @inlinable public init(word: UInt64) { self.word = word }

    /// Packs a reply.
    @inlinable public init(generation: UInt8, outcome: ProbeOutcome, rttMicros: UInt32, responder: IPv4Address) {
        let kind: UInt64
        switch outcome {
        case .none: kind = 0
        case .timeExceeded: kind = 1
        case .synAck: kind = 2
        case .reset: kind = 3
        case .unreachable(let code): kind = 4 + UInt64(code & 0x0F)
        }
        let rtt = UInt64(min(rttMicros, 0xFF_FFFF))
        word = 1 << 63 | UInt64(generation & 3) << 61 | kind << 56 | rtt << 32 | UInt64(responder.value)
    }

    /// True when the cell holds a reply.
    @inlinable public var isValid: Bool { word >> 63 == 1 }
    /// The slot generation of the probe this reply answered.
    @inlinable public var generation: UInt8 { UInt8(truncatingIfNeeded: word >> 61) & 3 }
    /// How the probe was answered.
    public var outcome: ProbeOutcome {
        switch (word >> 56) & 0x1F {
        case 1: .timeExceeded
        case 2: .synAck
        case 3: .reset
        case let k where k >= 4: .unreachable(code: UInt8(k - 4))
        default: .none
        }
    }
    /// Round-trip time in microseconds (saturates at 2^24-1 µs ≈ 16.7 s).
    @inlinable public var rttMicros: UInt32 { UInt32(truncatingIfNeeded: word >> 32) & 0xFF_FFFF }
    /// Who answered.
    @inlinable public var responder: IPv4Address { IPv4Address(UInt32(truncatingIfNeeded: word)) }
}

/// What the receive path counted. Read at any time (relaxed); exact after the transport stopped.
public struct DispatchCounters: Sendable, Equatable {
    /// Replies matched to a probe and recorded.
    public var matched: UInt64 = 0
    /// Packets that were not well-formed replies to a TCP probe.
    public var malformed: UInt64 = 0
    /// Replies for another source port or source address: someone else's traffic.
    public var foreign: UInt64 = 0
    /// Replies whose tag failed the keyed check or named a TTL/attempt never sent: forged or corrupt.
    public var forged: UInt64 = 0
    /// Replies naming a slot that is free or now holds another trace (late or stray replies).
    public var stale: UInt64 = 0
    /// Second replies to a probe already answered.
    public var duplicates: UInt64 = 0
    /// Notifications lost because the scheduler's ring was full (the result is still recorded).
    public var notifyOverflows: UInt64 = 0

    public init() {}

    /// Replies rejected for any reason (malformed, foreign, forged, stale).
    public var rejected: UInt64 { malformed + foreign + forged + stale }
}

/// The shape of the probe table: which TTLs and attempts each slot has cells for.
public struct ProbeGrid: Sendable, Equatable {
    /// First TTL probed.
    public let firstTTL: UInt8
    /// Last TTL probed.
    public let maxTTL: UInt8
    /// Attempts per TTL.
    public let attempts: Int
    /// Slots (traces in flight).
    public let slots: Int

    public init(firstTTL: UInt8, maxTTL: UInt8, attempts: Int, slots: Int) {
        precondition(firstTTL >= 1 && maxTTL >= firstTTL)
        precondition(attempts >= 1 && attempts <= ProbeTag.attemptCount)
        precondition(slots >= 1 && slots <= ProbeTag.slotCount)
        self.firstTTL = firstTTL
        self.maxTTL = maxTTL
        self.attempts = attempts
        self.slots = slots
    }

    /// TTLs per trace.
    @inlinable public var ttlCount: Int { Int(maxTTL) - Int(firstTTL) + 1 }
    /// Cells per slot.
    @inlinable public var cellsPerSlot: Int { ttlCount * attempts }
    /// The cell of (slot, ttl, attempt).
    @inlinable public func cell(slot: Int, ttl: UInt8, attempt: Int) -> Int {
        cell(slot: slot, ttlIndex: Int(ttl) - Int(firstTTL), attempt: attempt)
    }

    /// The cell of (slot, TTL counted from `firstTTL`, attempt).
    @inlinable public func cell(slot: Int, ttlIndex: Int, attempt: Int) -> Int {
        slot * cellsPerSlot + ttlIndex * attempts + attempt
    }
}

/// The receive-side half of the engine. One instance per run; `handleReply` runs on the transport's
/// receive thread, everything else reads what it wrote.
public final class Dispatcher: ReplySink, @unchecked Sendable {
    // @unchecked Sendable: all mutable state is atomics (tables, counters) or the SPSC ring; the
    // configuration is immutable.

    /// The probe table's shape.
    public let grid: ProbeGrid
    /// Source port every probe of this run carries.
    public let sourcePort: UInt16
    let codec: ProbeTagCodec

    /// Per slot: `active:1 | generation:2 | port:16 | destination:32` (see `slotWord`). Written by
    /// the scheduler when a trace takes or leaves a slot, read by the receive thread.
    public let slotWords: AtomicWordTable
    /// Per cell: send time in ns (scheduler writes before sending, receiver reads).
    public let sendTimes: AtomicWordTable
    /// Per cell: `PackedReply` (receiver writes with release, scheduler reads with acquire).
    public let results: AtomicWordTable
    /// Per cell: the destination the reply's quote named when a NAT on the path had rewritten it
    /// (`1 << 32 | address`), else 0. Written before the result's release store, so a reader that saw
    /// the result sees this too.
    public let translations: AtomicWordTable
    /// Slots with news, for the scheduler.
    public let notifications: SlotNotificationRing

    private let matchedCount = Atomic<UInt64>(0)
    private let malformedCount = Atomic<UInt64>(0)
    private let foreignCount = Atomic<UInt64>(0)
    private let forgedCount = Atomic<UInt64>(0)
    private let staleCount = Atomic<UInt64>(0)
    private let duplicateCount = Atomic<UInt64>(0)
    private let overflowCount = Atomic<UInt64>(0)
    private let watermark = Atomic<UInt64>(0)

    /// Makes the tables for `grid`.
    public init(grid: ProbeGrid, sourcePort: UInt16, codec: ProbeTagCodec) {
        self.grid = grid
        self.sourcePort = sourcePort
        self.codec = codec
        slotWords = AtomicWordTable(count: grid.slots)
        sendTimes = AtomicWordTable(count: grid.slots * grid.cellsPerSlot)
        results = AtomicWordTable(count: grid.slots * grid.cellsPerSlot)
        translations = AtomicWordTable(count: grid.slots * grid.cellsPerSlot)
        notifications = SlotNotificationRing(capacity: max(1024, grid.slots * 4))
    }

    /// The slot word for an active trace.
    @inlinable public static func slotWord(generation: UInt8, destination: IPv4Address, port: UInt16) -> UInt64 {
        1 << 63 | UInt64(generation & 3) << 48 | UInt64(port) << 32 | UInt64(destination.value)
    }

    /// Counters so far.
    public var counters: DispatchCounters {
        var c = DispatchCounters()
        c.matched = matchedCount.load(ordering: .relaxed)
        c.malformed = malformedCount.load(ordering: .relaxed)
        c.foreign = foreignCount.load(ordering: .relaxed)
        c.forged = forgedCount.load(ordering: .relaxed)
        c.stale = staleCount.load(ordering: .relaxed)
        c.duplicates = duplicateCount.load(ordering: .relaxed)
        c.notifyOverflows = overflowCount.load(ordering: .relaxed)
        return c
    }

    @inline(__always) private func bump(_ counter: borrowing Atomic<UInt64>) {
        counter.wrappingAdd(1, ordering: .relaxed)
    }

    /// Records how far the receive path has caught up (see `ReplySink.receivedThrough`).
    public func receivedThrough(_ timestampNanos: UInt64) {
        // One writer (the receive thread): a plain max is enough.
        if timestampNanos > watermark.load(ordering: .relaxed) {
            watermark.store(timestampNanos, ordering: .releasing)
        }
    }

    /// Every reply stamped before this time has been recorded.
    public var receivedThroughNanos: UInt64 { watermark.load(ordering: .acquiring) }

    /// Decodes, validates and records one reply. Runs on the receive thread.
    public func handleReply(_ packet: UnsafeRawBufferPointer, timestampNanos: UInt64) {
        guard let reply = ReplyParser.parse(packet) else { return bump(malformedCount) }
        guard reply.sourcePort == sourcePort else { return bump(foreignCount) }
        guard let tag = codec.decode(reply.tagWord) else { return bump(forgedCount) }
        guard Int(tag.slot) < grid.slots, tag.ttl >= grid.firstTTL, tag.ttl <= grid.maxTTL,
            Int(tag.attempt) < grid.attempts
        else { return bump(forgedCount) }

        // The slot must still hold the trace this probe belonged to: same generation, and the reply
        // must concern that trace's destination and port (a forger must know both).
        let slotWord = slotWords.load(Int(tag.slot))
        let expected = Self.slotWord(generation: tag.generation, destination: reply.probeDestination,
            port: reply.destinationPort)
        var translated: UInt64 = 0
        if slotWord != expected {
            // DNAT: a router behind a NAT that does not rewrite quoted headers quotes the translated
            // destination. Accept an ICMP error whose quote matches in everything but that address
            // (keyed tag, slot, generation, port) and remember where the NAT sent the probe.
            guard reply.kind == .timeExceeded || reply.kind == .unreachable, slotWord >> 63 == 1,
                slotWord >> 32 == expected >> 32
            else { return bump(staleCount) }
            translated = 1 << 32 | UInt64(reply.probeDestination.value)
        }

        // Destination answers must come from the destination itself.
        let outcome: ProbeOutcome
        switch reply.kind {
        case .timeExceeded: outcome = .timeExceeded
        case .unreachable: outcome = .unreachable(code: reply.icmpCode)
        case .synAck, .reset:
            guard reply.responder == reply.probeDestination else { return bump(forgedCount) }
            outcome = reply.kind == .synAck ? .synAck : .reset
        }

        let cell = grid.cell(slot: Int(tag.slot), ttl: tag.ttl, attempt: Int(tag.attempt))
        let sent = sendTimes.load(cell)
        guard sent != 0 else { return bump(forgedCount) }  // a tag for a probe not (yet) sent
        let existing = PackedReply(word: results.loadRelaxed(cell))
        if existing.isValid && existing.generation == tag.generation { return bump(duplicateCount) }

        let rtt = timestampNanos > sent ? (timestampNanos - sent) / 1_000 : 0
        let packed = PackedReply(generation: tag.generation, outcome: outcome,
            rttMicros: UInt32(min(rtt, UInt64(UInt32.max))), responder: reply.responder)
        translations.storeRelaxed(cell, translated)
        results.store(cell, packed.word)
        bump(matchedCount)
        if !notifications.push(tag.slot) { bump(overflowCount) }
    }
}
