// Continuous mode's `--changes`: what changed between rounds of a target × port, each change with its
// before and after. A path change is a round whose responder sequence contradicts the current path at a
// TTL where both know the router (a silent hop is a wildcard, as in per-path statistics, so rate-limited
// or lost answers never read as a new path); reachability and port state are the destination's. Both must
// hold for `confirmRounds` rounds in a row before they count, so one lost SYN-ACK is loss, not an outage.
// Loss and latency shifts compare windows of `windowRounds` rounds: the loss at the window's end hop (the
// destination, or the last hop heard) through Wilson intervals that must not overlap, and its median RTT
// by the report's rise thresholds; each window is compared with the one before it. Per target × port the
// state is of fixed size (one window of per-hop statistics and the last one closed), whatever the run's
// length.

import FastTraceCore
import FastTraceWire

/// What kind of change.
public enum ChangeKind: String, Sendable, Equatable, CaseIterable {
    /// The responder sequence changed.
    case path
    /// The destination stopped or started answering.
    case reachability
    /// The destination answers with another port state (open to closed, …).
    case state
    /// The loss at the end hop moved, significantly.
    case loss
    /// The median RTT at the end hop moved, significantly.
    case latency
}

/// A path: the responder at each TTL from the first (nil: silent), and its id (`PathStats.id`'s hash).
public struct PathValue: Sendable, Equatable {
    public var responders: [IPAddress?]
    /// The destination answered at the end of it.
    public var reachesDestination: Bool
    public var id: String { PathStats.id(of: responders) }
    /// Hops up to the last that answered.
    public var hopCount: Int { (responders.lastIndex { $0 != nil } ?? -1) + 1 }
}

/// A window's loss at its end hop.
public struct LossValue: Sendable, Equatable {
    /// Rounds of the window, first and last (1-based).
    public var rounds: ClosedRange<Int>
    /// The end hop (TTL) and whether it is the destination.
    public var endTTL: UInt8?
    public var endIsDestination: Bool
    /// Probes settled and lost there.
    public var sent: Int
    public var lost: Int
    /// Where loss on the path starts, in this window (the report's analysis), if it is placed: somewhere in
    /// `startTTL...startTTLLatest` (equal when the counts place it exactly; with few rounds a range).
    public var startTTL: UInt8?
    public var startTTLLatest: UInt8?
    public var lossPercent: Double { sent == 0 ? 0 : 100 * Double(lost) / Double(sent) }
}

/// A window's median RTT at its end hop.
public struct LatencyValue: Sendable, Equatable {
    public var rounds: ClosedRange<Int>
    public var endTTL: UInt8?
    /// Median RTT, µs, and the samples it rests on.
    public var p50Micros: UInt32?
    public var samples: Int
    /// The hop that adds the most persisting latency in this window, and how much (µs).
    public var riseTTL: UInt8?
    public var riseMicros: UInt32?
}

/// One hop of a window of rounds, as the metrics show it: what is left of the window's statistics once it
/// is closed (a few numbers, not its histograms).
public struct HopWindow: Sendable, Equatable {
    public var ttl: UInt8
    /// Probes settled and lost at this TTL.
    public var sent: Int
    public var lost: Int
    /// Median and 95th percentile RTT, µs.
    public var p50: UInt32?
    public var p95: UInt32?
    /// Median RTT this hop adds that persists to the end (the report's latency rise), µs; 0 where none.
    public var addedMicros: UInt32
    /// The report's mark for the loss here: `path` only where loss starts or goes on to the destination;
    /// `noReply` where nothing ever answered (a silent router, or TTLs past the last answer).
    public var mark: LossMark = .none
    /// Its loss does not persist to later hops (the report's `limited`).
    public var limited: Bool { mark == .limited }

    /// The hops of a window up to its destination, with the report's analysis.
    public static func summarize(_ hops: [HopStats], destinationTTL: UInt8?,
        thresholds: Interpretation.Thresholds = Interpretation.Thresholds()) -> [HopWindow]
    {
        let analysis = Interpretation(hops, destinationTTL: destinationTTL, thresholds: thresholds)
        return hops.filter { $0.sent > 0 && (destinationTTL == nil || $0.ttl <= destinationTTL!) }.map { hop in
            HopWindow(ttl: hop.ttl, sent: hop.sent, lost: hop.lost, p50: hop.p50, p95: hop.p95,
                addedMicros: analysis.latencyRises.first { $0.ttl == hop.ttl }?.addedMicros ?? 0,
                mark: analysis.hops.first { $0.ttl == hop.ttl }?.loss ?? .none)
        }
    }
}

/// The before or after of a change.
public enum ChangeValue: Sendable, Equatable {
    case path(PathValue)
    case reachability(reached: Bool, state: PortState)
    case loss(LossValue)
    case latency(LatencyValue)
}

