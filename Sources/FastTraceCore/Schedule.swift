// Continuous mode (`--interval`): the list traced again and again on a schedule. Each target × port has a
// fixed phase within the interval, so the list's rounds are spread evenly over it instead of starting
// together (a list of 200 targets never reaches a router as one burst, network_exporter #64); its round k
// is due at start + phase + k · interval. A round starts only after the previous round of the same target
// × port finished (one flow, one trace at a time); a round that overran its slot skips the slots it
// missed rather than starting late rounds back to back. The engine is unchanged: every round is an
// ordinary trace, paced by `--rate` and the per-router re-ask budgets like any other, in a slot of its own.
//
// The list can be replaced while the run goes on (SIGHUP): the new list is read in full, then target ×
// ports in both lists keep their index, phase and statistics; those gone stop after their round in
// flight; new ones get an index of their own and their first round at their phase.

import FastTraceWire

/// A request source that re-traces every request of a list every `intervalNanos`.
public final class ScheduleSource<Base: TraceRequestSource>: TraceRequestSource {
    /// What identifies a target × port across reloads of the list.
    public struct Key: Hashable, Sendable {
        public var destination: IPAddress
        public var port: UInt16
    }

    struct Target {
        var request: TraceRequest
        /// Rounds started.
        var rounds = 0
        /// A round is in the engine.
        var running = false
        /// No longer in the list: no further round.
        var removed = false
        /// Time the next round is queued for (0: none queued).
        var queuedAt: UInt64 = 0
    }

    /// Time between a target × port's rounds, ns.
    public let intervalNanos: UInt64
    /// Rounds per target × port (`--count`); nil: no limit.
    public let maxRounds: Int?
    /// No round starts at or after this time (`--duration`); nil: no limit.
    public let endNanos: UInt64?
    /// Set when the run is stopping: no further round starts.
    public var stopped = false
    /// Called (on the engine's thread) for a target × port that left the list, once its last round is in.
    public var onRemoved: (Int) -> Void = { _ in }
    /// Called when a reload is complete: target × ports kept, added and removed.
    public var onReloaded: (_ kept: Int, _ added: Int, _ removed: Int) -> Void = { _, _, _ in }

    /// Asked when a replacement list has been read in full: false keeps the current list (the new one
    /// could not be read to its end, or holds nothing).
    public var acceptReload: (Base) -> Bool = { _ in true }

    private let clock: EngineClock
    private let start: UInt64
    private var base: Base
    private var baseFinished = false
    /// A list being read to replace the current one, and what it has yielded so far.
    private var reload: Base?
    private var reloadRequests: [TraceRequest] = []
    private var targets: [Int: Target] = [:]
    private var indexByKey: [Key: Int] = [:]
    private var nextIndex = 0
    /// (due, index), least due first.
    private var heap = MinHeap()
    /// Rounds handed to the engine and not yet finished.
    public private(set) var inFlight = 0

    /// Re-traces `base`'s requests every `intervalNanos` (at least 1 ms), at most `maxRounds` times each,
    /// starting no round at or after `endNanos` (engine clock).
    public init(_ base: Base, intervalNanos: UInt64, maxRounds: Int? = nil, endNanos: UInt64? = nil,
        clock: EngineClock)
    {
        precondition(maxRounds.map { $0 >= 1 } ?? true)
        self.base = base
        self.intervalNanos = max(1_000_000, intervalNanos)
        self.maxRounds = maxRounds
        self.endNanos = endNanos
        self.clock = clock
        start = clock.now()
    }

    /// The list being traced (for its counters).
    public var wrapped: Base { base }

    /// Target × ports in the list now (also those whose `--count` rounds are all done).
    public var count: Int { indexByKey.count }

    /// The phase of target × port `index` within the interval: the fractional part of index × the golden
    /// ratio's inverse, which spreads any number of indices evenly without knowing how many there are.
    public static func phase(of index: Int, intervalNanos: UInt64) -> UInt64 {
        let fraction = (Double(index) * 0.618_033_988_749_894_8).truncatingRemainder(dividingBy: 1)
        return UInt64(fraction * Double(intervalNanos))
    }

    /// The first slot of `index` at or after `now`.
    func slot(of index: Int, atOrAfter now: UInt64) -> UInt64 {
        let first = start + Self.phase(of: index, intervalNanos: intervalNanos)
        if now <= first { return first }
        let k = (now - first + intervalNanos - 1) / intervalNanos
        return first + k * intervalNanos
    }

    /// Replaces the list with `newBase` once it has been read in full (see the file's opening).
    public func replace(with newBase: Base) {
        reload = newBase
        reloadRequests = []
    }

    /// True while a replacement list is being read.
    public var reloading: Bool { reload != nil }

