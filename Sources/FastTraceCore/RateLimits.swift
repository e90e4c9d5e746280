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

import FastTraceWire

/// A router as the position book keys it: 32 bits, never 0 (0 means "none" there). An IPv4 router is its
/// address; an IPv6 router a 32-bit hash of its address (two IPv6 routers collide 1 time in 2^32, which
/// could only blend what the book learnt of their rate limits, never what a trace shows).
struct RouterKey: Hashable {
    let value: UInt32

    init(_ address: IPAddress) {
        if let v4 = address.ipv4 {
            value = v4.value
        } else {
            var h = address.high &* 0x9E37_79B9_7F4A_7C15 ^ address.low
            h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
            let folded = UInt32(truncatingIfNeeded: h ^ (h >> 32))
            value = folded == 0 ? 1 : folded
        }
    }
}

/// Where a hop sits on a path, as far as one trace knows: its TTL and the router right below it, when
/// that one answered (0 when it did not: then the position stands for every path at that TTL, which is
/// what a trace whose near hops are rate-limited can still say).
struct Position: Hashable {
    var ttl: UInt8
    var upstream: UInt32

    /// The same TTL on any path.
    var anyPath: Position { Position(ttl: ttl, upstream: 0) }
}

/// What the run has learnt about each position. Scheduler-only; bounded in size, and aging rather than
/// filling: a run that goes on for hours (continuous mode) meets ever new positions, and a book that
/// stopped learning once full would freeze on what the first hour saw. Positions are kept in two
/// generations of at most `capacity` each: when the current one is full it becomes the previous one and
/// a new one starts; a position looked up or learnt again is carried over into the current one, and what
/// was not touched for a whole generation is forgotten. The per-router tables start again when full.
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
        /// The routers that have answered here (up to four; `manyRouters` once more have).
        var routers: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        var manyRouters = false

        mutating func noteRouter(_ router: UInt32) {
            if routers.0 == router || routers.1 == router || routers.2 == router || routers.3 == router { return }
            if routers.0 == 0 { routers.0 = router } else if routers.1 == 0 { routers.1 = router }
            else if routers.2 == 0 { routers.2 = router } else if routers.3 == 0 { routers.3 = router }
            else { manyRouters = true }
        }
    }

    /// How fast a router has answered us: answers to probes sent within one second of the window's
    /// start, and whether it ever answered more in one second than a per-destination limit allows.
    struct Pace {
        var windowStart: UInt64 = 0
        var count = 0
        var unlimited = false
    }

    /// Most positions in one generation (see the type's comment): at most twice this are remembered.
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
    /// Per router, how fast it answers (see `Pace`).
    private var paces: [UInt32: Pace] = [:]
    /// Silences that look like a rate limit in a run that has caught none yet: a known router silent
    /// for one trace while it answers others (see `TraceEngine.reaskWanted`).
    private(set) var suspicions = 0
    /// Goes up when a router is found answering faster than a per-destination limit: re-asks queued
    /// before may no longer be wanted.
    private(set) var evidence = 0

    struct RouterAt: Hashable {
        var ttl: UInt8
        var router: UInt32
    }
    private var entries: [Entry] = []
    /// The generation before the current one: consulted, and carried over when touched.
    private var older: [Position: Entry] = [:]
    /// Generations started after the first (the book aged this many times).
    private(set) var generations = 0
    /// Positions remembered now (both generations).
    var storedPositions: Int { entries.count + older.count }
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
        if entries.count >= capacity { age() }
        index[position] = Int32(entries.count)
        entries.append(older.removeValue(forKey: position) ?? Entry())
        return entries.count - 1
    }

    /// The current generation becomes the previous one; the one before it is forgotten.
    private mutating func age() {
        var old: [Position: Entry] = [:]
        old.reserveCapacity(index.count)
        for (position, i) in index { old[position] = entries[Int(i)] }
        older = old
        index.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
        generations += 1
    }

    /// What the book knows of `position`, in either generation.
    private func lookup(_ position: Position) -> Entry? {
        if let i = index[position] { return entries[Int(i)] }
        return older[position]
    }

    /// `router` answered with ICMP at `position` a probe sent at `sentAt` (learnt for the position and
    /// for its TTL on any path, and for the router's pace).
    mutating func noteAnswer(at position: Position, router: UInt32, sentAt: UInt64) {
        deepestRouterTTL = max(deepestRouterTTL, Int(position.ttl))
        notePace(router, sentAt: sentAt)
        for p in [position, position.anyPath] {
            guard let i = entry(p) else { return }
            entries[i].answered = true
            entries[i].noteRouter(router)
        }
    }

    /// Linux answers one destination with at most 6 ICMP errors at once and one a second after that
    /// (`icmp_ratelimit`); other routers' per-destination defaults are lower still. A router that
    /// answered this many probes sent within one second is not limiting us per destination.
    static let unlimitedAnswersPerSecond = 10

    private mutating func notePace(_ router: UInt32, sentAt: UInt64) {
        guard sentAt != 0 else { return }
        var pace = paces[router] ?? Pace(windowStart: sentAt)
        guard !pace.unlimited else { return }
        // Answers are learnt in TTL order, not quite in send order: one sent before the window is not
        // counted (which can only make a router look slower than it is); one sent after it opens a new one.
        if sentAt < pace.windowStart { return }
        if sentAt - pace.windowStart >= 1_000_000_000 { pace = Pace(windowStart: sentAt) }
        pace.count += 1
        if pace.count >= Self.unlimitedAnswersPerSecond {
            pace.unlimited = true
            evidence += 1
        }
        if paces.count >= capacity && paces[router] == nil { paces.removeAll(keepingCapacity: true) }
        paces[router] = pace
    }

    /// Every router that answers at `position` (at its TTL on any path when none answers at exactly
    /// it) has answered faster than any per-destination limit allows: a silence there, from a router
    /// the run cannot name, is not our budget at one of them running out.
    func answeringRoutersUnlimited(at position: Position) -> Bool {
        guard let e = lookup(flags(position).answered ? position : position.anyPath) else { return false }
        guard !e.manyRouters, e.routers.0 != 0 else { return false }
        func fast(_ r: UInt32) -> Bool { r == 0 || paces[r]?.unlimited == true }
        return fast(e.routers.0) && fast(e.routers.1) && fast(e.routers.2) && fast(e.routers.3)
    }

    /// A silence that looks like a rate limit in a run that has caught none yet.
    mutating func noteSuspicion() { suspicions += 1 }

    /// The run has caught a rate limit, or seen a silence that looks like one: silent hops are asked
    /// again as the run's evidence allows (`worthReasking`, the budgets).
    var suspectsLimiting: Bool { limitedPositions > 0 || suspicions > 0 }

    /// A trace heard `router` at `ttl` right after `previous` at the TTL below.
    mutating func notePath(ttl: UInt8, router: UInt32, previous: UInt32) {
        let key = RouterAt(ttl: ttl, router: router)
        if let seen = predecessors[key] {
            if seen != previous && seen != 0 { predecessors[key] = 0 }
        } else {
            if predecessors.count >= capacity { predecessors.removeAll(keepingCapacity: true) }
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
        if limitingRouters.count >= capacity && !limitingRouters.contains(router) {
            limitingRouters.removeAll(keepingCapacity: true)
        }
        limitingRouters.insert(router)
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
        guard let e = lookup(position) else { return false }
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
    func isUnexplored(_ position: Position, reach: Int, now: UInt64) -> Bool {
        guard limitedPositions > 0, Int(position.ttl) < deepestRouterTTL + reach else { return false }
        if answers(at: position) || foundSilent(position, now: now) || foundSilent(position.anyPath, now: now) {
            return false
        }
        return true
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
        guard let e = lookup(position) else { return (false, false) }
        return (e.answered, e.limited)
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
