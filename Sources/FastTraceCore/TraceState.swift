// The per-trace state machine of a Paris traceroute (one flow, TTL by TTL): which probe a trace sends
// next, what its answers mean (the destination reached, an unreachable and where its router sits), which
// TTLs are settled, and where and why the trace stops (destination, unreachable, gap limit, refused
// probes, the last TTL). A value per slot, changed only through these methods, which take the probe table
// and the rules they read as parameters: no transport, clock or dispatcher, so a test drives it alone
// (`TraceStateTests`). The scheduler (`TraceEngine`) decides when each step runs; what a silent TTL
// means for the gap limit is the rate-limit policy's answer (`TraceEngine.learn`), handed in as a
// `SettledTTL`. Other strategies (rounds with per-hop statistics, ECMP enumeration) are other machines
// over the same table.

import FastTraceWire

/// What a trace's state machine reads of the run's configuration.
struct TraceRules: Equatable {
    /// Stop a trace after this many consecutive silent TTLs; 0 disables (`--gap`).
    var gapLimit: Int
    /// TTLs a trace may have probes outstanding for at once.
    var window: Int
    /// An answer later than this after its probe's send (by its timestamps) is not taken, ns.
    var waitNanos: UInt64

    init(gapLimit: Int, window: Int, waitNanos: UInt64) {
        self.gapLimit = gapLimit
        self.window = window
        self.waitNanos = waitNanos
    }

    init(_ configuration: EngineConfiguration) {
        self.init(gapLimit: configuration.gapLimit, window: configuration.window, waitNanos: configuration.waitNanos)
    }
}

/// What a settled TTL says about the path past it, for the gap limit (`TraceEngine.learn` decides).
enum SettledTTL {
    /// Something answered at this TTL.
    case answered
    /// Nothing answered, but a router is there: its silence is explained by rate limiting, or a
    /// router answers other traces at exactly its position (a rate limit not caught yet).
    case silentButAlive
    /// Nothing answered, and nothing is known yet of its position (`PositionBook.isUnexplored`): no
    /// evidence either way, so no reason to give up on the path here.
    case unexplored
    /// Nothing answered where silence is known: evidence towards the gap limit.
    case silent
}

/// A TTL whose every column is settled (answered, or silent after its last try), next in TTL order.
struct SettledRow: Equatable {
    var ttlIndex: Int
    /// Some column was answered.
    var answeredAny: Bool
    /// Some column stayed silent.
    var silentAny: Bool
    /// The kernel refused a try at this TTL (where the trace stops): it teaches nothing about the path.
    var refused: Bool
}

/// What a trace does after settling what it could.
enum TraceStep: Equatable {
    /// Every TTL up to where it stops is settled: report it.
    case finished
    /// It has probes in flight, or more to send.
    case continuing
}

/// One trace's state: one per slot, reset when a new trace takes the slot.
struct TraceState {
    var request: TraceRequest
    /// Probes of new columns handed out so far: the next goes to TTL index `nextProbe / samples`,
    /// column `nextProbe % samples`.
    var nextProbe = 0
    /// TTLs settled, in order from the first.
    var resolvedTTLs = 0
    /// The last TTL index the trace probes, and why it stops there.
    var stopTTLIndex: Int
    var stopReason = StopReason.maxTTL
    /// Lowest TTL index the destination answered at, and lowest an unreachable came from.
    var destinationTTLIndex = Int.max
    var unreachableTTLIndex = Int.max
    /// The cell whose unreachable is placed at `unreachableTTLIndex` because its quote says the router
    /// sits there (probes sent past an unreachable router all come back from it), or -1 when the
    /// unreachable answered a probe at that TTL itself.
    var unreachableCell = -1
    /// The same for a destination answer that quotes its probe (a UDP port unreachable): the cell
    /// placed at `destinationTTLIndex` because the quote says the destination sits there, or -1.
    var destinationCell = -1
    /// Consecutive TTLs settled as `silent`, the last of them the last settled.
    var silentRun = 0
    /// Highest TTL index that answered, is being asked again, or whose silence is a rate limit: the
    /// trace is known to go on at least this far, for the gap limit's look-ahead.
    var frontier = -1
    /// TTL indexes whose silence the gap did not count (silent but alive, or unexplored): shown as a
    /// rate limit or the end of the path (`unknown`), never as plain silence, when nothing else
    /// explains them. A bit per TTL index (at most 255).
    var uncounted: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    /// Probes that left the host.
    var probesSent = 0
    /// When (the `sendmmsg` that) sent its first probe returned, on the monotonic clock; nil until then.
    var firstSent: UInt64?

    /// A trace of `request` over `ttlCount` TTLs, nothing sent.
    init(request: TraceRequest, ttlCount: Int) {
        self.request = request
        stopTTLIndex = ttlCount - 1
    }

    /// An empty slot's placeholder.
    init() {
        self.init(request: TraceRequest(index: 0, destination: .any, port: 0, source: .any), ttlCount: 1)
    }

    // MARK: sending