/// One change of one target × port.
public struct ChangeEvent: Sendable, Equatable {
    public var kind: ChangeKind
    /// The round it is reported at, and the first round that showed the new value.
    public var round: Int
    public var sinceRound: Int
    public var request: TraceRequest
    public var method: ProbeMethod
    public var before: ChangeValue
    public var after: ChangeValue
}

/// Watches the rounds of every target × port and says what changed.
public final class ChangeTracker {
    /// Rounds a new path or destination state must hold before it is reported.
    public let confirmRounds: Int
    /// Rounds per loss and latency window.
    public let windowRounds: Int
    public let thresholds: Interpretation.Thresholds
    public let firstTTL: UInt8

    struct Window {
        var first: Int
        var rounds = 0
        var hops: [HopStats] = []
        var destinationTTL: UInt8?
    }

    struct Target {
        var path: PathValue?
        var pathCandidate: PathValue?
        var pathSince = 0, pathSeen = 0
        var destination: (reached: Bool, state: PortState)?
        var destinationCandidate: (reached: Bool, state: PortState)?
        var destinationSince = 0, destinationSeen = 0
        var rounds = 0
        var window: Window
        /// The last window closed: its loss and latency, and its hops as the metrics show them (its
        /// statistics themselves are dropped: a target × port keeps one window's histograms, not two).
        var closedHops: [HopWindow]?
        var closedLoss: LossValue?
        var closedLatency: LatencyValue?
        /// Each of the last `windowRounds` rounds, oldest first: the destination's TTL (0: not reached) and
        /// the deepest TTL anything answered at (0: none).
        var recent: [(destination: UInt8, deepest: UInt8)] = []
        /// Path changes confirmed so far.
        var pathChanges = 0
    }

    private var targets: [Int: Target] = [:]

    public init(confirmRounds: Int = 2, windowRounds: Int = 10, firstTTL: UInt8 = 1,
        thresholds: Interpretation.Thresholds = Interpretation.Thresholds())
    {
        precondition(confirmRounds >= 1 && windowRounds >= 1)
        self.confirmRounds = confirmRounds
        self.windowRounds = windowRounds
        self.firstTTL = firstTTL
        self.thresholds = thresholds
    }

    /// Target × ports watched.
    public var count: Int { targets.count }

    /// Forgets a target × port (it left the list).
    public func remove(_ index: Int) { targets[index] = nil }

    /// The hops of the target × port's last closed window (its current one, so far, before any closed).
    public func window(_ index: Int) -> [HopWindow]? {
        guard let target = targets[index] else { return nil }
        if let closed = target.closedHops { return closed }
        return HopWindow.summarize(target.window.hops, destinationTTL: target.window.destinationTTL,
            thresholds: thresholds)
    }

    /// The least TTL the destination answered at over the target × port's last `windowRounds` rounds, if it
    /// answered in any. One round under loss can see the destination only at a higher TTL (its probe at the
    /// true distance lost, a later one answered); the least over a few rounds is the path's length, and a
    /// path that really grew shows once the shorter rounds have left the window.
    public func leastDestinationTTL(_ index: Int) -> UInt8? {
        targets[index]?.recent.lazy.map(\.destination).filter { $0 > 0 }.min()
    }

    /// The deepest TTL anything answered at over the target × port's last `windowRounds` rounds, if
    /// anything did: for a destination that never answers, how far the path is heard (one round under loss
    /// can miss its last router).
    public func deepestAnswer(_ index: Int) -> UInt8? {
        targets[index]?.recent.lazy.map(\.deepest).filter { $0 > 0 }.max()
    }

    /// Path changes confirmed so far for a target × port (each a `path` event).
    public func pathChanges(_ index: Int) -> Int { targets[index]?.pathChanges ?? 0 }

    /// The current path of a target × port, once known.
    public func path(_ index: Int) -> PathValue? { targets[index]?.path }

