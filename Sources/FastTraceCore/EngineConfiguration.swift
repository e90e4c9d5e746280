// What a run is given and what it gives back: the engine's configuration (`EngineConfiguration`), the
// summary a run returns (`RunSummary`, with `SendLimits`, what held its sending back) and the progress
// snapshots it reports (`RunProgress`). Plain values; the scheduler loop that uses them is Engine.swift.

import FastTraceWire

/// How a run probes.
public struct EngineConfiguration: Sendable, Equatable {
    /// First TTL probed (`-f`).
    public var firstTTL: UInt8 = 1
    /// Last TTL probed (`-m`).
    public var maxTTL: UInt8 = 30
    /// Probes per TTL (`-q`): the columns of a hop line.
    public var probesPerHop: Int = 3
    /// Times a probe that got no answer is sent again before its column is `*` (`--retries`).
    /// `probesPerHop × (1 + retries)` must fit the tag's attempt field (8).
    public var retries: Int = 0
    /// Most times a silent hop is asked again later, when a router answers ICMP at that position for
    /// other traces (so the silence may be a rate limit). Capped by the attempts left in the tag:
    /// `probesPerHop × (1 + retries + reasks) ≤ 8`; nil picks the most that fit, up to 2.
    public var reasks: Int? = nil
    /// How long after a silent hop's last timeout its first re-ask is sent (each further one waits
    /// twice as long). Linux routers refill their ICMP budget at one message a second.
    public var reaskDelayNanos: UInt64 = 1_000_000_000
    /// How long to wait for a probe's reply (`-w`), in ns.
    public var waitNanos: UInt64 = 3_000_000_000
    /// A probe counts as answered when its reply's kernel timestamp is within `waitNanos` of the send,
    /// however late user space reads it: a timeout is final only once the transport reports it has
    /// delivered everything stamped before the deadline. If the receive path lags by more than this,
    /// the timeout is taken anyway (so a stalled receiver cannot hang the run).
    public var maxReceiveLagNanos: UInt64 = 2_000_000_000
    /// How long a freed slot rests before another trace takes it, beyond the wait time: replies to its
    /// last occupant that arrive meanwhile are recognised as late, not taken for the new occupant's.
    public var slotQuarantineExtraNanos: UInt64 = 500_000_000
    /// Source port of every probe (`--sport`).
    public var sourcePort: UInt16 = 33434
    /// IP type of service (`-t`).
    public var tos: UInt8 = 0
    /// Total IP packet length (`-l`), 40...1500.
    public var packetLength: Int = 40
    /// What to send (`-T`/`-S`, `-A`, `-E`): the engine writes and reads probes through its kind.
    public var method: ProbeMethod = .tcp(.syn)
    /// Set the IP don't-fragment bit (`-F`).
    public var dontFragment: Bool = false
    /// Hold ICMP errors to the IPv4 ID they quote (16 more MAC bits). Off (`--track-port`) for paths
    /// that rewrite the IP ID: the quoted TCP header (ports, sequence number) still names the probe.
    public var matchQuotedIPID: Bool = true
    /// Accept ICMP errors whose quote names another destination than the trace's (a DNAT that leaves
    /// quotes untranslated; reported as `dnat`). Off (`--no-dnat-strict`): they are refused (foreign).
    public var acceptTranslatedQuotes: Bool = true
    /// Probes per second across the whole run (`--rate`).
    public var rate: Int = 2000
    /// At most this many traces will be requested, when the caller knows (one target: 1): the probe
    /// tables are sized for no more slots than that. More requests still run (slots are then reused
    /// after their rest), only with fewer in flight. nil sizes them for `maxInFlight`.
    public var expectedTraces: Int? = nil
    /// Stop a trace after this many consecutive silent TTLs; 0 disables (`--gap`).
    public var gapLimit: Int = 0
    /// Most traces in flight at once (`--max-in-flight`), up to `ProbeTag.slotCount`.
    public var maxInFlight: Int = 4096
    /// TTLs a trace may have probes outstanding for at once.
    public var window: Int = 8
    /// Least time between two probes of one trace, in ns, so a destination sees one SYN of a 4-tuple
    /// at a time and no router gets a trace's probes in a burst.
    public var probeSpacingNanos: UInt64 = 1_000_000
    /// How often the scheduler wakes to send, take in replies and expire timeouts, in ns (see
    /// `nextWake`).
    public var pollIntervalNanos: UInt64 = 1_000_000
    /// Continuous mode's `pollIntervalNanos`: long enough that a turn sends about 32 probes at the rate cap,
    /// 1 to 10 ms. A trace there has no one waiting for it, so its probes may go out a turn apart (one per
    /// trace per turn), and every turn saved is a wake-up a busy host does not pay (about 40 µs each in
    /// the lab, measured between rounds). Timeouts expire, and rounds start, up to a turn late.
    public static func continuousPollNanos(rate: Int) -> UInt64 {
        min(10_000_000, max(1_000_000, 32 * 1_000_000_000 / UInt64(max(rate, 1))))
    }
    /// With nothing in flight and a source that says when its next request is due (continuous mode
    /// between rounds), the scheduler sleeps until then, but looks at least this often (for an
    /// interrupt, and output waiting for names), ns.
    public var idleWakeNanos: UInt64 = 100_000_000

