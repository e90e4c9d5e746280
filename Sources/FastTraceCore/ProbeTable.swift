// The probe table: what a probe is to the scheduler and how it is found. Every try of every column at
// every TTL of every slot has one cell (`ProbeGrid`); the scheduler keeps a status byte per cell, the
// receive thread writes the reply words beside it (the dispatcher's `results` and `details`). A slot is
// lent to one trace at a time (its occupant, named by an epoch), from a pool that rests each freed slot
// before lending it again. The queues of timeouts, retries and re-asks hold entries that name one probe
// by slot, epoch and cell; `holds` says whether an entry still names a probe that waits on it.
//
// Nothing here decides anything about a trace (that is `TraceState`) or when to send (`TraceEngine`).

import FastTraceWire

/// Where one try stands, as the scheduler sees it. A cell is one try: attempt `column + samples × try`.
enum ProbeStatus: UInt8 {
    /// Not sent (yet).
    case unsent
    /// Sent, neither answered nor timed out.
    case sent
    /// Answered (a reply was taken in by `TraceState.ingest`).
    case answered
    /// Its wait ran out without an answer.
    case timedOut
    /// A retry of a timed-out try, queued to go.
    case retryQueued
    /// A re-ask of a silent hop, queued for later.
    case reaskQueued
    /// A re-ask settled unsent (the hop was answered meanwhile, or the evidence no longer asks for it).
    case reaskSkipped
    /// A re-ask held unsent over its position's budget, settled at its deadline.
    case reaskHeld
    /// The transport consumed the try, but the kernel refused to send it (it never left the host).
    case refused

    /// A try in flight or queued to go: sent and not yet answered or timed out, or a retry or re-ask
    /// waiting its turn (or held over its position's budget).
    @inline(__always) var isWaiting: Bool {
        self == .sent || self == .retryQueued || self == .reaskQueued || self == .reaskHeld
    }
}

/// One column of a hop: answered by any of its tries, silent once its last try timed out (or no
/// further try was queued), pending otherwise.
enum ColumnState { case pending, answered, silent }

/// Who holds a slot, as the scheduler sees it (the receive thread's copy is `SlotTable`'s).
struct SlotOccupant {
    var active = false
    /// Names the occupant: replies, timeouts and queued tries of an earlier occupant carry another.
    var epoch: UInt16 = 0
    /// The occupant's flow digest (`ProbeTagCodec.digest`), as published in the slot table: every
    /// probe's MAC is computed from it.
    var digest: UInt64 = 0
    /// The occupant's flow, as published: what every probe of it carries.
    var flow = ProbeFlow(source: IPv4Address.any, destination: IPv4Address.any, sourcePort: 0, destinationPort: 0,
        epoch: 0)
}

/// A probe's deadline on both clocks: the monotonic one paces the scheduler; the reply-timestamp
/// one is compared with the receive watermark. It names exactly one probe (slot, epoch, cell).
struct ProbeTimeout {
    var deadline: UInt64
    var stampDeadline: UInt64
    var slot: Int32
    var epoch: UInt16
    var cell: Int32
}

/// A queued retry or re-ask; it names its trace by slot and epoch, so once that trace is gone it is
/// a no-op.
struct ProbeRetry {
    var slot: Int32
    var epoch: UInt16
    var ttlIndex: Int32
    var attempt: Int32
    var due: UInt64 = 0
}

/// Every probe cell of every slot, the slots' occupants and the pool they are lent from. Scheduler-only,
/// except the reply words it reads (written by the receive thread, published with a release store).
struct ProbeTable {
    /// The table's shape.
    let grid: ProbeGrid
    /// Columns per hop (`-q`).
    let samples: Int
    /// Tries per column that are immediate retries (1 + `--retries`); the tries after them are re-asks.
    let immediateTries: Int
    /// Per cell: where the try stands.
    var status: [ProbeStatus]
    /// Per cell: the reply the receive thread recorded (`PackedReply`), and its details word (see
    /// `Dispatcher.details`); shared with the dispatcher.
    let results: AtomicWordTable
    let details: AtomicWordTable
    /// Per cell: the send stamp (reply-timestamp clock), 0 while the probe is not in the kernel's hands.
    let sendTimes: AtomicWordTable
    /// Per slot: who holds it.
    var occupants: [SlotOccupant]
    /// Free slots, each lent again only after its rest.
    var pool: SlotPool

    /// A table over the reply words of `results`, `details` and `sendTimes` (the dispatcher's, or a
    /// test's), every slot free and every cell unsent.
    init(grid: ProbeGrid, samples: Int, immediateTries: Int, results: AtomicWordTable, details: AtomicWordTable,
        sendTimes: AtomicWordTable, quarantineNanos: UInt64)
    {
        precondition(samples >= 1 && samples * immediateTries <= grid.attempts)
        self.grid = grid
        self.samples = samples
        self.immediateTries = immediateTries
        self.results = results
        self.details = details
        self.sendTimes = sendTimes
        status = Array(repeating: .unsent, count: grid.slots * grid.cellsPerSlot)
        occupants = Array(repeating: SlotOccupant(), count: grid.slots)
        pool = SlotPool(slots: grid.slots, quarantineNanos: quarantineNanos)
    }

    // MARK: cells