    /// True when the trace may hand out a probe of a new column now: below where it stops, within its
    /// window of unsettled TTLs, and, with a gap limit, at most `gapLimit` TTLs past its frontier (TTLs
    /// further out are speculative: if those `gapLimit` stay silent the trace stops there, so it waits
    /// for news before going further).
    func canSend(samples: Int, rules: TraceRules) -> Bool {
        let ttlIndex = nextProbe / samples
        let gap = rules.gapLimit
        if gap > 0 && ttlIndex > frontier + gap { return false }
        return ttlIndex <= stopTTLIndex && ttlIndex < resolvedTTLs + rules.window
    }

    /// Hands out the next new probe: its TTL index and attempt (its column; first try).
    @inline(__always) mutating func takeProbe(samples: Int) -> (ttlIndex: Int, attempt: Int) {
        let probe = nextProbe
        nextProbe += 1
        return (probe / samples, probe % samples)
    }

    /// The probe last handed out was not taken by the kernel: it is handed out again.
    @inline(__always) mutating func returnProbe() { nextProbe -= 1 }

    /// A probe of the trace left the host; `at` is when its batch's send returned.
    @inline(__always) mutating func noteSent(at: UInt64) {
        probesSent += 1
        if firstSent == nil { firstSent = at }
    }

    /// The kernel refused a probe at `ttlIndex`: the trace stops there (its later probes, as long and on
    /// the same route, would be refused too), unless it already stops nearer for a reason of the path.
    mutating func refused(ttlIndex: Int) {
        if ttlIndex < stopTTLIndex || (ttlIndex == stopTTLIndex && (stopReason == .maxTTL || stopReason == .gapLimit)) {
            stopTTLIndex = ttlIndex
            stopReason = .notSent
        }
    }

    /// The highest TTL index the trace has handed out a probe for (0 before any).
    @inline(__always) func lastProbedTTLIndex(samples: Int) -> Int { (nextProbe - 1) / samples }

    // MARK: answers

    /// Marks the answered probes of the slot's unsettled TTLs and applies what the answers mean
    /// (destination reached, unreachable). A reply counts only when it is this occupant's (its generation
    /// bits and its details word's epoch) and came within the wait (by its timestamps).
    mutating func ingest(slot: Int, table: inout ProbeTable, rules: TraceRules) {
        let lastTTL = min(stopTTLIndex, lastProbedTTLIndex(samples: table.samples))
        guard lastTTL >= resolvedTTLs else { return }
        let epoch = table.occupants[slot].epoch
        let grid = table.grid
        for ttlIndex in resolvedTTLs...lastTTL {
            for attempt in 0..<grid.attempts {
                let cell = grid.cell(slot: slot, ttlIndex: ttlIndex, attempt: attempt)
                guard table.status[cell] == .sent else { continue }
                guard let reply = table.reply(cell, epoch: epoch), UInt64(reply.rttMicros) * 1_000 <= rules.waitNanos
                else { continue }
                table.status[cell] = .answered
                frontier = max(frontier, ttlIndex)
                switch reply.outcome {
                case let answer where answer.isFromDestination:
                    // An answer that quotes its probe (port unreachable) says how far the destination is:
                    // under a host's ICMP limit the nearest probes to reach it may go unanswered and a
                    // later one be answered, which without this would put the destination further out.
                    let at = answer.isICMPError ? Self.placedTTLIndex(cell: cell, ttlIndex: ttlIndex, table: table)
                        : ttlIndex
                    if at < destinationTTLIndex {
                        destinationTTLIndex = at
                        destinationCell = at == ttlIndex ? -1 : cell
                    }
                case .unreachable, .unreachableV6:
                    // Where the router sits: the quote's TTL is what the probe had left when it got
                    // there. A router without a route answers every probe that reaches it, whatever TTL
                    // it was sent with, so the unreachable for a TTL-6 probe may come from hop 1.
                    let at = Self.placedTTLIndex(cell: cell, ttlIndex: ttlIndex, table: table)
                    if at < unreachableTTLIndex {
                        unreachableTTLIndex = at
                        unreachableCell = at == ttlIndex ? -1 : cell
                    }
                default:
                    break
                }
            }
        }
        // Where the trace stops: the destination's own answer wins (the port's state is what the trace
        // is for); otherwise the first unreachable. Probes past it stop; probes below it settle.
        if destinationTTLIndex != Int.max {
            if stopReason != .destination || destinationTTLIndex < stopTTLIndex {
                stopTTLIndex = destinationTTLIndex
                stopReason = .destination
            }
        } else if unreachableTTLIndex < stopTTLIndex
            || (unreachableTTLIndex == stopTTLIndex && stopReason != .unreachable)
        {
            // (At the last TTL too: an unreachable at -m is why the trace stops, not the TTL limit.)
            stopTTLIndex = unreachableTTLIndex
            stopReason = .unreachable
        }
    }