    public init() {}

    /// Re-asks per silent hop this configuration allows.
    public var effectiveReasks: Int {
        reasks ?? max(0, min(2, ProbeTag.attemptCount / probesPerHop - 1 - retries))
    }

    /// A reason this configuration cannot run, or nil.
    public var problem: String? {
        if firstTTL < 1 { return "first TTL must be at least 1" }
        if maxTTL < firstTTL { return "max TTL (\(maxTTL)) is below the first TTL (\(firstTTL))" }
        if probesPerHop < 1 || probesPerHop > ProbeTag.attemptCount {
            return "probes per hop must be 1...\(ProbeTag.attemptCount)"
        }
        if retries < 0 || probesPerHop * (1 + retries) > ProbeTag.attemptCount {
            return "probes per hop × (1 + retries) must be at most \(ProbeTag.attemptCount)"
        }
        if let reasks, reasks < 0 || probesPerHop * (1 + retries + reasks) > ProbeTag.attemptCount {
            return "probes per hop × (1 + retries + re-asks) must be at most \(ProbeTag.attemptCount)"
        }
        if waitNanos == 0 { return "wait time must be positive" }
        let kind = method.kind
        if packetLength < kind.minimumLength || packetLength > kind.maximumLength {
            return "packet length must be \(kind.minimumLength)...\(kind.maximumLength)"
        }
        if rate < 1 { return "rate must be at least 1 probe per second" }
        if gapLimit < 0 { return "gap limit must be 0 (off) or positive" }
        if maxInFlight < 1 || maxInFlight > ProbeTag.slotCount {
            return "traces in flight must be 1...\(ProbeTag.slotCount)"
        }
        if window < 1 { return "window must be at least 1" }
        return nil
    }
}