    /// The first cell of a TTL's row (attempt 0).
    @inline(__always) func row(slot: Int, ttlIndex: Int) -> Int { grid.cell(slot: slot, ttlIndex: ttlIndex, attempt: 0) }

    /// The TTL index and attempt of a cell of `slot`.
    @inline(__always) func coordinates(of cell: Int, slot: Int) -> (ttlIndex: Int, attempt: Int) {
        let offset = cell - slot * grid.cellsPerSlot
        return (offset / grid.attempts, offset % grid.attempts)
    }

    /// The reply recorded in `cell` (acquire: its details and responder words are visible with it).
    @inline(__always) func reply(_ cell: Int) -> PackedReply { PackedReply(word: results.load(cell)) }

    /// The reply recorded in `cell` for the occupant of epoch `epoch`, or nil: none, or one left from an
    /// earlier occupant (the receive thread may still be writing for the previous one, so both the
    /// result's own generation bits and the details word's epoch must name this one).
    @inline(__always) func reply(_ cell: Int, epoch: UInt16) -> PackedReply? {
        let reply = reply(cell)
        guard reply.isValid, reply.generation == UInt8(truncatingIfNeeded: epoch) & 3,
            details.loadRelaxed(cell) >> 48 == UInt64(epoch)
        else { return nil }
        return reply
    }

    /// The TTL an ICMP error in `cell` quoted: what its probe had left when it reached the router (0 for
    /// a destination's own answer).
    @inline(__always) func quotedTTL(_ cell: Int) -> Int { Int(details.loadRelaxed(cell) >> 40 & 0xFF) }

    /// True when some try at this TTL has been answered.
    func answered(slot: Int, ttlIndex: Int) -> Bool {
        let row = row(slot: slot, ttlIndex: ttlIndex)
        for attempt in 0..<grid.attempts where status[row + attempt] == .answered { return true }
        return false
    }

    /// True when the kernel refused some try at this TTL.
    func refused(slot: Int, ttlIndex: Int) -> Bool {
        let row = row(slot: slot, ttlIndex: ttlIndex)
        for attempt in 0..<grid.attempts where status[row + attempt] == .refused { return true }
        return false
    }

    /// True when some try at this TTL was ever sent, queued or refused (anything but unsent).
    func tried(slot: Int, ttlIndex: Int) -> Bool {
        let row = row(slot: slot, ttlIndex: ttlIndex)
        for attempt in 0..<grid.attempts where status[row + attempt] != .unsent { return true }
        return false
    }

    /// True when some try at these TTLs of the slot is in flight or queued.
    func waiting(slot: Int, ttlIndexes: ClosedRange<Int>) -> Bool {
        for ttlIndex in ttlIndexes {
            let row = row(slot: slot, ttlIndex: ttlIndex)
            for attempt in 0..<grid.attempts where status[row + attempt].isWaiting { return true }
        }
        return false
    }

    /// One column of a hop (see `ColumnState`).
    func columnState(row: Int, column: Int) -> ColumnState {
        var attempt = column
        while attempt < grid.attempts {
            switch status[row + attempt] {
            case .answered: return .answered
            case let s where s.isWaiting: return .pending
            case .unsent: return attempt == column ? .pending : .silent
            default: attempt += samples  // timed out or skipped: look at the next try
            }
        }
        return .silent
    }

    // MARK: occupants

    /// True while `slot` holds the occupant named `epoch`.
    @inline(__always) func isCurrent(slot: Int, epoch: UInt16) -> Bool {
        occupants[slot].active && occupants[slot].epoch == epoch
    }

    /// True while a queued entry (timeout, retry, re-ask) still names a probe that waits on it: its slot
    /// holds the same occupant and the cell is still in the state the entry was queued in.
    @inline(__always) func holds(slot: Int, epoch: UInt16, cell: Int, _ expected: ProbeStatus) -> Bool {
        isCurrent(slot: slot, epoch: epoch) && status[cell] == expected
    }

    /// When the next slot is free to lend, if any is resting or free (see `SlotPool.nextAvailable`).
    var nextAvailable: UInt64? { pool.nextAvailable }

    /// Lends a rested slot to a new occupant: the next epoch, every cell unsent and its reply words and
    /// send stamps cleared. The caller publishes the flow (`occupants[slot].flow` and `.digest`, and the
    /// dispatcher's slot table) before any probe of it goes out. nil when no slot has rested enough.
    mutating func occupy(now: UInt64) -> Int? {
        guard let slot = pool.take(now: now) else { return nil }
        let epoch = (occupants[slot].epoch &+ 1) & UInt16(ProbeFlow.epochCount - 1)
        let base = slot * grid.cellsPerSlot
        for cell in base..<(base + grid.cellsPerSlot) {
            status[cell] = .unsent
            results.storeRelaxed(cell, 0)
            sendTimes.storeRelaxed(cell, 0)
        }
        occupants[slot] = SlotOccupant(active: true, epoch: epoch)
        return slot
    }

    /// The slot's occupant is done: it rests in the pool from `now` (its record keeps its epoch, so
    /// entries still queued for it are recognised as stale).
    mutating func release(_ slot: Int, now: UInt64) {
        occupants[slot].active = false
        pool.give(slot, now: now)
    }
}
