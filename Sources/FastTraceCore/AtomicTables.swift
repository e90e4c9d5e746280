// Lock-free storage shared between the receive thread and the scheduler: a fixed heap table of
// atomic 64-bit words, and a single-producer/single-consumer ring of slot numbers. Both are
// allocated once per run; nothing here allocates afterwards.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import FastTraceWire
import Synchronization

/// A fixed-size table of `Atomic<UInt64>` on the heap. `Atomic` is non-copyable, so it cannot live in
/// an `Array`; the table owns the memory and frees it in `deinit`.
public final class AtomicWordTable: @unchecked Sendable {
    // @unchecked Sendable: every element is an `Atomic`, so concurrent access is safe by construction;
    // the pointer itself never changes after `init`.
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
    /// Number of words.
    public let count: Int

    /// Allocates `count` words, all zero. The memory comes zeroed from `calloc`, which for a table of
    /// this size maps fresh pages that take no memory until first written: a run pays for the slots it
    /// uses, not for every slot `--max-in-flight` allows (a single trace touches one slot's cells).
    public init(count: Int) {
        precondition(count > 0)
        self.count = count
        let stride = MemoryLayout<Atomic<UInt64>>.stride
        guard let raw = calloc(count, stride) else { fatalError("out of memory for \(count) atomic words") }
        // SAFETY: `Atomic<UInt64>` is a plain 64-bit word (size and stride 8, no destructor), and the
        // all-zero bit pattern is `Atomic<UInt64>(0)`: zeroed memory is a valid initialised table.
        precondition(stride == 8 && MemoryLayout<Atomic<UInt64>>.size == 8)
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: count)
    }

    deinit {
        // SAFETY: the words need no deinitialisation (see `init`); the memory came from `calloc`.
        free(words)
    }

    /// Loads word `index` with acquire ordering (pairs with `store`).
    @inlinable public func load(_ index: Int) -> UInt64 {
        precondition(index >= 0 && index < count)
        return words[index].load(ordering: .acquiring)
    }

    /// Loads word `index` with no ordering (counters, a writer reading its own words).
    @inlinable public func loadRelaxed(_ index: Int) -> UInt64 {
        precondition(index >= 0 && index < count)
        return words[index].load(ordering: .relaxed)
    }

    /// Stores `value` into word `index` with release ordering: what was written before is visible
    /// to a thread that `load`s this value.
    /// The `span` words from `index` on, their bounds checked once here: a record of several words (the
    /// slot table's) is then read through the pointer without a check per word. Valid while the table is.
    @inlinable @inline(__always)
    public func unsafeWords(from index: Int, count span: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        precondition(index >= 0 && span >= 0 && index <= count - span)
        return words + index
    }

    /// Word `index` itself, its bounds not checked here: for a caller that has checked `index < count`
    /// once for several tables it knows to be as long (the dispatcher's per-cell tables). Valid while the
    /// table is.
    @inlinable @inline(__always)
    public func unsafeWord(unchecked index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        words + index
    }

    @inlinable public func store(_ index: Int, _ value: UInt64) {
        precondition(index >= 0 && index < count)
        words[index].store(value, ordering: .releasing)
    }

    /// Stores `value` into word `index` with no ordering.
    @inlinable public func storeRelaxed(_ index: Int, _ value: UInt64) {
        precondition(index >= 0 && index < count)
        words[index].store(value, ordering: .relaxed)
    }
}

extension AtomicWordTable {
    /// Stores `address` as cell `cell`'s two words (a table of two words per cell, as the dispatcher's
    /// IPv6 responder and translated-destination tables are), with no ordering: the cell's result word
    /// is stored after it with a release store.
    @inlinable public func storeAddress(_ address: IPAddress, cell: Int) {
        storeRelaxed(cell * 2, address.high)
        storeRelaxed(cell * 2 + 1, address.low)
    }

    /// Cell `cell`'s address, as `storeAddress` wrote it.
    @inlinable public func loadAddress(cell: Int) -> IPAddress {
        IPAddress(high: loadRelaxed(cell * 2), low: loadRelaxed(cell * 2 + 1))
    }
}

/// A bounded single-producer/single-consumer queue of 16-bit slot numbers: the receive thread says
/// "slot N has news", the scheduler drains it. When full, `push` fails and the producer counts it;
/// the scheduler still finds the news when the probe's timeout comes due, only later.
public final class SlotNotificationRing: @unchecked Sendable {
    // @unchecked Sendable: one producer thread writes `tail` and the slots it owns, one consumer thread
    // writes `head`; the release/acquire pairs on head and tail order the slot contents.
    private let buffer: UnsafeMutablePointer<UInt16>
    private let mask: Int
    private let head = Atomic<Int>(0)  // next index to read (consumer-owned)
    private let tail = Atomic<Int>(0)  // next index to write (producer-owned)

    /// Makes a ring holding up to `capacity` (rounded up to a power of two) entries.
    public init(capacity: Int) {
        var size = 1
        while size < capacity { size <<= 1 }
        mask = size - 1
        buffer = .allocate(capacity: size)
        buffer.initialize(repeating: 0, count: size)
    }

    deinit { buffer.deallocate() }

    /// Producer side. Returns false when the ring is full.
    @inlinable @inline(__always)
    public func push(_ slot: UInt16) -> Bool { pushImpl(slot) }

    /// (Forced inline in this module: the optimizer left the dispatcher a call per reply.)
    @usableFromInline @inline(__always)
    func pushImpl(_ slot: UInt16) -> Bool {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        if t - h > mask { return false }
        buffer[t & mask] = slot
        tail.store(t + 1, ordering: .releasing)
        return true
    }

    /// Consumer side: calls `body` for every queued entry, oldest first.
    public func drain(_ body: (UInt16) -> Void) {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        var i = h
        while i != t {
            body(buffer[i & mask])
            i += 1
        }
        head.store(t, ordering: .releasing)
    }
}