/// What a run did, for the summary line.
public struct RunSummary: Sendable, Equatable {
    /// Traces finished.
    public var traces = 0
    /// Traces whose destination answered.
    public var reached = 0
    /// Probes sent.
    public var probesSent: UInt64 = 0
    /// What the receive path counted.
    public var dispatch = DispatchCounters()
    /// What the transport counted.
    public var transport = TransportCounters()
    /// Wall time of the run in ns (engine clock).
    public var elapsedNanos: UInt64 = 0
    /// True when the run was cancelled before every trace finished.
    public var cancelled = false
    /// Traces cut short by the cancellation (reported with stop reason `interrupted`).
    public var interrupted = 0
    /// Hops the text marks `[rate-limited]`: a probe there went unanswered by a router the run caught
    /// rate-limiting, whether or not the hop's other probes were answered.
    public var rateLimitedHops = 0
    /// Hops with no answer where rate limiting is likely but the router is not known
    /// (`likely-rate-limited`).
    public var likelyRateLimitedHops = 0
    /// Positions (TTL after a given router) where a router was caught rate-limiting.
    public var rateLimitedPositions = 0
    /// Traces reported with plain silence (`none`) before any rate limit was caught, in a run that
    /// caught one later: their `*` may be rate limits the run did not know of yet (0 otherwise).
    public var reportedBeforeLimits = 0
    /// Hops asked again later because a router answers at that position for other traces.
    public var reasksSent: UInt64 = 0
    /// Traces a router's destination unreachable stopped (JSON `stop` `unreachable`), of those not reached:
    /// their state is `filtered` (`filtered` for UDP too), and the summary names how they were stopped.
    public var unreachable = 0
    /// Probes the kernel refused to send (not in `probesSent`: they never left).
    public var probesRefused: UInt64 = 0
    /// Traces stopped because the kernel refused their probes (`not-sent`; state `unknown`, not counted
    /// in `unknown`, which is for interrupted traces).
    public var notSent = 0
    /// Traces by the port state they found (`reached` = open + closed + unfiltered; unknown: interrupted
    /// before the destination said anything).
    public var open = 0, closed = 0, unfiltered = 0, filtered = 0, openFiltered = 0, unknown = 0
    /// What held the send rate below `--rate`, as time over the run.
    public var sendLimits = SendLimits()

    public init() {}

    /// Probes per second over the run (its whole wall time, including the wait for the last replies).
    public var probesPerSecond: Double {
        elapsedNanos == 0 ? 0 : Double(probesSent) / (Double(elapsedNanos) / 1e9)
    }
}

/// Why probes did not go out faster: the run's wall time, split by what the scheduler was waiting for
/// at the end of each turn (one turn a millisecond; the split is the share of turns, weighted by
/// their length).
public struct SendLimits: Sendable, Equatable {
    /// In the turn's send calls (writing the probes and handing them to the kernel, and whatever the
    /// kernel does for them in the caller's time: on a host that forwards what it sends, as the lab's
    /// namespaces do, the forwarding too).
    public var sendingNanos: UInt64 = 0
    /// Probes were ready and the token bucket was empty: held to `--rate`.
    public var rateNanos: UInt64 = 0
    /// Tokens to spare, nothing ready to send, `--max-in-flight` traces in flight.
    public var inFlightCapNanos: UInt64 = 0
    /// Tokens to spare, room for more traces, but no target ready: the list was being read or a name
    /// looked up.
    public var listNanos: UInt64 = 0
    /// Tokens to spare, room for more traces, but every free slot still resting after its last trace
    /// (so that a late reply to it is not taken for the next occupant's).
    public var slotsNanos: UInt64 = 0
    /// Tokens to spare and every trace in flight waiting: on replies or timeouts (its TTL window is
    /// full, or it is settling its last TTLs), or on the spacing between one trace's probes.
    public var repliesNanos: UInt64 = 0

    public init() {}

    /// The reasons a turn can end on.
    public enum Reason: Sendable { case sending, rate, inFlightCap, slots, list, replies }

    /// Adds `nanos` to `reason`.
    public mutating func add(_ nanos: UInt64, _ reason: Reason) {
        switch reason {
        case .sending: sendingNanos &+= nanos
        case .rate: rateNanos &+= nanos
        case .inFlightCap: inFlightCapNanos &+= nanos
        case .slots: slotsNanos &+= nanos
        case .list: listNanos &+= nanos
        case .replies: repliesNanos &+= nanos
        }
    }

    /// All the time counted.
    public var totalNanos: UInt64 { sendingNanos &+ rateNanos &+ inFlightCapNanos &+ slotsNanos &+ listNanos &+ repliesNanos }
}

/// A snapshot of a run in progress.
public struct RunProgress: Sendable, Equatable {
    /// Traces finished so far.
    public var finished: Int
    /// Traces in flight.
    public var inFlight: Int
    /// Probes sent so far.
    public var probesSent: UInt64
    /// Send rate over the last progress interval.
    public var probesPerSecond: Double
}