    /// The TTL index an ICMP error recorded in `cell` (a probe sent at `ttlIndex`) comes from: the
    /// router is `sent − quoted + 1` hops out. A quote of 0 or 1, or one above what was sent (a router
    /// that zeroes or rewrites it), places it where it was sent; one before the first TTL, at the first.
    static func placedTTLIndex(cell: Int, ttlIndex: Int, table: ProbeTable) -> Int {
        let quoted = table.quotedTTL(cell)
        let sent = Int(table.grid.firstTTL) + ttlIndex
        guard quoted > 1, quoted <= sent else { return ttlIndex }
        return max(0, sent - quoted + 1 - Int(table.grid.firstTTL))
    }

    // MARK: settling

    /// The next TTL in order, when every column of it is settled and it is not past where the trace
    /// stops; nil while it waits on a probe (or when every TTL is settled).
    func nextSettled(slot: Int, table: ProbeTable) -> SettledRow? {
        guard resolvedTTLs <= stopTTLIndex else { return nil }
        let ttlIndex = resolvedTTLs
        let row = table.row(slot: slot, ttlIndex: ttlIndex)
        var answeredAny = false
        var silentAny = false
        for column in 0..<table.samples {
            switch table.columnState(row: row, column: column) {
            case .answered: answeredAny = true
            case .silent: silentAny = true
            case .pending: return nil
            }
        }
        return SettledRow(ttlIndex: ttlIndex, answeredAny: answeredAny, silentAny: silentAny,
            refused: table.refused(slot: slot, ttlIndex: ttlIndex))
    }

    /// Settles the next TTL (`nextSettled`'s), with what it says about the path past it. A refused TTL
    /// counts for nothing: pass nil. The gap counts silent TTLs past the last one that may be alive:
    /// answered, silent but alive, or at a position nothing is known of yet. Those also move the
    /// look-ahead (`frontier`), so a trace never waits on TTLs it will not send.
    mutating func settle(_ ttlIndex: Int, as found: SettledTTL?) {
        switch found {
        case nil:
            break
        case .answered:
            silentRun = 0
        case .silentButAlive, .unexplored:
            silentRun = 0
            frontier = max(frontier, ttlIndex)
            markUncounted(ttlIndex)
        case .silent:
            silentRun += 1
        }
        resolvedTTLs += 1
    }

    /// The trace is known to go on at least as far as `ttlIndex` (a silent hop asked again where it may
    /// be alive behind a rate limit): the gap limit's look-ahead may go past it meanwhile.
    mutating func extendFrontier(to ttlIndex: Int) { frontier = max(frontier, ttlIndex) }

    /// After a TTL was settled (and reported): the trace stops at it when it ends a run of `gapLimit`
    /// silent TTLs past everything known to be alive.
    mutating func stopAtGapIfDue(rules: TraceRules) {
        let gap = rules.gapLimit
        let resolved = resolvedTTLs
        if gap > 0 && silentRun >= gap && frontier < resolved - gap && resolved - 1 < stopTTLIndex {
            stopTTLIndex = resolved - 1
            stopReason = .gapLimit
        }
    }

    /// After settling what it could: finished when every TTL up to its stop is settled, or when it has
    /// nothing in flight and may send nothing (only the gap's look-ahead holds it back, so the silent
    /// TTLs it has settled are as far as the gap limit lets it go: it stops there); else continuing.
    mutating func finishOrContinue(slot: Int, table: ProbeTable, rules: TraceRules) -> TraceStep {
        if resolvedTTLs > stopTTLIndex { return .finished }
        if !canSend(samples: table.samples, rules: rules) && !hasOutstanding(slot: slot, table: table) {
            stopTTLIndex = resolvedTTLs - 1
            stopReason = .gapLimit
            return .finished
        }
        return .continuing
    }

    /// True when some probe of the trace at or above its first unsettled TTL is in flight or queued.
    func hasOutstanding(slot: Int, table: ProbeTable) -> Bool {
        let lastTTL = min(stopTTLIndex, lastProbedTTLIndex(samples: table.samples))
        guard lastTTL >= resolvedTTLs else { return false }
        return table.waiting(slot: slot, ttlIndexes: resolvedTTLs...lastTTL)
    }

    /// The last TTL index a finished (not interrupted) trace reports: every settled TTL and every one
    /// a probe went to, up to where it stops.
    func lastReportedTTLIndex(samples: Int) -> Int {
        let sentTTL = nextProbe > 0 ? (nextProbe - 1) / samples : -1
        return min(stopTTLIndex, max(resolvedTTLs - 1, sentTTL))
    }

    // MARK: silence the gap did not count

    mutating func markUncounted(_ ttlIndex: Int) {
        let bit = UInt64(1) << UInt64(ttlIndex & 63)
        switch ttlIndex >> 6 {
        case 0: uncounted.0 |= bit
        case 1: uncounted.1 |= bit
        case 2: uncounted.2 |= bit
        default: uncounted.3 |= bit
        }
    }

    func isUncounted(_ ttlIndex: Int) -> Bool {
        let word = switch ttlIndex >> 6 {
        case 0: uncounted.0
        case 1: uncounted.1
        case 2: uncounted.2
        default: uncounted.3
        }
        return word >> UInt64(ttlIndex & 63) & 1 == 1
    }
}
