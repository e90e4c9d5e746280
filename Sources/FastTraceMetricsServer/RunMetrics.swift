// The run's metrics for Prometheus (`--metrics-listen`), kept in swift-prometheus's registry: per target ×
// port × protocol (up, state, hop count, path id, destination RTT histogram, rounds), per hop labelled by
// TTL, never by responder address, so the series stay bounded however often paths change (loss ratio,
// RTT quantiles, latency added), and the engine's counters. Updated on the engine's thread once per
// finished round and about once a second for the counters, never per packet; the HTTP server reads the
// registry on its own thread (the registry copies its store under a lock and renders outside it).
//
// Per-target series live in `shardCount` registries, a target's in the one its index picks: the registry
// copies a metric name's whole table of series to add or remove one (copy-on-write of the family's
// dictionary), so one registry made the n-th series of a name cost O(n) and a list's first round
// O(n²) (1,428 targets: 36 s of CPU, the engine held up for 40 s). `render` merges the registries'
// exposition, one HELP and TYPE per name and its samples together, as one registry would write it.

import FastTraceCore
import FastTraceStats
import FastTraceWire
import Prometheus

/// What `/metrics` shows, and the updates that feed it.
public final class RunMetrics: @unchecked Sendable {
    // @unchecked Sendable: the registry is thread-safe; every other field is touched on the engine's
    // thread only (the HTTP server only calls `render` and `countBadRequest`, which use the registry).

    /// The registry of the run-wide series (counters, gauges labelled by vantage only).
    public let registry: PrometheusCollectorRegistry
    /// The registries of per-target series: target index `i` lives in `shards[i % shardCount]`.
    private let shards: [PrometheusCollectorRegistry]
    /// How many registries the per-target series are spread over.
    public static let shardCount = 64
    /// The vantage label on every series.
    public let vantage: String

    /// Destination RTT buckets, seconds: doubling from 50 µs (smokeping_prober's), to 26 s.
    public static let rttBuckets: [Double] = (0..<20).map { 0.000_05 * Double(1 << $0) }
    /// RTT quantiles shown per hop, as `fasttrace_hop_rtt_<label>_seconds` (gauges: a `quantile` label
    /// belongs to summaries only), in `HopWindow`'s order (p50, p95).
    public static let hopQuantiles: [(label: String, q: Double)] = [("p50", 0.5), ("p95", 0.95)]
    /// Port states a target's `state` series are kept for.
    static let states: [PortState] = [.open, .closed, .unfiltered, .filtered, .openFiltered, .reachable]

    struct HopSeries {
        var loss: Gauge
        var rtt: [Gauge]
        var added: Gauge
        var limited: Gauge
        var pathLoss: Gauge
        var noReply: Gauge
    }

    struct TargetSeries {
        /// The registry its series (and its hops') are in.
        var registry: PrometheusCollectorRegistry
        var labels: [(String, String)]
        var up: Gauge
        var states: [Gauge]
        var hops: Gauge
        var pathInfo: Gauge?
        var pathID: String?
        var pathChanges: Counter
        /// The tracker's count of path changes when last recorded.
        var pathChangesSeen = 0
        var rounds: Counter
        var reachedRounds: Counter
        var rtt: ValueHistogram
        var hopSeries: [UInt8: HopSeries] = [:]
    }

    private var targets: [Int: TargetSeries] = [:]
    private let probesSent: Counter
    private let repliesMatched: Counter
    private let repliesRejected: [(reason: String, counter: Counter)]
    private let ringDrops: Counter
    private let sendErrors: Counter
    private let rateLimitedPositions: Gauge
    private let rateLimitedHops: Counter
    private let roundsTotal: Counter
    private let targetCount: Gauge
    private let badRequests: Counter
    private let runErrors: [String: Counter]
    /// Last counter values seen (Prometheus counters only go up: the registry's are advanced by the
    /// difference).
    private var last = RunSummary()

    /// Reasons a reply is rejected, as `reason` labels, with how each is read off the counters.
    static let rejectReasons = ["malformed", "foreign", "forged", "ip_id_rewritten", "stale", "premature", "duplicate"]

    /// The counters of `rejectReasons`, in their order.
    static func rejected(_ c: DispatchCounters) -> [UInt64] {
        [c.malformed, c.foreign, c.forged, c.ipIDRewritten, c.stale, c.premature, c.duplicates]
    }
    /// Run errors by `reason`.
    public enum RunError: String, CaseIterable, Sendable {
        /// A line of the target list that could not be used.
        case skippedLine = "skipped_line"
        /// A target that could not be traced (no route, unresolvable name).
        case skippedTarget = "skipped_target"
        /// The target list could not be re-read (SIGHUP); the old one was kept.
        case reloadFailed = "reload_failed"
    }

