// Who occupies each trace slot, shared between the scheduler (which hands slots from trace to trace) and
// the receive thread (which checks every reply against the occupant its tag names). A slot's record
// holds the whole flow in both families' width (addresses as 128 bits), the probe kind's protocol,
// the occupant's epoch and a digest of all of it that the MAC is computed from, so nothing is packed
// into 32-bit words and the receive thread does not hash the flow again for every reply.
//
// The hand-over is a sequence lock over atomic words: the scheduler (the only writer) makes the slot's
// sequence odd, rewrites the record, and makes it even again with a release store; the receive thread
// reads the sequence (acquire), the record, and the sequence again after an acquire fence, and trusts
// the record only when both reads are the same even number. A torn read (the scheduler mid-way) is
// refused, never half-believed: the reply is counted as stale, as a reply racing a hand-over always
// was. Every word is an `Atomic`, so the race is defined behaviour (and ThreadSanitizer agrees).

import FastTraceWire
import Synchronization

/// The flow of one slot occupant, as its probes carry it.
public struct SlotFlow: Sendable, Equatable {
    /// The occupant's flow (addresses, ports, protocol, epoch).
    public var flow: ProbeFlow
    /// `ProbeTagCodec.digest(flow)`: what every MAC of this occupant is computed from.
    public var digest: UInt64
    /// False once the trace has finished: the record still names its last occupant, so a late reply to
    /// it is recognised as late rather than as forged.
    public var active: Bool

    @inlinable public init(flow: ProbeFlow, digest: UInt64, active: Bool) {
        self.flow = flow
        self.digest = digest
        self.active = active
    }
}

/// Every slot's occupant, published by the scheduler and read by the receive thread (see the file's
/// comment for the protocol). Fixed size; allocated once per run.
public final class SlotTable: @unchecked Sendable {
    // @unchecked Sendable: every word is an `Atomic` in `AtomicWordTable`; one thread writes (the
    // scheduler), the sequence words order what the other threads read.

    /// Words per slot: sequence, source high/low, destination high/low, ports|protocol|epoch, digest.
    @usableFromInline static let stride = 7
    @usableFromInline let words: AtomicWordTable
    /// Number of slots.
    public let count: Int

    /// A table of `count` empty slots.
    public init(count: Int) {
        precondition(count > 0)
        self.count = count
        words = AtomicWordTable(count: count * Self.stride)
    }

    /// Scheduler side: `flow` takes slot `slot` (active), replacing whoever was there.
    public func publish(_ slot: Int, flow: ProbeFlow, digest: UInt64) {
        write(slot, SlotFlow(flow: flow, digest: digest, active: true))
    }

    /// Scheduler side: the slot's trace has finished. The record keeps naming it, inactive.
    public func retire(_ slot: Int) {
        guard var record = readOwn(slot) else { return }
        record.active = false
        write(slot, record)
    }

    /// Receive side: the slot's occupant, or nil when the slot was never used or is being handed over
    /// right now (a reply racing the hand-over: the caller counts it as stale).
    @inlinable @inline(__always) public func read(_ slot: Int) -> SlotFlow? {
        // SAFETY: `unsafeWords` checks that the slot's whole record lies inside the table.
        let record = words.unsafeWords(from: slot * Self.stride, count: Self.stride)
        let before = record[0].load(ordering: .acquiring)
        guard before & 1 == 0, before != 0 else { return nil }
        let flow = Self.decode(record)
        atomicMemoryFence(ordering: .acquiring)
        guard record[0].load(ordering: .relaxed) == before else { return nil }
        return flow
    }

    /// Receive side: true when no trace ever took the slot (its sequence word is still 0). A reply that
    /// names such a slot cannot be a late one: nothing was ever sent from it.
    @inlinable public func neverUsed(_ slot: Int) -> Bool { words.load(slot * Self.stride) == 0 }

    /// The scheduler's own view of its record (it is the only writer, so no retry is needed).
    func readOwn(_ slot: Int) -> SlotFlow? {
        // SAFETY: `unsafeWords` checks that the slot's whole record lies inside the table.
        let record = words.unsafeWords(from: slot * Self.stride, count: Self.stride)
        guard record[0].load(ordering: .relaxed) != 0 else { return nil }
        return Self.decode(record)
    }

    /// The record in the 7 words at `record` (sequence word first), each read relaxed.
    @inlinable @inline(__always)
    static func decode(_ record: UnsafeMutablePointer<Atomic<UInt64>>) -> SlotFlow {
        let source = IPAddress(high: record[1].load(ordering: .relaxed), low: record[2].load(ordering: .relaxed))
        let destination = IPAddress(high: record[3].load(ordering: .relaxed), low: record[4].load(ordering: .relaxed))
        let packed = record[5].load(ordering: .relaxed)
        let flow = ProbeFlow(source: source, destination: destination,
            sourcePort: UInt16(truncatingIfNeeded: packed >> 48), destinationPort: UInt16(truncatingIfNeeded: packed >> 32),
            protocolNumber: UInt8(truncatingIfNeeded: packed >> 24), epoch: UInt16(truncatingIfNeeded: packed))
        return SlotFlow(flow: flow, digest: record[6].load(ordering: .relaxed), active: packed >> 16 & 1 == 1)
    }

    private func write(_ slot: Int, _ record: SlotFlow) {
        let base = slot * Self.stride
        let sequence = words.loadRelaxed(base)
        // Odd while the record changes; the release fence keeps the record's stores after it.
        words.storeRelaxed(base, sequence | 1)
        atomicMemoryFence(ordering: .releasing)
        let flow = record.flow
        words.storeRelaxed(base + 1, flow.source.high)
        words.storeRelaxed(base + 2, flow.source.low)
        words.storeRelaxed(base + 3, flow.destination.high)
        words.storeRelaxed(base + 4, flow.destination.low)
        words.storeRelaxed(base + 5, UInt64(flow.sourcePort) << 48 | UInt64(flow.destinationPort) << 32
            | UInt64(flow.protocolNumber) << 24 | (record.active ? 1 << 16 : 0) | UInt64(flow.epoch))
        words.storeRelaxed(base + 6, record.digest)
        // Even again, and never 0 (0 marks a slot never used).
        words.store(base, (sequence | 1) &+ 1)
    }
}
