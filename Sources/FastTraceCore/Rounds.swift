// Repeated rounds (`-c N`): the same target × port traced N times, fed to the engine as N requests in
// turn. A round of a target × port starts only after its previous round finished and a pause has passed
// (`interval`, 1 s by default as mtr's), so one trace's probes never overlap another's of the same flow
// and a router sees a target's rounds spread out, never as a burst; different targets' rounds interleave,
// paced by `--rate` like any batch. The engine is unchanged: each round is an ordinary trace in a slot of
// its own (slots are reused as usual), and the rate-limit evidence it gathers serves every later round.

/// A request source that repeats every request of `base` `rounds` times.
public final class RoundsSource<Base: TraceRequestSource>: TraceRequestSource {
    /// Rounds per target × port.
    public let rounds: Int
    /// Pause between the end of a round and the start of the next, ns.
    public let intervalNanos: UInt64
    private var base: Base
    private var baseFinished = false
    private let clock: EngineClock
    /// Per request index: the request, the rounds started and finished.
    private var started: [Int: (request: TraceRequest, rounds: Int)] = [:]
    /// Next rounds waiting for their time, in due order (one interval after a finish: finishes come in
    /// time order, so the queue stays sorted).
    private var due = RingQueue<(at: UInt64, index: Int)>(capacity: 64)
    /// Rounds handed to the engine and not yet finished.
    public private(set) var inFlight = 0
    /// Set when the run is stopping: no further round starts.
    public var stopped = false

    /// Repeats `base`'s requests `rounds` times, `intervalNanos` apart per request, timed by `clock`.
    public init(_ base: Base, rounds: Int, intervalNanos: UInt64 = 1_000_000_000, clock: EngineClock) {
        precondition(rounds >= 1)
        self.base = base
        self.rounds = rounds
        self.intervalNanos = intervalNanos
        self.clock = clock
    }

    /// The wrapped source (for its counters after the run).
    public var wrapped: Base { base }

    public func poll() -> SourcePoll {
        if stopped { return .finished }
        if let head = due.peek(), head.at <= clock.now() {
            _ = due.pop()
            if let entry = started[head.index] {
                started[head.index]!.rounds += 1
                inFlight += 1
                return .request(entry.request)
            }
        }
        if !baseFinished {
            switch base.poll() {
            case .request(let request):
                started[request.index] = (request, 1)
                inFlight += 1
                return .request(request)
            case .pending: return .pending
            case .finished: baseFinished = true
            }
        }
        return due.isEmpty && inFlight == 0 ? .finished : .pending
    }

    public var repeatsTargets: Bool { true }

    /// The next round's due time, when the base list is all in and rounds wait for their pause.
    public var nextDueNanos: UInt64? { baseFinished ? due.peek()?.at : nil }

    /// Call with every finished trace. Returns its round (1-based) and whether it was the last one of its
    /// target × port (the last of `rounds`, or an interrupted one: no further round runs after it).
    @discardableResult
    public func finished(_ result: TraceResult) -> (round: Int, last: Bool) {
        inFlight -= 1
        let index = result.request.index
        guard let entry = started[index] else { return (1, true) }
        let last = entry.rounds >= rounds || result.stopReason == .interrupted || stopped
        if last {
            started[index] = nil
        } else {
            due.push((clock.now() + intervalNanos, index))
        }
        return (entry.rounds, last)
    }

    /// Target × ports between rounds or in one (not yet given their last round).
    public var unfinished: Int { started.count }
}