    /// Adds a finished round; returns what changed with it. Interrupted rounds are left out (they say
    /// nothing of the path).
    public func add(_ trace: TraceResult) -> [ChangeEvent] {
        guard trace.stopReason != .interrupted else { return [] }
        let index = trace.request.index
        var target = targets[index] ?? Target(window: Window(first: 1))
        target.rounds += 1
        let round = target.rounds
        var events: [ChangeEvent] = []
        func event(_ kind: ChangeKind, since: Int, _ before: ChangeValue, _ after: ChangeValue) {
            events.append(ChangeEvent(kind: kind, round: round, sinceRound: since, request: trace.request,
                method: trace.method, before: before, after: after))
        }

        // The path.
        let sequence = RoundStats.sequence(trace, firstTTL: firstTTL)
        let observed = PathValue(responders: sequence, reachesDestination: trace.destinationTTL != nil)
        if let current = target.path, !PathStats.compatible(current.responders, sequence) {
            if let candidate = target.pathCandidate, PathStats.compatible(candidate.responders, sequence) {
                target.pathCandidate = Self.merged(candidate, observed)
                target.pathSeen += 1
            } else {
                target.pathCandidate = observed
                target.pathSince = round
                target.pathSeen = 1
            }
            if target.pathSeen >= confirmRounds, let new = target.pathCandidate {
                event(.path, since: target.pathSince, .path(current), .path(new))
                target.pathChanges += 1
                target.path = new
                target.pathCandidate = nil
            }
        } else {
            target.path = target.path.map { Self.merged($0, observed) } ?? observed
            target.pathCandidate = nil
        }

        // The destination.
        let now = (reached: trace.reached, state: trace.state)
        if let current = target.destination, current != now {
            if let candidate = target.destinationCandidate, candidate == now {
                target.destinationSeen += 1
            } else {
                target.destinationCandidate = now
                target.destinationSince = round
                target.destinationSeen = 1
            }
            if target.destinationSeen >= confirmRounds {
                event(current.reached != now.reached ? .reachability : .state, since: target.destinationSince,
                    .reachability(reached: current.reached, state: current.state),
                    .reachability(reached: now.reached, state: now.state))
                target.destination = now
                target.destinationCandidate = nil
            }
        } else {
            target.destination = now
            target.destinationCandidate = nil
        }

        target.recent.append((trace.destinationTTL ?? 0, trace.hops.last { $0.firstResponder != nil }?.ttl ?? 0))
        if target.recent.count > windowRounds { target.recent.removeFirst() }

        // The window.
        target.window.rounds += 1
        addHops(trace, to: &target.window.hops, firstTTL: firstTTL)
        if let ttl = trace.destinationTTL {
            target.window.destinationTTL = min(target.window.destinationTTL ?? ttl, ttl)
        }
        if target.window.rounds >= windowRounds {
            let (loss, latency) = summary(target.window)
            if let before = target.closedLoss, lossShifted(before, loss) {
                event(.loss, since: loss.rounds.lowerBound, .loss(before), .loss(loss))
            }
            if let before = target.closedLatency, latencyShifted(before, latency) {
                event(.latency, since: latency.rounds.lowerBound, .latency(before), .latency(latency))
            }
            target.closedHops = HopWindow.summarize(target.window.hops, destinationTTL: target.window.destinationTTL,
                thresholds: thresholds)
            target.closedLoss = loss
            target.closedLatency = latency
            target.window = Window(first: round + 1)
        }
        targets[index] = target
        return events
    }

    /// A window's loss and latency at its end hop.
    func summary(_ window: Window) -> (LossValue, LatencyValue) {
        let analysis = Interpretation(window.hops, destinationTTL: window.destinationTTL, thresholds: thresholds)
        let rounds = window.first...(window.first + window.rounds - 1)
        let end = analysis.endTTL.flatMap { ttl in window.hops.first { $0.ttl == ttl } }
        let loss = LossValue(rounds: rounds, endTTL: analysis.endTTL, endIsDestination: analysis.endIsDestination,
            sent: end?.sent ?? 0, lost: end?.lost ?? 0, startTTL: analysis.lossStart?.ttl, startTTLLatest: analysis.lossStart?.latestTTL)
        let rise = analysis.latencyRises.first
        let latency = LatencyValue(rounds: rounds, endTTL: analysis.endTTL, p50Micros: end?.p50,
            samples: end?.rttCount ?? 0, riseTTL: rise?.ttl, riseMicros: rise?.addedMicros)
        return (loss, latency)
    }

    /// The loss moved: the two windows' Wilson intervals do not overlap (and both were measured at the
    /// same kind of end: the destination both times, or a router both times).
    func lossShifted(_ a: LossValue, _ b: LossValue) -> Bool {
        guard a.sent > 0, b.sent > 0, a.endIsDestination == b.endIsDestination else { return false }
        let x = wilson(a.lost, a.sent, thresholds.z), y = wilson(b.lost, b.sent, thresholds.z)
        return x.high < y.low || y.high < x.low
    }

    /// The median moved by at least the rise thresholds, with enough samples on both sides.
    func latencyShifted(_ a: LatencyValue, _ b: LatencyValue) -> Bool {
        guard let x = a.p50Micros, let y = b.p50Micros, a.samples >= thresholds.minSamples,
            b.samples >= thresholds.minSamples
        else { return false }
        let delta = x > y ? x - y : y - x
        return delta >= thresholds.minRiseMicros && Double(delta) >= thresholds.minRiseRatio * Double(min(x, y))
    }

    /// `a` with the hops it did not know filled in from `b` (see `PathStats.merge`).
    static func merged(_ a: PathValue, _ b: PathValue) -> PathValue {
        PathValue(responders: PathStats.merge(a.responders, reaches: a.reachesDestination, b.responders,
            reaches: b.reachesDestination), reachesDestination: a.reachesDestination || b.reachesDestination)
    }
}
