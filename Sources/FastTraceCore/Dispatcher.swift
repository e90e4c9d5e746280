// Correlates replies to probes on the receive thread. A reply names its probe through the tag the
// probe carried (slot, generation, TTL, attempt); the dispatcher checks it against the slot's current
// occupant and writes the result into that probe's preallocated cell with a release store. No lock,
// no search, no allocation: the scheduler finds the result by reading the same cell.

import FastTraceWire
import Synchronization

/// The packed result of one probe, as stored in a result cell.
///
/// Layout (64 bits): `valid:1 | generation:2 | response:5 | rttMicros:24 | responder:32`. `response` is
/// `Response.packedCode`. `generation` is the low two bits of the slot's epoch; the full epoch is in the
/// cell's `details` word.
public struct PackedReply: Sendable, Equatable {
    /// The raw word.
    public var word: UInt64

    @inlinable public init(word: UInt64) { self.word = word }

    /// Packs a reply. (Forced inline, as the next: the optimizer left both a call on the receive path.)
    @inlinable @inline(__always)
    public init(generation: UInt8, outcome: Response, rttMicros: UInt32, responder: IPv4Address) {
        let rtt = UInt64(min(rttMicros, 0xFF_FFFF))
        word = 1 << 63 | UInt64(generation & 3) << 61 | UInt64(outcome.packedCode & 0x1F) << 56 | rtt << 32
            | UInt64(responder.value)
    }

    /// Packs a reply from a responder of either family: an IPv6 responder's 32 bits are 0 here, its
    /// address is in the dispatcher's `responders6` table.
    @inlinable @inline(__always)
    public init(generation: UInt8, outcome: Response, rttMicros: UInt32, responder: IPAddress) {
        self.init(generation: generation, outcome: outcome, rttMicros: rttMicros,
            responder: responder.ipv4 ?? IPv4Address(0))
    }

    /// True when the cell holds a reply.
    @inlinable public var isValid: Bool { word >> 63 == 1 }
    /// The slot generation of the probe this reply answered.
    @inlinable public var generation: UInt8 { UInt8(truncatingIfNeeded: word >> 61) & 3 }
    /// How the probe was answered.
    public var outcome: Response { Response(packedCode: UInt8(truncatingIfNeeded: word >> 56) & 0x1F) }
    /// Round-trip time in microseconds (saturates at 2^24-1 µs ≈ 16.7 s).
    @inlinable public var rttMicros: UInt32 { UInt32(truncatingIfNeeded: word >> 32) & 0xFF_FFFF }
    /// Who answered, for a probe sent over IPv4 (over IPv6: the dispatcher's `responders6`).
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
    /// ICMP errors that pass every check but the quoted IPv4 ID: source and destination, ports, slot,
    /// epoch and the MAC bits in the sequence number are a probe of ours, the ID is not the one it was
    /// sent with. A path that rewrites the ID (a NAT, a scrubber) gives these for every router past it;
    /// a made-up quote lands here 1 time in 128 (the sequence number's 7 MAC bits), the rest as forged.
    public var ipIDRewritten: UInt64 = 0
    /// Genuine replies too late to record: after their probe's wait (`-w`), or naming a slot that is free or
    /// now holds another trace.
    public var stale: UInt64 = 0
    /// Replies to probes never handed to the kernel, or stamped before their probe was sent.
    public var premature: UInt64 = 0
    /// Second replies to a probe already answered.
    public var duplicates: UInt64 = 0
    /// Notifications lost because the scheduler's ring was full (the result is still recorded).
    public var notifyOverflows: UInt64 = 0
    /// Answers from a destination's UDP port that carry nothing naming a probe (a payload no known service
    /// echoes, `--payload-hex`): the port answered, but not which probe it answered, so no hop records
    /// them. One that comes from the destination and port of a trace in flight tells that trace its port
    /// answered (`TraceResult.answerUnmatched`). Not counted as rejected.
    public var unkeyed: UInt64 = 0

    public init() {}

    /// Replies rejected for any reason (malformed, foreign, forged, IP ID rewritten, stale, premature).
    public var rejected: UInt64 { malformed + foreign + forged + ipIDRewritten + stale + premature }