    public init(vantage: String) {
        self.vantage = vantage
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        shards = (0..<Self.shardCount).map { _ in PrometheusCollectorRegistry() }
        let v = [("vantage", vantage)]
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "fasttrace", metricName: name,
                unitName: "total", helpText: help), labels: v + labels)
        }
        probesSent = counter("probes_sent", "Probes sent (every try, retry and re-ask).")
        repliesMatched = counter("replies_matched", "Replies matched to a probe of this run and recorded.")
        repliesRejected = Self.rejectReasons.map { reason in
            (reason, counter("replies_rejected", "Packets the reply filter let through that were not recorded, "
                + "by reason.", [("reason", reason)]))
        }
        ringDrops = counter("ring_drops", "Packets the kernel dropped because the receive ring was full.")
        sendErrors = counter("send_errors", "Probes the kernel refused to send.")
        rateLimitedHops = counter("rate_limited_hops", "Hops of finished rounds whose silence was put down to "
            + "a router's ICMP rate limit (rate-limited or likely-rate-limited).")
        roundsTotal = counter("rounds", "Rounds finished, all targets together.")
        badRequests = counter("http_bad_requests", "HTTP requests to the metrics endpoint refused as malformed "
            + "(answered 400) or for another path or method (404, 405).")
        var errors: [String: Counter] = [:]
        for reason in RunError.allCases {
            errors[reason.rawValue] = counter("run_errors", "Run errors by reason: list lines and targets "
                + "that could not be traced, target lists that could not be re-read.", [("reason", reason.rawValue)])
        }
        runErrors = errors
        rateLimitedPositions = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "fasttrace",
            metricName: "rate_limited_positions", unitName: "", helpText: "Positions (TTL on a path) where the "
                + "run caught a router rate-limiting its ICMP answers."), labels: v)
        targetCount = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "fasttrace",
            metricName: "targets", unitName: "", helpText: "Target x port x protocol combinations in the list."),
            labels: v)
    }

    /// The exposition text (what `/metrics` answers): every registry's, each metric name once with all its
    /// samples together.
    public func render() -> [UInt8] {
        Self.merge([registry.emitToBuffer()] + shards.map { $0.emitToBuffer() })
    }

    /// Merges exposition texts: per metric name the first text's `# HELP` and `# TYPE` lines, then every
    /// text's samples of that name, names in the order they first appear.
    static func merge(_ texts: [[UInt8]]) -> [UInt8] {
        var order: [[UInt8]] = []
        var heads: [[UInt8]: [UInt8]] = [:]
        var samples: [[UInt8]: [UInt8]] = [:]
        let hash = UInt8(ascii: "#"), newline = UInt8(ascii: "\n"), space = UInt8(ascii: " ")
        for text in texts {
            var current: [UInt8] = []
            var headerIsNew = false
            var start = 0
            while start < text.count {
                let end = text[start...].firstIndex(of: newline) ?? text.count
                let line = text[start..<end]
                start = end + 1
                if line.first == hash {
                    // "# HELP name …" or "# TYPE name kind": the third word names the family.
                    let words = line.split(separator: space, maxSplits: 3, omittingEmptySubsequences: false)
                    guard words.count >= 3 else { continue }
                    let name = Array(words[2])
                    if name != current {
                        current = name
                        headerIsNew = heads[name] == nil
                        if headerIsNew {
                            order.append(name)
                            heads[name] = []
                            samples[name] = []
                        }
                    }
                    if headerIsNew { heads[name]!.append(contentsOf: line + [newline]) }
                } else if !line.isEmpty {
                    samples[current, default: []].append(contentsOf: line + [newline])
                }
            }
        }
        var out: [UInt8] = []
        for name in order {
            out.append(contentsOf: heads[name]!)
            out.append(contentsOf: samples[name]!)
        }
        return out
    }

    /// A request to the endpoint was refused.
    public func countBadRequest() { badRequests.increment() }

    /// A run error (see `RunError`).
    public func count(_ error: RunError, by n: Int = 1) {
        if n > 0 { runErrors[error.rawValue]?.increment(by: Int64(n)) }
    }

    /// Target × ports in the list now.
    public func setTargets(_ n: Int) { targetCount.set(Double(n)) }

    /// The engine's counters now (see `TraceEngine.liveCounters`).
    public func update(_ run: RunSummary) {
        func advance(_ counter: Counter, _ now: UInt64, _ before: UInt64) {
            if now > before { counter.increment(by: Int64(now - before)) }
        }
        advance(probesSent, run.probesSent, last.probesSent)
        advance(repliesMatched, run.dispatch.matched, last.dispatch.matched)
        let now = Self.rejected(run.dispatch), before = Self.rejected(last.dispatch)
        for i in repliesRejected.indices { advance(repliesRejected[i].counter, now[i], before[i]) }
        advance(ringDrops, run.transport.ringDrops, last.transport.ringDrops)
        advance(sendErrors, run.transport.sendErrors, last.transport.sendErrors)
        rateLimitedPositions.set(Double(run.rateLimitedPositions))
        last = run
    }

    /// The labels of a target × port × protocol's series.
    public func labels(_ request: TraceRequest, _ method: ProbeMethod) -> [(String, String)] {
        [("vantage", vantage), ("target", request.destination.description),
            ("port", method.hasPorts ? String(request.port) : ""), ("protocol", method.protocolName)]
    }

    /// A round finished, after `tracker` (the run's change tracker) has taken it: the target's series, its
    /// hops' from the tracker's last window of rounds, its hop count and path from the tracker's view.
    public func record(_ trace: TraceResult, tracker: ChangeTracker) {
        roundsTotal.increment()
        let rateLimited = trace.hops.reduce(0) { n, hop in
            n + hop.probes.filter { $0.responder == nil && ($0.silence == .rateLimited || $0.silence == .likelyRateLimited) }
                .count
        }
        if rateLimited > 0 { rateLimitedHops.increment(by: Int64(rateLimited)) }
        guard trace.stopReason != .interrupted else { return }
        let index = trace.request.index
        var series = targets[index] ?? makeSeries(trace.request, trace.method)
        series.rounds.increment()
        series.up.set(trace.reached ? 1.0 : 0.0)
        if trace.reached { series.reachedRounds.increment() }
        for (i, state) in Self.states.enumerated() { series.states[i].set(trace.state == state ? 1.0 : 0.0) }
        // Under loss a round can see the destination only past its distance (the probe at the true TTL lost),
        // or not at all: the least TTL over the last rounds (this one among them) is the path's length.
        series.hops.set(Double(tracker.leastDestinationTTL(index) ?? tracker.deepestAnswer(index) ?? 0))
        if let dest = trace.hops.first(where: { $0.ttl == trace.destinationTTL }),
            let rtt = dest.probes.first(where: { $0.outcome.isFromDestination })?.rttMicros
        {
            series.rtt.record(Double(rtt) / 1e6)
        }
        // The path id: one series per target, for the tracker's current path (silent hops are wildcards,
        // filled in as later rounds answer them), so a lost answer never relabels it; the changes are the
        // tracker's, confirmed over rounds as `--changes` reports them.
        if let id = tracker.path(index)?.id, series.pathID != id {
            if let old = series.pathInfo { series.registry.unregisterGauge(old) }
            let info = series.registry.makeGauge(descriptor: Self.pathInfoName, labels: series.labels + [("path_id", id)])
            info.set(1.0)
            series.pathInfo = info
            series.pathID = id
        }
        let changes = tracker.pathChanges(index)
        if changes > series.pathChangesSeen {
            series.pathChanges.increment(by: Int64(changes - series.pathChangesSeen))
            series.pathChangesSeen = changes
        }
        if let window = tracker.window(index) { updateHops(&series, window) }
        targets[index] = series
    }

    /// A target × port left the list: its series go.
    public func remove(_ index: Int) {
        guard let series = targets.removeValue(forKey: index) else { return }
        let registry = series.registry
        registry.unregisterGauge(series.up)
        series.states.forEach { registry.unregisterGauge($0) }
        registry.unregisterGauge(series.hops)
        if let info = series.pathInfo { registry.unregisterGauge(info) }
        registry.unregisterCounter(series.pathChanges)
        registry.unregisterCounter(series.rounds)
        registry.unregisterCounter(series.reachedRounds)
        registry.unregisterValueHistogram(series.rtt)
        for hop in series.hopSeries.values { unregister(hop, from: registry) }
    }

    static var pathInfoName: MetricNameDescriptor { MetricNameDescriptor(namespace: "fasttrace", subsystem: "target", metricName: "path",
        unitName: "info", helpText: "The path of the latest round, as path_id (a hash of its responder sequence, "
            + "as in the report): always 1, one series per target.") }

    private func makeSeries(_ request: TraceRequest, _ method: ProbeMethod) -> TargetSeries {
        let labels = labels(request, method)
        let registry = shards[Int(UInt(bitPattern: request.index) % UInt(Self.shardCount))]
        func gauge(_ name: String, _ unit: String, _ help: String, _ more: [(String, String)] = []) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "fasttrace", subsystem: "target",
                metricName: name, unitName: unit, helpText: help), labels: labels + more)
        }
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "fasttrace", subsystem: "target",
                metricName: name, unitName: "total", helpText: help), labels: labels)
        }
        return TargetSeries(
            registry: registry,
            labels: labels,
            up: gauge("up", "", "1 when the latest round reached the destination (it answered), else 0."),
            states: Self.states.map {
                gauge("state", "", "1 for the port state the latest round found, 0 for the others.",
                    [("state", $0.rawValue)])
            },
            hops: gauge("hops", "", "Hops: the least TTL the destination answered at over the last window of rounds, "
                + "or, when it answered in none, the deepest TTL that answered in them."),
            pathChanges: counter("path_changes", "Path changes, confirmed over rounds as --changes reports them."),
            rounds: counter("rounds", "Rounds finished (interrupted ones left out)."),
            reachedRounds: counter("reached_rounds", "Rounds whose destination answered."),
            rtt: registry.makeValueHistogram(descriptor: MetricNameDescriptor(namespace: "fasttrace",
                subsystem: "target", metricName: "rtt", unitName: "seconds", helpText: "Destination RTT per "
                    + "round (kernel timestamps), seconds."), labels: labels, buckets: Self.rttBuckets))
    }

    private func updateHops(_ series: inout TargetSeries, _ window: [HopWindow]) {
        var keep: Set<UInt8> = []
        for hop in window {
            keep.insert(hop.ttl)
            let hopSeries = series.hopSeries[hop.ttl] ?? makeHopSeries(series.labels, ttl: hop.ttl, in: series.registry)
            hopSeries.loss.set(Double(hop.lost) / Double(hop.sent))
            for (i, value) in [hop.p50, hop.p95].enumerated() {
                hopSeries.rtt[i].set(value.map { Double($0) / 1e6 } ?? .nan)
            }
            hopSeries.added.set(Double(hop.addedMicros) / 1e6)
            hopSeries.limited.set(hop.limited ? 1.0 : 0.0)
            hopSeries.pathLoss.set(hop.mark == .path ? 1.0 : 0.0)
            hopSeries.noReply.set(hop.mark == .noReply ? 1.0 : 0.0)
            series.hopSeries[hop.ttl] = hopSeries
        }
        // Hops past the path's end now (it got shorter): their series go, rather than show old values.
        for ttl in series.hopSeries.keys where !keep.contains(ttl) {
            unregister(series.hopSeries.removeValue(forKey: ttl)!, from: series.registry)
        }
    }

    private func makeHopSeries(_ labels: [(String, String)], ttl: UInt8, in registry: PrometheusCollectorRegistry)
        -> HopSeries
    {
        let labels = labels + [("ttl", String(ttl))]
        func gauge(_ name: String, _ unit: String, _ help: String, _ more: [(String, String)] = []) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "fasttrace", subsystem: "hop",
                metricName: name, unitName: unit, helpText: help), labels: labels + more)
        }
        return HopSeries(
            loss: gauge("loss", "ratio", "Share of probes at this TTL that got no answer, over the latest window "
                + "of rounds (--change-window), 0 to 1."),
            rtt: Self.hopQuantiles.map {
                gauge("rtt_\($0.label)", "seconds", "RTT \($0.label == "p50" ? "median" : "95th percentile") at this "
                    + "TTL over the latest window of rounds (kernel timestamps), seconds.")
            },
            added: gauge("latency_added", "seconds", "Median RTT this hop adds that persists to the destination "
                + "(the report's latency rise), seconds; 0 where none."),
            limited: gauge("loss_limited", "", "1 when the loss here does not persist to later hops (the router's "
                + "own answers, e.g. its ICMP rate limit), not loss on the path."),
            pathLoss: gauge("loss_path", "", "1 when the loss here is loss on the path: it starts here or goes on "
                + "to the destination (the report's 'path'); 0 for a router's own limit, a hop that never answered, "
                + "too few rounds to tell, or no loss."),
            noReply: gauge("no_reply", "", "1 when nothing at this TTL answered in the window (a router that sends "
                + "no ICMP, or past the last answer): its loss ratio of 1 says nothing about the path."))
    }

    private func unregister(_ hop: HopSeries, from registry: PrometheusCollectorRegistry) {
        registry.unregisterGauge(hop.loss)
        hop.rtt.forEach { registry.unregisterGauge($0) }
        registry.unregisterGauge(hop.added)
        registry.unregisterGauge(hop.limited)
        registry.unregisterGauge(hop.pathLoss)
        registry.unregisterGauge(hop.noReply)
    }
}
