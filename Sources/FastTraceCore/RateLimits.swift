// Tells rate-limited silence from real silence. Routers limit the ICMP errors they send (Linux: about
// one a second per destination after a small burst), so near-source routers, which see every trace's
// low-TTL probes, go quiet for most traces of a busy run. Silence there says nothing about the path,
// and must neither stop a trace (the gap limit) nor be printed as if the router never answers.
//
// What is known here, per *position* (a TTL and the nearest router below it that answered, as a trace
// sees them): whether any router answers ICMP there at all, and whether one was caught dropping some of
// our probes while answering others of the same flow (the signature of a rate limit: Paris-style probes
// of one flow take one path, so the router is the same). A silent router (one that never sends ICMP)
// is never caught answering, so its silence stays plain silence.

/// Where a hop sits on a path, as far as one trace knows: its TTL and the nearest router below it that
/// answered (0 when none did: then the position stands for every path at that TTL, which is what a
/// trace whose near hops are all rate-limited can still say).
struct Position: Hashable {
    var ttl: UInt8
    var upstream: UInt32

    /// The same TTL on any path.
    var anyPath: Position { Position(ttl: ttl, upstream: 0) }
}

/// What the run has learnt about each position. Scheduler-only; bounded in size.
struct PositionBook {
    struct Entry {
        /// A router has answered with ICMP at this position during the run.
        var answered = false
        /// A router here was caught dropping some of our probes while answering others: rate limiting.
        var limited = false
        /// Re-asks here that found the hop still silent, while no router has answered here.
        var silentReasks = 0
        /// Re-ask budget once the position is known to be limited (token bucket).
        var tokens: Double = 0
        var lastRefill: UInt64 = 0
    }

    /// Most positions remembered; beyond that new positions are not learnt (their silence stays plain).
    let capacity: Int
    /// Re-asks per second allowed to a position known to be rate-limited.
    let reaskRate: Double
    /// Burst of re-asks allowed to a limited position.
    let reaskBurst: Double
    private var index: [Position: Int32] = [:]
    private var entries: [Entry] = []
    /// Positions found rate-limited (for the summary).
    private(set) var limitedPositions = 0

    init(capacity: Int = 1 << 16, reaskRate: Double = 1, reaskBurst: Double = 2) {
        self.capacity = capacity
        self.reaskRate = reaskRate
        self.reaskBurst = reaskBurst
        index.reserveCapacity(1024)
        entries.reserveCapacity(1024)
    }

    private mutating func entry(_ position: Position) -> Int? {
        if let i = index[position] { return Int(i) }
        guard entries.count < capacity else { return nil }
        index[position] = Int32(entries.count)
        entries.append(Entry())
        return entries.count - 1
    }

    /// A router answered with ICMP at `position` (learnt for the position and for its TTL on any path).
    mutating func noteAnswer(at position: Position) {
        for p in [position, position.anyPath] {
            guard let i = entry(p) else { return }
            entries[i].answered = true
        }
    }

    /// A router at `position` answered some probes of one flow and not others (learnt for the position
    /// and for its TTL on any path).
    mutating func noteDrop(at position: Position, now: UInt64) {
        noteDropAt(position, now: now)
        if position.upstream != 0 { noteDropAt(position.anyPath, now: now) }
    }

    private mutating func noteDropAt(_ position: Position, now: UInt64) {
        guard let i = entry(position) else { return }
        entries[i].answered = true
        if !entries[i].limited {
            entries[i].limited = true
            entries[i].tokens = reaskBurst
            entries[i].lastRefill = now
            if position.upstream != 0 || position.ttl <= 1 { limitedPositions += 1 }
        }
    }

    /// Some router answers ICMP at `position`, or at its TTL on any path: silence there may be a rate
    /// limit, worth asking again. (A trace whose lower hops were themselves rate-limited knows a
    /// different upstream router than its neighbours do; its TTL on any path still says something.)
    func answers(at position: Position) -> Bool {
        flags(position).answered || flags(position.anyPath).answered
    }

    /// Some router answers ICMP at exactly this position (at its TTL on any path when the trace knows
    /// no router below it). Narrower than `answers(at:)`: the gap limit uses it, so that one branch's
    /// routers do not keep another branch's black hole alive.
    func answersAtOwnPosition(_ position: Position) -> Bool {
        flags(position).answered
    }

    /// Re-asks that must fail at a position where nothing ever answered before it counts as silent
    /// (a router that never sends ICMP, or the end of the path) and is no longer asked again.
    static let silentAfterReasks = 8

    /// A re-ask at `position` timed out with its hop still silent.
    mutating func noteSilentReask(at position: Position) {
        guard let i = entry(position) else { return }
        entries[i].silentReasks += 1
    }

    /// Whether a silent hop at `position` is worth asking again: some router answers there (it may be
    /// rate-limiting), or too little is known yet (early in a run, a rate-limited router may not have
    /// answered anyone). Not where re-asks have kept finding silence and nothing ever answered.
    func worthReasking(_ position: Position) -> Bool {
        if answers(at: position) { return true }
        guard let i = index[position] else { return true }
        return entries[Int(i)].silentReasks < Self.silentAfterReasks
    }

    /// A router at `position` was caught rate-limiting during this run; or nothing is known of the
    /// position itself and one was caught at its TTL on another path.
    func isLimited(_ position: Position) -> Bool {
        let own = flags(position)
        return own.limited || (!own.answered && flags(position.anyPath).limited)
    }

    private func flags(_ position: Position) -> (answered: Bool, limited: Bool) {
        guard let i = index[position] else { return (false, false) }
        return (entries[Int(i)].answered, entries[Int(i)].limited)
    }

    /// Whether a re-ask to `position` may be sent now: always while the position is not known to be
    /// limited; within its budget once it is (asking a limited router faster than it answers only buys
    /// more silence).
    mutating func allowReask(at position: Position, now: UInt64) -> Bool {
        guard isLimited(position) else { return true }
        let key = flags(position).limited ? position : position.anyPath
        guard let i = index[key].map(Int.init) else { return true }
        if now > entries[i].lastRefill {
            entries[i].tokens = min(reaskBurst, entries[i].tokens + Double(now - entries[i].lastRefill) * reaskRate / 1e9)
            entries[i].lastRefill = now
        }
        guard entries[i].tokens >= 1 else { return false }
        entries[i].tokens -= 1
        return true
    }
}
