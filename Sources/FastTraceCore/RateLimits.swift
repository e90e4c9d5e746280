// Tells rate-limited silence from real silence. Routers limit the ICMP errors they send (Linux: about
// one a second per destination after a small burst), so near-source routers, which see every trace's
// low-TTL probes, go quiet for most traces of a busy run. Silence there says nothing about the path,
// and must neither stop a trace (the gap limit) nor be printed as if the router never answers.
//
// What is known here, per *position* (a TTL and the router right below it when it answered, as a trace
// sees them): whether any router answers ICMP there at all, and whether one was caught dropping some of
// our probes while answering others of the same flow (the signature of a rate limit: Paris-style probes
// of one flow take one path, so the router is the same). A silent router (one that never sends ICMP)
// is never caught answering, so its silence stays plain silence.

/// Where a hop sits on a path, as far as one trace knows: its TTL and the router right below it, when
/// that one answered (0 when it did not: then the position stands for every path at that TTL, which is
/// what a trace whose near hops are rate-limited can still say).
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
        /// When the first of them found silence (scheduler clock; meaningful once `silentReasks` > 0).
        var firstSilentReask: UInt64 = 0
        /// Re-ask budget (token bucket): `reaskBurst`/`reaskRate` while the position is not known to be
        /// limited, `limitedBurst`/`limitedRate` once it is.
        var tokens: Double = -1
        var lastRefill: UInt64 = 0
    }

    /// Most positions remembered; beyond that new positions are not learnt (their silence stays plain).
    let capacity: Int
    /// Re-asks per second to a position not known to be limited: enough to catch a rate limit (one
    /// answered re-ask is evidence), never a flood at a router that is silent anyway.
    let reaskRate: Double
    /// Burst of re-asks to a position not known to be limited.
    let reaskBurst: Double
    /// Re-asks per second to a position known to be limited: about what it answers.
    let limitedRate: Double
    /// Burst of re-asks to a limited position.
    let limitedBurst: Double
    private var index: [Position: Int32] = [:]
    /// Per (TTL, router): the router every trace that heard both saw right before it, or 0 when traces saw
    /// different ones. What identifies the router a trace met at a TTL it heard nothing from.
    private var predecessors: [RouterAt: UInt32] = [:]
    /// Routers caught answering some probes of a flow while dropping others (rate limiting).
    private var limitingRouters: Set<UInt32> = []
    /// The router that answered at TTL 1 (0 once two different ones have), nil before any has.
    private var firstHop: UInt32?

    struct RouterAt: Hashable {
        var ttl: UInt8
        var router: UInt32
    }
    private var entries: [Entry] = []
    /// Positions found rate-limited (for the summary; each TTL on any path counts as one too).
    private(set) var limitedPositions = 0
    /// The deepest TTL (index) at which a router has answered ICMP in this run, or -1.
    private(set) var deepestRouterTTL = -1

    init(capacity: Int = 1 << 16, reaskRate: Double = 8, reaskBurst: Double = 16, limitedRate: Double = 1,
        limitedBurst: Double = 2)
    {
        self.capacity = capacity
        self.reaskRate = reaskRate
        self.reaskBurst = reaskBurst
        self.limitedRate = limitedRate
        self.limitedBurst = limitedBurst
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
        deepestRouterTTL = max(deepestRouterTTL, Int(position.ttl))
        for p in [position, position.anyPath] {
            guard let i = entry(p) else { return }
            entries[i].answered = true
        }
    }

    /// A trace heard `router` at `ttl` right after `previous` at the TTL below.
    mutating func notePath(ttl: UInt8, router: UInt32, previous: UInt32) {
        let key = RouterAt(ttl: ttl, router: router)
        if let seen = predecessors[key] {
            if seen != previous && seen != 0 { predecessors[key] = 0 }
        } else if predecessors.count < capacity {
            predecessors[key] = previous
        }
    }

    /// The one router seen right before `router` at `ttl`, on every trace that heard both; nil when none
    /// was or different ones were.
    func predecessor(ttl: UInt8, router: UInt32) -> UInt32? {
        guard let seen = predecessors[RouterAt(ttl: ttl, router: router)], seen != 0 else { return nil }
        return seen
    }

    /// A router answered at TTL 1.
    mutating func noteFirstHop(_ router: UInt32) {
        if firstHop == nil { firstHop = router } else if firstHop != router { firstHop = 0 }
    }

    /// The one router that has answered at TTL 1 in this run, if only one has.
    var onlyFirstHop: UInt32? { firstHop == 0 ? nil : firstHop }

    /// `router` was caught answering some probes of one flow and not others.
    mutating func noteLimitingRouter(_ router: UInt32) {
        if limitingRouters.count < capacity { limitingRouters.insert(router) }
    }

    /// `router` was caught rate-limiting in this run.
    func isLimitingRouter(_ router: UInt32) -> Bool { limitingRouters.contains(router) }

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
            entries[i].tokens = min(entries[i].tokens, limitedBurst)
            entries[i].lastRefill = now
            limitedPositions += 1
        }
    }

    /// Some router answers ICMP at `position`, or at its TTL on any path: silence there may be a rate
    /// limit, worth asking again. (A trace whose lower hops were themselves rate-limited knows a
    /// different upstream router than its neighbours do; its TTL on any path still says something.)
    func answers(at position: Position) -> Bool {
        flags(position).answered || flags(position.anyPath).answered
    }

    /// A router at exactly this position was caught rate-limiting.
    func caughtLimiting(at position: Position) -> Bool { flags(position).limited }

    /// Some router answers ICMP at exactly this position (at its TTL on any path when the trace knows
    /// no router below it). Narrower than `answers(at:)`: the gap limit uses it, so that one branch's
    /// routers do not keep another branch's black hole alive.
    func answersAtOwnPosition(_ position: Position) -> Bool {
        flags(position).answered
    }

    /// Re-asks that must fail at a position where nothing ever answered before it counts as silent
    /// (a router that never sends ICMP, or the end of the path) and is no longer asked again…
    static let silentAfterReasks = 8
    /// …and how long they must have kept failing: a router whose ICMP budget to us is spent (by earlier
    /// or other traffic from this host) is silent to everyone for a while, not for good. Linux refills
    /// one error a second; no common router default keeps a budget empty for this long.
    static let silentAfterNanos: UInt64 = 5_000_000_000

    /// A re-ask at `position` timed out with its hop still silent.
    mutating func noteSilentReask(at position: Position, now: UInt64) {
        guard let i = entry(position) else { return }
        if entries[i].silentReasks == 0 { entries[i].firstSilentReask = now }
        entries[i].silentReasks += 1
    }

    /// Re-asks at `position` have found silence often enough, over long enough, for it to be silence.
    private func foundSilent(_ position: Position, now: UInt64) -> Bool {
        guard let i = index[position] else { return false }
        let e = entries[Int(i)]
        return e.silentReasks >= Self.silentAfterReasks && now &- e.firstSilentReask >= Self.silentAfterNanos
    }

    /// Whether a silent hop at `position` is worth asking again: some router answers there (it may be
    /// rate-limiting), or too little is known yet (early in a run, a rate-limited router may not have
    /// answered anyone). Not where re-asks have kept finding silence and nothing ever answered.
    func worthReasking(_ position: Position, now: UInt64) -> Bool {
        answers(at: position) || !foundSilent(position, now: now)
    }

    /// In a run where routers were caught rate-limiting, nothing is known yet of `position`: no router
    /// has answered ICMP there (or at its TTL on any path), and re-asks have not yet found it silent
    /// for long. Its silence is then no evidence of a black hole: when the routers' ICMP budgets to us
    /// are spent at the start of a run (by earlier traffic, or another prober on this host), the first
    /// traces hear from a few routers and from most not at all, and a trace judged on that silence
    /// must not stop at the gap. In a run where no router was caught, silence is silence, as always.
    /// (Positions the book has no room for count as known.)
    func isUnexplored(_ position: Position, reach: Int, now: UInt64) -> Bool {
        guard limitedPositions > 0, Int(position.ttl) < deepestRouterTTL + reach else { return false }
        if answers(at: position) || foundSilent(position, now: now) || foundSilent(position.anyPath, now: now) {
            return false
        }
        return index[position] != nil || entries.count < capacity
    }

    /// Silence at `position` is explained by rate limiting: a router there, or at its TTL on another
    /// path, was caught rate-limiting (the near routers serve every path; a trace's view of "the router
    /// below" varies with which of them happened to answer it); or routers answer at this position for
    /// other traces in a run where rate limiting has been caught at all, and the catch here may come
    /// only later. In a run where no router was ever caught, nothing is limited.
    func isLimited(_ position: Position) -> Bool {
        guard limitedPositions > 0 else { return false }
        return flags(position).limited || flags(position.anyPath).limited || answers(at: position)
    }

    private func flags(_ position: Position) -> (answered: Bool, limited: Bool) {
        guard let i = index[position] else { return (false, false) }
        return (entries[Int(i)].answered, entries[Int(i)].limited)
    }

    /// Whether a re-ask to `position` may be sent now: within the budget of its TTL on any path (the
    /// routers near the vantage point serve every path) and of the position itself. A re-ask over
    /// budget is not sent; its hop is judged once the re-asks that were sent have had their wait.
    mutating func allowReask(at position: Position, now: UInt64) -> Bool {
        guard let any = entry(position.anyPath) else { return true }
        refill(any, now: now)
        guard entries[any].tokens >= 1 else { return false }
        if position.upstream != 0 {
            guard let own = entry(position) else { return true }
            refill(own, now: now)
            guard entries[own].tokens >= 1 else { return false }
            entries[own].tokens -= 1
        }
        entries[any].tokens -= 1
        return true
    }

    private mutating func refill(_ i: Int, now: UInt64) {
        let (rate, burst) = entries[i].limited ? (limitedRate, limitedBurst) : (reaskRate, reaskBurst)
        if entries[i].tokens < 0 {
            entries[i].tokens = burst
        } else if now > entries[i].lastRefill {
            entries[i].tokens = min(burst, entries[i].tokens + Double(now - entries[i].lastRefill) * rate / 1e9)
        }
        entries[i].lastRefill = now
    }
}