    public func poll() -> SourcePoll {
        if stopped { return .finished }
        let now = clock.now()
        // The list: every request read as it comes, its first round queued at its phase.
        readList: while !baseFinished {
            switch base.poll() {
            case .request(let request): add(request, now: now)
            case .pending: break readList
            case .finished: baseFinished = true
            }
        }
        pollReload(now: now)
        while let head = heap.peek(), head.at <= now {
            _ = heap.pop()
            guard var target = targets[head.index], !target.removed, !target.running, target.queuedAt == head.at
            else { continue }
            target.queuedAt = 0
            target.rounds += 1
            target.running = true
            targets[head.index] = target
            inFlight += 1
            return .request(target.request)
        }
        return baseFinished && reload == nil && heap.isEmpty && inFlight == 0 ? .finished : .pending
    }

    public var repeatsTargets: Bool { true }

    public var nextDueNanos: UInt64? {
        guard baseFinished, reload == nil else { return nil }
        return heap.peek()?.at
    }

    /// Call with every finished trace. Returns its round (1-based) and whether it was the last one of its
    /// target × port (the last of `--count`, past `--duration`, removed from the list, or interrupted).
    @discardableResult
    public func finished(_ result: TraceResult) -> (round: Int, last: Bool) {
        inFlight -= 1
        let index = result.request.index
        guard var target = targets[index] else { return (1, true) }
        target.running = false
        let round = target.rounds
        let next = slot(of: index, atOrAfter: clock.now())
        let last = stopped || result.stopReason == .interrupted || target.removed
            || (maxRounds.map { target.rounds >= $0 } ?? false) || (endNanos.map { next >= $0 } ?? false)
        if last {
            targets[index] = nil
            // Its key stays (a reload that keeps it does not start its rounds again); a removed one's
            // key went with the reload.
            if target.removed { onRemoved(index) }
        } else {
            target.queuedAt = next
            targets[index] = target
            heap.push(at: next, index: index)
        }
        return (round, last)
    }

    private func add(_ request: TraceRequest, now: UInt64) {
        let key = Key(destination: request.destination, port: request.port)
        // The same target × port twice in one list is traced once (the list reader drops repeats already).
        guard indexByKey[key] == nil else { return }
        var request = request
        request.index = nextIndex
        nextIndex += 1
        indexByKey[key] = request.index
        var at = slot(of: request.index, atOrAfter: now)
        // Its moment in the current interval has passed (it was read, resolved or re-read after it; for
        // the first target, by the microseconds since the start): its first round starts now rather than
        // an interval later (or never, with a --duration of one interval); its later rounds keep its phase.
        if at >= start + intervalNanos && at - intervalNanos < now { at = now }
        if let endNanos, at >= endNanos { return }
        targets[request.index] = Target(request: request, queuedAt: at)
        heap.push(at: at, index: request.index)
    }

    private func pollReload(now: UInt64) {
        guard reload != nil else { return }
        readList: while true {
            switch reload!.poll() {
            case .request(let request): reloadRequests.append(request)
            case .pending: return
            case .finished: break readList
            }
        }
        // The new list is in: keep, add, remove.
        guard acceptReload(reload!) else {
            reload = nil
            reloadRequests = []
            return
        }
        var wanted: Set<Key> = []
        var added = 0, kept = 0
        for request in reloadRequests {
            let key = Key(destination: request.destination, port: request.port)
            guard wanted.insert(key).inserted else { continue }
            if let index = indexByKey[key], var target = targets[index], !target.removed {
                // Same target × port: its source or name may have changed; its schedule stays.
                target.request = TraceRequest(index: index, destination: request.destination, port: request.port,
                    source: request.source, name: request.name)
                targets[index] = target
                kept += 1
            } else if indexByKey[key] != nil {
                kept += 1  // in the list before, its rounds all done
            } else {
                add(request, now: now)
                added += 1
            }
        }
        var removed = 0
        for (key, index) in indexByKey where !wanted.contains(key) {
            indexByKey[key] = nil
            guard var target = targets[index] else { continue }
            removed += 1
            if target.running {
                target.removed = true
                targets[index] = target
            } else {
                targets[index] = nil
                onRemoved(index)
            }
        }
        base = reload!
        baseFinished = true
        reload = nil
        reloadRequests = []
        onReloaded(kept, added, removed)
    }
}

/// A binary min-heap of (time, index) pairs.
struct MinHeap {
    private var items: [(at: UInt64, index: Int)] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    func peek() -> (at: UInt64, index: Int)? { items.first }

    mutating func push(at: UInt64, index: Int) {
        items.append((at, index))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].at < items[parent].at else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (at: UInt64, index: Int)? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l].at < items[m].at { m = l }
                if r < items.count && items[r].at < items[m].at { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