    /// True when router replies came back with the IP ID rewritten on the way, more often than made-up
    /// quotes could explain: at least 1 for every 32 forged replies (a made-up quote passes the sequence
    /// number's 7 MAC bits 1 time in 128, so forgers alone stay well below). `--track-port` is the remedy.
    public var ipIDRewriteSuspected: Bool { ipIDRewritten > 0 && ipIDRewritten * 32 >= forged }
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
    /// The cell of (slot, ttl, attempt). (Forced inline, as the next: the optimizer left a call on the
    /// receive path.)
    @inlinable @inline(__always)
    public func cell(slot: Int, ttl: UInt8, attempt: Int) -> Int {
        cell(slot: slot, ttlIndex: Int(ttl) - Int(firstTTL), attempt: attempt)
    }

    /// The cell of (slot, TTL counted from `firstTTL`, attempt).
    @inlinable @inline(__always)
    public func cell(slot: Int, ttlIndex: Int, attempt: Int) -> Int {
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
    /// Bytes of payload every probe carries (`-l` minus the headers): a RST acknowledges them too.
    public let payloadLength: UInt32
    let codec: ProbeTagCodec
    /// The kind of probe the run sends: it reads every captured packet back.
    let kind: any ProbeKind
    /// The kind's tag layout (read once).
    let tagLayout: ProbeTagCodec.TagLayout
    /// `kind` by its concrete type, for the per-packet calls (`parse`, `alternateTagWord`).
    private let concreteKind: ConcreteKind
    /// The UDP kind, when `concreteKind` is `.udp` (held apart so the enum stays trivial to copy: no
    /// retain and release of the payload bytes per packet).
    private let udpKind: UDPProbeKind

    /// The run's kind by its concrete type, so that `handleReply` is specialized for it: the parser and
    /// the kind's other per-packet code are inlined into the receive path instead of being called
    /// through `any ProbeKind`'s witness table (with the reply returned through memory). A kind
    /// fasttrace does not know by name still works, through the existential.
    private enum ConcreteKind {
        case tcp(TCPProbeKind)
        /// `udpKind`.
        case udp
        case icmp(ICMPProbeKind)
        /// `kind`, through the existential.
        case other

        init(_ kind: any ProbeKind) {
            if let tcp = kind as? TCPProbeKind {
                self = .tcp(tcp)
            } else if kind is UDPProbeKind {
                self = .udp
            } else if let icmp = kind as? ICMPProbeKind {
                self = .icmp(icmp)
            } else {
                self = .other
            }
        }
    }

    /// Every slot's occupant: its flow in both families' width and the digest its MACs are computed
    /// from, handed over by the scheduler and read here under the table's sequence lock. A retired slot
    /// still names its last occupant, so late replies to it are recognised as late.
    public let slots: SlotTable
    /// Per cell: send time in ns on the reply-timestamp clock, 0 while the probe is not in the kernel's
    /// hands (scheduler writes, receiver reads).
    public let sendTimes: AtomicWordTable
    /// Per cell: `PackedReply` (receiver writes with release, scheduler reads with acquire).
    public let results: AtomicWordTable
    /// Per cell: `epoch:16 | quotedTTL:8 | 0:3 | mplsDepth:4 | translated:1 | address:32`: the epoch of the
    /// occupant the result belongs to, the TTL the ICMP error's quote carried (0 for destination
    /// answers), how many MPLS label stack entries its extensions reported (the top two are in `mpls`),
    /// and, when a NAT on the path had rewritten the destination, what the quote named.
    /// Written before the result's release store, so a reader that saw the result sees this or a later
    /// value. A later value can belong to the next reply: readers accept a result only when its own
    /// generation bits (the epoch's low two) and this word's epoch both name their occupant, so a late
    /// write for the previous occupant read beside the new occupant's details is refused
    /// (DispatcherStressTests races exactly that).
    public let details: AtomicWordTable
    /// Per cell: the top two MPLS label stack entries of an ICMP error that carried some (`top:32 |
    /// second:32`), written before the result's release store like `details`. calloc'd: cells no
    /// extension ever reached cost no memory.
    public let mpls: AtomicWordTable
    /// Per cell, two words: an IPv6 responder's address (`high`, `low`), for probes sent over IPv6, whose
    /// responders do not fit the result word. Written before the result's release store like `details`.
    /// calloc'd: a run without IPv6 targets never touches its pages.
    public let responders6: AtomicWordTable
    /// Per cell, two words: the translated IPv6 destination an ICMPv6 quote named (DNAT behind a NAT66),
    /// for cells whose `details` has the translated bit over IPv6. Written before the result's release store
    /// like `details`; calloc'd.
    public let translated6: AtomicWordTable
    /// Words in each per-cell table of one word per cell (`sendTimes`, `results`, `details`, `mpls`): all
    /// four are made this long, so `accept` checks a cell against it once for the four.
    private let cellCount: Int
    /// ICMP quotes are held to the quoted IPv4 ID too (off: `--track-port`).
    let matchQuotedIPID: Bool
    /// ICMP quotes naming another destination are accepted (DNAT; off: `--no-dnat-strict`).
    let acceptTranslatedQuotes: Bool
    /// Replies more than this long after their probe's send (ns) are late: counted stale, not recorded (the
    /// engine's wait).
    let lateAfterNanos: UInt64
    /// Slots with news, for the scheduler.
    public let notifications: SlotNotificationRing
    /// For kinds whose word is split with the IPv4 ID (UDP): per IPv4 ID, 1 + the slot that last sent a
    /// probe with that ID (0: none). A NAT that rewrites the destination also adjusts the UDP checksum,
    /// which holds the word's high half; routers past it quote the adjusted value. The ID, untouched,
    /// names the slot whose destination the NAT rewrote, so the checksum the probe left with can be
    /// recovered (`InternetChecksum.undoingRewrite`) and the word checked as usual. Written by the
    /// scheduler as it sends (relaxed: a stale or overwritten entry only costs that recovery).
    public let slotsByIPID: AtomicWordTable?
    /// For UDP: per hash of (destination, port), 1 + the slot last given a trace to it (`flowBucket`); an
    /// answer that names no probe finds its trace here, checked against the slot's occupant (a collision
    /// overwrites: that trace then learns nothing, never something wrong).
    public let slotsByFlow: AtomicWordTable?
    /// For UDP, per slot: 1 + the epoch of the occupant an answer naming no probe came for (0: none).
    public let unmatchedAnswers: AtomicWordTable?

    private let matchedCount = Atomic<UInt64>(0)
    private let malformedCount = Atomic<UInt64>(0)
    private let foreignCount = Atomic<UInt64>(0)
    private let forgedCount = Atomic<UInt64>(0)
    private let staleCount = Atomic<UInt64>(0)
    private let ipIDRewrittenCount = Atomic<UInt64>(0)
    private let prematureCount = Atomic<UInt64>(0)
    private let duplicateCount = Atomic<UInt64>(0)
    private let overflowCount = Atomic<UInt64>(0)
    private let unkeyedCount = Atomic<UInt64>(0)
    private let watermark = Atomic<UInt64>(0)

    /// Makes the tables for `grid`.
    /// `matchQuotedIPID` and `acceptTranslatedQuotes`: see `EngineConfiguration`. `lateAfterNanos`: the wait, past
    /// which a reply is late (stale).
    public init(grid: ProbeGrid, sourcePort: UInt16, codec: ProbeTagCodec, payloadLength: Int = 0,
        kind: any ProbeKind = TCPProbeKind(flags: .syn), matchQuotedIPID: Bool = true,
        acceptTranslatedQuotes: Bool = true, lateAfterNanos: UInt64 = .max)
    {
        self.lateAfterNanos = lateAfterNanos
        self.kind = kind
        concreteKind = ConcreteKind(kind)
        udpKind = kind as? UDPProbeKind ?? UDPProbeKind(payload: .byPort)
        tagLayout = kind.tagLayout
        self.matchQuotedIPID = matchQuotedIPID
        self.acceptTranslatedQuotes = acceptTranslatedQuotes
        self.grid = grid
        self.sourcePort = sourcePort
        self.codec = codec
        self.payloadLength = UInt32(payloadLength)
        slots = SlotTable(count: grid.slots)
        cellCount = grid.slots * grid.cellsPerSlot
        sendTimes = AtomicWordTable(count: cellCount)
        results = AtomicWordTable(count: cellCount)
        details = AtomicWordTable(count: cellCount)
        mpls = AtomicWordTable(count: cellCount)
        responders6 = AtomicWordTable(count: grid.slots * grid.cellsPerSlot * 2)
        translated6 = AtomicWordTable(count: grid.slots * grid.cellsPerSlot * 2)
        notifications = SlotNotificationRing(capacity: max(1024, grid.slots * 4))
        // (Only UDP's checksum covers the addresses: ICMP's does not, so a NAT leaves ICMP probes' words whole.)
        slotsByIPID = tagLayout == .splitWithID && kind.protocolNumber == IPv4Layout.protocolUDP
            ? AtomicWordTable(count: 1 << 16) : nil
        let udp = kind.protocolNumber == IPv4Layout.protocolUDP
        var buckets = 1024
        while buckets < grid.slots * 2 { buckets <<= 1 }
        slotsByFlow = udp ? AtomicWordTable(count: buckets) : nil
        unmatchedAnswers = udp ? AtomicWordTable(count: grid.slots) : nil
    }

    /// Counters so far.
    public var counters: DispatchCounters {
        var c = DispatchCounters()
        c.matched = matchedCount.load(ordering: .relaxed)
        c.malformed = malformedCount.load(ordering: .relaxed)
        c.foreign = foreignCount.load(ordering: .relaxed)
        c.forged = forgedCount.load(ordering: .relaxed)
        c.stale = staleCount.load(ordering: .relaxed)
        c.ipIDRewritten = ipIDRewrittenCount.load(ordering: .relaxed)
        c.premature = prematureCount.load(ordering: .relaxed)
        c.duplicates = duplicateCount.load(ordering: .relaxed)
        c.notifyOverflows = overflowCount.load(ordering: .relaxed)
        c.unkeyed = unkeyedCount.load(ordering: .relaxed)
        return c
    }

    /// Counts one packet. Every counter has one writer, the receive thread (`handleReply` and what it
    /// calls; nothing else bumps them), so a relaxed load and store is an exact count: no other thread
    /// can add in between. It spares the receive path a locked read-modify-write per packet (on x86 a
    /// full barrier that also waits for the result stores before it). Readers (`counters`) load relaxed,
    /// as before; every access is still atomic, so there is no data race.
    @inline(__always) private func bump(_ counter: borrowing Atomic<UInt64>) {
        counter.store(counter.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
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

    /// Decodes, verifies and records one reply. Runs on the receive thread, one packet at a time (the
    /// counters' one writer: see `bump`).
    public func handleReply(_ packet: UnsafeRawBufferPointer, timestampNanos: UInt64) {
        switch concreteKind {
        case .tcp(let kind): handleReply(packet, timestampNanos: timestampNanos, kind: kind)
        case .udp: handleReply(packet, timestampNanos: timestampNanos, kind: udpKind)
        case .icmp(let kind): handleReply(packet, timestampNanos: timestampNanos, kind: kind)
        case .other: handleReply(packet, timestampNanos: timestampNanos, kind: kind)
        }
    }

    /// `handleReply` for the run's kind, specialized per concrete kind.
    @inline(__always)
    private func handleReply<Kind: ProbeKind>(_ packet: UnsafeRawBufferPointer, timestampNanos: UInt64, kind: Kind) {
        guard let reply = kind.parse(packet) else { return bump(malformedCount) }
        guard reply.sourcePort == sourcePort else { return bump(foreignCount) }
        if reply.unkeyed {
            noteUnmatched(reply)
            return bump(unkeyedCount)
        }
        // Some answers have two readings of their tag word (a RST to a SYN that carried data): the kind's
        // second reading is tried first, quietly; each is held to the MAC.
        if let alternate = kind.alternateTagWord(of: reply, payloadLength: Int(payloadLength)) {
            if accept(reply, word: alternate, at: timestampNanos, countFailure: false) { return }
        }
        if let untranslated = untranslatedWord(reply) {
            if accept(reply, word: untranslated, at: timestampNanos, countFailure: false) { return }
        }
        _ = accept(reply, word: reply.tagWord, at: timestampNanos, countFailure: true)
    }

    /// The bucket of `slotsByFlow` for a destination and port.
    @inline(__always)
    public func flowBucket(_ destination: IPAddress, port: UInt16) -> Int {
        guard let slotsByFlow else { return 0 }
        var h = destination.high &* 0x9E37_79B9_7F4A_7C15 ^ destination.low
        h = (h ^ UInt64(port) &* 0xC2B2_AE3D_27D4_EB4F)
        h = (h ^ (h >> 29)) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: h >> 32) & (slotsByFlow.count - 1)
    }

    /// An answer naming no probe, from the destination and port of a trace in flight: that trace's port
    /// answered.
    @inline(__always)
    private func noteUnmatched(_ reply: ParsedReply) {
        guard let slotsByFlow, let unmatchedAnswers else { return }
        let destination = reply.responder
        let entry = slotsByFlow.loadRelaxed(flowBucket(destination, port: reply.destinationPort))
        guard entry != 0, let occupant = slots.read(Int(entry - 1)), occupant.active,
            occupant.flow.destination == destination, occupant.flow.destinationPort == reply.destinationPort,
            occupant.flow.source == reply.probeSource
        else { return }
        unmatchedAnswers.storeRelaxed(Int(entry - 1), UInt64(occupant.flow.epoch) + 1)
    }

    /// For an ICMP error quoting a UDP probe whose destination a NAT rewrote: the word the probe left
    /// with, its checksum half recovered from the adjustment the NAT made (`slotsByIPID`); nil otherwise.
    @inline(__always)
    private func untranslatedWord(_ reply: ParsedReply) -> UInt32? {
        // The word's low half is what the probe carried as its IPv4 ID (over IPv4 the quoted ID, over IPv6
        // the payload's first two bytes), which `slotsByIPID` was written with; the NAT left it alone.
        guard let slotsByIPID, reply.quotesProbe else { return nil }
        let rewritten = reply.probeDestination
        let entry = slotsByIPID.loadRelaxed(Int(reply.tagWord & 0xFFFF))
        guard entry != 0, let occupant = slots.read(Int(entry - 1)),
            occupant.flow.destination.family == rewritten.family, occupant.flow.destination != rewritten
        else { return nil }
        let checksum = InternetChecksum.undoingRewrite(of: occupant.flow.destination, into: rewritten,
            adjusted: UInt16(truncatingIfNeeded: reply.tagWord >> 16))
        return UInt32(checksum) << 16 | reply.tagWord & 0xFFFF
    }

    /// Verifies `reply` as carrying sequence number `word` and records it. Returns false (counting why,
    /// if `countFailure`) when it fails verification; once verified, the reply is handled (recorded,
    /// or counted as late, premature or a duplicate) and the result is true.
    /// Always inlined (`@inline(always)`, not the `__always` hint, which the optimizer declined for its
    /// three call sites): called, it took the reply through memory, every field stored by `handleReply`
    /// and loaded back here.
    @inline(always)
    private func accept(_ reply: ParsedReply, word: UInt32, at timestampNanos: UInt64, countFailure: Bool) -> Bool {
        let (tag, macBits) = codec.identify(word, layout: tagLayout)
        guard Int(tag.slot) < grid.slots, tag.ttl >= grid.firstTTL, tag.ttl <= grid.maxTTL,
            Int(tag.attempt) < grid.attempts
        else {
            if countFailure { bump(forgedCount) }
            return false
        }
        // The slot's occupant (or, once retired, its last one); nil while the scheduler is handing the
        // slot over right now (stale: it may be a late reply), or when no trace ever took it (forged:
        // nothing was ever sent from it, so no reply can name it).
        guard let occupant = slots.read(Int(tag.slot)) else {
            if countFailure {
                if slots.neverUsed(Int(tag.slot)) { bump(forgedCount) } else { bump(staleCount) }
            }
            return false
        }
        let flow = occupant.flow
        let epoch = flow.epoch
        guard reply.probeSource == flow.source,
            !reply.quotesProbe || reply.probeDestination == flow.destination
                || (acceptTranslatedQuotes && reply.probeDestination.family == flow.destination.family)
        else {
            if countFailure { bump(foreignCount) }
            return false
        }
        // The MAC binds the tag to this occupant's whole flow and epoch: a made-up word, or a late
        // reply to an earlier occupant, fails here (ICMP quotes are also held to the quoted IPv4 ID,
        // unless the path rewrites it: `matchQuotedIPID` off).
        guard reply.destinationPort == flow.destinationPort else {
            if countFailure { bump(forgedCount) }
            return false
        }
        switch codec.check(tag, macBits: macBits,
            quotedIPID: reply.quotesIPID && matchQuotedIPID && tagLayout == .separateID ? reply.quotedIPID : nil,
            digest: occupant.digest)
        {
        case .genuine:
            break
        case .ipIDMismatch:
            // Addresses, ports, slot, epoch and the sequence number's MAC bits all name a probe of ours;
            // only the quoted IPv4 ID differs: the path rewrote it (`--track-port` is the remedy).
            if countFailure { bump(ipIDRewrittenCount) }
            return false
        case .forged:
            if countFailure { bump(forgedCount) }
            return false
        }
        // Genuine, but the trace has finished: a late reply.
        guard occupant.active else {
            bump(staleCount)
            return true
        }

        let outcome = reply.response
        var translated: UInt64 = 0
        if outcome.isICMPError {
            // DNAT: a router behind a NAT that leaves quotes untranslated quotes the rewritten
            // destination. The reply has passed the full MAC for this occupant's own flow, so the
            // address it names is what the NAT did, not a guess.
            if reply.probeDestination != flow.destination {
                if let quoted = reply.probeDestination.ipv4 {
                    translated = 1 << 32 | UInt64(quoted.value)
                } else {
                    translated = 1 << 32
                }
            }
        } else {
            // Destination answers must come from the destination itself.
            guard reply.responder == flow.destination, reply.probeDestination == flow.destination
            else {
                bump(forgedCount)
                return true
            }
        }

        let cell = grid.cell(slot: Int(tag.slot), ttl: tag.ttl, attempt: Int(tag.attempt))
        // The tag passed the grid's range checks, so the cell lies inside every per-cell table; checked once
        // here for all four (SAFETY: each is `cellCount` words long, see `init`), not once per access.
        precondition(cell >= 0 && cell < cellCount)
        let sentWord = sendTimes.unsafeWord(unchecked: cell), resultWord = results.unsafeWord(unchecked: cell)
        let detailsWord = details.unsafeWord(unchecked: cell)
        let sent = sentWord[0].load(ordering: .acquiring)
        // A probe never handed to the kernel cannot have been answered, nor one stamped after its reply.
        guard sent != 0, timestampNanos >= sent else {
            bump(prematureCount)
            return true
        }
        let existing = PackedReply(word: resultWord[0].load(ordering: .relaxed))
        if existing.isValid && detailsWord[0].load(ordering: .relaxed) >> 48 == UInt64(epoch) {
            bump(duplicateCount)
            return true
        }

        let rtt = (timestampNanos - sent) / 1_000
        // Past its probe's wait, the engine will not record it (the probe is `*`, or about to be): a late reply,
        // counted as such even while its trace is still open (before, it was counted matched and no hop showed
        // it). The same test as the engine's, on the same microseconds.
        guard rtt * 1_000 <= lateAfterNanos else {
            bump(staleCount)
            return true
        }
        let packed = PackedReply(generation: UInt8(truncatingIfNeeded: epoch), outcome: outcome,
            rttMicros: UInt32(min(rtt, UInt64(UInt32.max))), responder: reply.responder)
        if reply.responder.family == .v6 {
            responders6.storeAddress(reply.responder, cell: cell)
        }
        if translated != 0 && reply.probeDestination.family == .v6 {
            translated6.storeAddress(reply.probeDestination, cell: cell)
        }
        let depth = reply.mpls.depth
        if depth > 0 {
            mpls.unsafeWord(unchecked: cell)[0].store(UInt64(reply.mpls.top) << 32 | UInt64(reply.mpls.second),
                ordering: .relaxed)
        }
        detailsWord[0].store(UInt64(epoch) << 48 | UInt64(reply.quotedTTL) << 40 | UInt64(depth & 0xF) << 33
            | translated, ordering: .relaxed)
        // Release: whoever loads this result (acquire) sees the words written above.
        resultWord[0].store(packed.word, ordering: .releasing)
        bump(matchedCount)
        if !notifications.push(tag.slot) { bump(overflowCount) }
        return true
    }
}
