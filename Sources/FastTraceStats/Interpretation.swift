// What the rounds mean, which is what users of mtr most often get wrong: loss at a hop that does not go on
// to the hops after it is that router's own answers (ICMP rate limiting, or a control plane that answers
// slowly and drops some), not loss on the path; path loss starts at the hop from which it persists to the
// destination. The same for latency: a hop whose median is high but whose later hops are faster answers
// slowly itself; the hop that adds latency is the one where a rise starts and stays.
//
// Every judgement is made with the counts it rests on: loss ratios are compared through their Wilson score
// intervals (95 %), so a few rounds give wide intervals and the answer says it cannot place the start
// exactly, rather than naming a hop by chance. Medians are compared only where a hop has enough samples.

import FastTraceCore
import FastTraceWire
import Glibc

/// What the loss at one hop is, as far as the rounds can tell.
public enum LossMark: String, Sendable, Equatable {
    /// No probe lost here.
    case none
    /// Loss here that does not persist to later hops: the router's own answers (its ICMP rate limit, or its
    /// control plane), not loss on the path.
    case limited
    /// Loss here that goes on to the destination (or to the last hop heard): loss on the path, from here on.
    case path
    /// Loss here, and too few probes to tell whether it persists.
    case uncertain
    /// Nothing here ever answered: a router that sends no ICMP, one whose limit silenced it every time, or
    /// the end of the path.
    case noReply = "no-reply"
}

/// A hop's verdict.
public struct HopVerdict: Sendable, Equatable {
    /// The TTL.
    public var ttl: UInt8
    /// What its loss is.
    public var loss: LossMark
    /// True when the engine caught a router rate-limiting its ICMP at this hop in some round (some of its
    /// silences were marked `rate-limited`): evidence for `limited`.
    public var rateLimitCaught: Bool
    /// True when some of its silences rate limiting may explain but the engine did not catch here
    /// (`likely-rate-limited`): never evidence that a limit was caught (a silent router looks the same).
    public var likelyRateLimited = false
    /// True when this hop's own median RTT is above what persists after it (by at least the rise
    /// threshold): it answers slowly itself.
    public var slowAnswers: Bool
    /// A row past the destination's least TTL: probes of rounds that met the destination only further out
    /// (their probe at its distance unanswered), not a hop of the path.
    public var pastDestination = false

    public init(ttl: UInt8, loss: LossMark, rateLimitCaught: Bool, likelyRateLimited: Bool = false, slowAnswers: Bool,
        pastDestination: Bool = false)
    {
        self.ttl = ttl
        self.loss = loss
        self.rateLimitCaught = rateLimitCaught
        self.likelyRateLimited = likelyRateLimited
        self.slowAnswers = slowAnswers
        self.pastDestination = pastDestination
    }
}

/// Where loss on the path starts.
public struct LossStart: Sendable, Equatable {
    /// The first hop whose loss persists to the end, as far as the counts allow.
    public var ttl: UInt8
    /// When the counts cannot place it exactly: the last hop it may start at (the first with loss); the
    /// start is somewhere in `ttl...latestTTL`. Equal to `ttl` when placed exactly.
    public var latestTTL: UInt8
    /// Loss at the end hop (the destination, or the last hop heard), percent.
    public var lossPercent: Double
}

/// A hop past the start of the loss where more loss begins and persists.
public struct LossIncrease: Sendable, Equatable {
    /// The hop.
    public var ttl: UInt8
    /// Its loss, percent.
    public var lossPercent: Double
}

/// A hop where the median RTT rises and stays up.
public struct LatencyRise: Sendable, Equatable {
    /// The hop.
    public var ttl: UInt8
    /// Median RTT added here that persists to the end, µs.
    public var addedMicros: UInt32
}

/// The interpretation of a set of per-hop statistics (all rounds, or one path).
public struct Interpretation: Sendable, Equatable {
    /// Per hop, in TTL order (hops that sent nothing are left out).
    public var hops: [HopVerdict] = []
    /// The hop the analysis ends at: the destination's first TTL when it answered, else the last hop that
    /// answered; nil when nothing answered.
    public var endTTL: UInt8?
    /// True when the destination answered at `endTTL`.
    public var endIsDestination = false
    /// Loss on the path, where it starts; nil when there is none to place (see `lossNote`).
    public var lossStart: LossStart?
    /// Hops after the start where the loss that persists rises again, significantly (in TTL order).
    public var lossIncreases: [LossIncrease] = []
    /// Hops that add persisting latency, the greatest first.
    public var latencyRises: [LatencyRise] = []
    /// A sentence on the loss: what was found, or why nothing can be said.
    public var lossNote = ""
    /// A sentence on the latency.
    public var latencyNote = ""

    /// Thresholds of the judgements.
    public struct Thresholds: Sendable, Equatable {
        /// z of the Wilson intervals (1.96: 95 %).
        public var z = 1.96
        /// Least median rise that counts, µs.
        public var minRiseMicros: UInt32 = 1000
        /// Least median rise that counts, as a share of the median before it.
        public var minRiseRatio = 0.1
        /// Least loss (ratio, lower bound of its interval) that counts as loss persisting to the end.
        public var minLossRatio = 0.01
        /// RTT samples a hop needs before its median is compared.
        public var minSamples = 5
        /// One-sided error of a claim that one hop's loss differs from the hops after it (a router's own
        /// loss, a rise): shared among the hops it is compared with (Bonferroni), since the least of several
        /// upper bounds falls below the truth more often than one does (a CI run called 30 % path loss
        /// `limited` at the hop it started at: it lost 40 of 90, a later hop 18 of 90).
        public var claimTail = 0.025
        public init() {}
    }

    /// The verdict for `hop`: the analysis's, or for a row past the destination's least TTL (probes of rounds
    /// whose destination answered later, under loss) `noReply` when nothing there answered and `uncertain`
    /// when some of it did not: never unmarked loss.
    public func verdict(for hop: HopStats) -> HopVerdict? {
        if let verdict = hops.first(where: { $0.ttl == hop.ttl }) { return verdict }
        guard hop.sent > 0 else { return nil }
        // Past the destination's least TTL, lossless or not: said for what it is (a trial's row with 0 %
        // loss there had no mark, and `past_destination: false`).
        return HopVerdict(ttl: hop.ttl, loss: hop.lost == 0 ? .none : hop.lost == hop.sent ? .noReply : .uncertain,
            rateLimitCaught: hop.rateLimitedSilences > 0, likelyRateLimited: hop.likelyRateLimitedSilences > 0,
            slowAnswers: false, pastDestination: true)
    }

    /// Interprets `hops` (TTL order). `destinationTTL`: the least TTL the destination answered at, if it did.
    public init(_ hops: [HopStats], destinationTTL: UInt8?, thresholds: Thresholds = Thresholds()) {
        let rows = hops.filter { $0.sent > 0 && (destinationTTL == nil || $0.ttl <= destinationTTL!) }
        let answering = rows.filter { $0.answered > 0 }
        guard let end = answering.last else {
            self.hops = rows.map { HopVerdict(ttl: $0.ttl, loss: .noReply, rateLimitCaught: $0.rateLimitedSilences > 0,
                likelyRateLimited: $0.likelyRateLimitedSilences > 0, slowAnswers: false) }
            lossNote = rows.isEmpty ? "no probe was settled" : "nothing answered"
            latencyNote = "nothing answered"
            return
        }
        endTTL = end.ttl
        endIsDestination = destinationTTL == end.ttl
        let z = thresholds.z
        let lows = answering.map { wilson($0.lost, $0.sent, z).low }
        let highs = answering.map { wilson($0.lost, $0.sent, z).high }
        // The bounds for claims about answering hop i against the `later` hops after it (or the rises among
        // them): at z corrected for that many comparisons.
        let claimZ = (0...answering.count).map { normalQuantile(1 - thresholds.claimTail / Double(max(1, $0))) }
        func claimLow(_ i: Int, _ m: Int) -> Double { wilson(answering[i].lost, answering[i].sent, claimZ[m]).low }
        func claimHigh(_ i: Int, _ m: Int) -> Double { wilson(answering[i].lost, answering[i].sent, claimZ[m]).high }
        /// True when answering hop i lost more than every hop after it could have: its lower bound above the
        /// least of their upper bounds, each at z corrected for that many comparisons. A router's own loss.
        func losesMoreThanLater(_ i: Int) -> Bool {
            let m = answering.count - 1 - i
            return claimLow(i, m) > ((i + 1..<answering.count).lazy.map { claimHigh($0, m) }.min() ?? 1)
        }
        // What persists from each answering hop to the end: the least loss of the hops from it on, with
        // its bounds (the least lower bound, the least upper bound).
        var persistLow = lows, persistHigh = highs
        for i in stride(from: answering.count - 2, through: 0, by: -1) {
            persistLow[i] = min(persistLow[i], persistLow[i + 1])
            persistHigh[i] = min(persistHigh[i], persistHigh[i + 1])
        }
        // Path loss: certainly present at every hop from `latest` on (the earliest such hop); it may start
        // earlier, as far back as the hops before whose loss could be as large (their upper bound reaches
        // what persists): the start is in `earliest...latest`.
        var startIndex: Int?, latestIndex: Int?
        // Persistence is judged to the end. When the end is a router (the destination never answered) on a
        // path whose routers were caught rate-limiting, the end's own lost answers may be its limit too
        // (its silences past the last answer read "a limit or the end of the path"), and would make every
        // earlier router's limit look like loss that persists: no path loss can be told from that (a
        // trial's firewalled targets under the lab's rate limits were all called path loss from hop 1).
        let endLimited = !endIsDestination
            && answering.contains { $0.rateLimitedSilences + $0.likelyRateLimitedSilences > 0 }
        if !endLimited, var latest = persistLow.firstIndex(where: { $0 >= thresholds.minLossRatio }) {
            // A hop whose own loss is more than persists after it (a limiting router) may or may not carry
            // the path loss already: the start is certain only from the first hop past such ones.
            while latest < answering.count - 1 && losesMoreThanLater(latest) { latest += 1 }
            var i = latest
            while i > 0 && highs[i - 1] >= persistLow[latest] { i -= 1 }
            startIndex = i
            latestIndex = latest
            // Further rises: from hop i on, more persists than the hop before could carry.
            let rises = answering.count - 1 - latest
            func persistClaimLow(_ j: Int) -> Double { (j..<answering.count).lazy.map { claimLow($0, rises) }.min() ?? 0 }
            func persistClaimHigh(_ j: Int) -> Double { (j..<answering.count).lazy.map { claimHigh($0, rises) }.min() ?? 1 }
            for j in (latest + 1)..<max(latest + 1, answering.count) where persistClaimLow(j) > persistClaimHigh(j - 1) {
                lossIncreases.append(LossIncrease(ttl: answering[j].ttl, lossPercent: answering[j].lossPercent ?? 0))
            }
        }
        var verdicts: [HopVerdict] = []
        for row in rows {
            var mark: LossMark
            if row.answered == 0 {
                mark = .noReply
            } else if row.lost == 0 {
                mark = .none
            } else if row.ttl == end.ttl {
                // The end's own loss: on the path when it is the destination (what the service sees); at a
                // last hop heard that is not the destination, whether it persists cannot be seen.
                mark = endIsDestination ? .path : .uncertain
            } else if endLimited {
                // Whether loss persists cannot be told here, and the engine's rate-limit evidence (some of a
                // flow's probes answered at a TTL, others not) is also what path loss looks like: only a hop
                // that lost more than every later hop could have is its router's own (a trial's 70 % path
                // loss was called `limited` at hops 4-6 in a lab without rate limits).
                mark = losesMoreThanLater(answering.firstIndex { $0.ttl == row.ttl }!) ? .limited : .uncertain
            } else {
                if losesMoreThanLater(answering.firstIndex { $0.ttl == row.ttl }!) {
                    mark = .limited
                } else if let startIndex, row.ttl >= answering[startIndex].ttl {
                    mark = .path
                } else {
                    mark = .uncertain
                }
            }
            verdicts.append(HopVerdict(ttl: row.ttl, loss: mark, rateLimitCaught: row.rateLimitedSilences > 0,
                likelyRateLimited: row.likelyRateLimitedSilences > 0, slowAnswers: false))
        }
        if let startIndex, let latestIndex {
            let start = answering[startIndex]
            let latest = answering[latestIndex].ttl
            let loss = end.lossPercent ?? 0
            lossStart = LossStart(ttl: start.ttl, latestTTL: latest, lossPercent: loss)
            let whereText = latest == start.ttl ? "starts at hop \(start.ttl)"
                : "starts between hop \(start.ttl) and hop \(latest) (too few rounds to place it exactly)"
            lossNote = "\(formatPercent(loss)) loss at \(endIsDestination ? "the destination" : "hop \(end.ttl), the last hop heard,") "
                + "\(whereText) and persists"
            if !lossIncreases.isEmpty {
                lossNote += "; it rises again at " + lossIncreases.map { "hop \($0.ttl) (\(formatPercent($0.lossPercent)))" }
                    .joined(separator: ", ")
            }
        } else if endLimited {
            lossNote = "\(formatPercent(end.lossPercent ?? 0)) loss at hop \(end.ttl), the last hop heard, on a path whose "
                + "routers were caught rate-limiting; the destination never answered, so whether any loss is on the path "
                + "cannot be told"
        } else {
            let high = wilson(0, end.sent, z).high
            lossNote = "no loss \(endIsDestination ? "to the destination" : "to hop \(end.ttl), the last hop heard,") in "
                + "\(end.sent) probe\(end.sent == 1 ? "" : "s") (up to \(formatPercent(100 * high)) not ruled out)"
        }
        let limited = verdicts.filter { $0.loss == .limited && $0.ttl != end.ttl }
        if !limited.isEmpty && endLimited {
            lossNote += "; hop\(limited.count == 1 ? "" : "s") " + limited.map { "\($0.ttl)" }.joined(separator: ", ")
                + " lost answers to a rate limit caught there (limited)"
        } else if !limited.isEmpty {
            lossNote += "; loss at hop\(limited.count == 1 ? "" : "s") "
                + limited.map { "\($0.ttl)" }.joined(separator: ", ")
                + " does not persist: the router's own answers (limited), not loss on the path"
        }

        // Latency: per answering hop with enough samples, the least median from it to the end is what
        // persists from it; what a hop adds is how much that rises over the hop before.
        let timed = answering.filter { $0.rttCount >= thresholds.minSamples && $0.p50 != nil }
        if timed.last?.ttl != end.ttl || timed.isEmpty {
            latencyNote = "too few RTT samples to place latency (a hop needs \(thresholds.minSamples))"
        } else {
            var floors = [UInt32](repeating: 0, count: timed.count)
            var running = UInt32.max
            for i in stride(from: timed.count - 1, through: 0, by: -1) {
                running = min(running, timed[i].p50!)
                floors[i] = running
            }
            var rises: [LatencyRise] = []
            for i in timed.indices {
                let own = timed[i].p50!
                // Slow answers: the hop's own median above what persists after it.
                if i + 1 < timed.count {
                    let after = floors[i + 1]
                    if own > after, own - after >= thresholds.minRiseMicros,
                        Double(own - after) >= thresholds.minRiseRatio * Double(after),
                        let v = verdicts.firstIndex(where: { $0.ttl == timed[i].ttl })
                    {
                        verdicts[v].slowAnswers = true
                    }
                }
                guard i > 0 else { continue }
                let before = min(timed[i - 1].p50!, floors[i])
                let added = floors[i] - before
                if added >= thresholds.minRiseMicros && Double(added) >= thresholds.minRiseRatio * Double(before) {
                    rises.append(LatencyRise(ttl: timed[i].ttl, addedMicros: added))
                }
            }
            latencyRises = rises.sorted { $0.addedMicros > $1.addedMicros }
            if latencyRises.isEmpty {
                latencyNote = "no hop adds persisting latency (at least \(formatMillisText(thresholds.minRiseMicros)) ms "
                    + "and \(Int(thresholds.minRiseRatio * 100)) % of the median before it)"
            } else {
                latencyNote = latencyRises.map {
                    "hop \($0.ttl) adds \(formatMillisText($0.addedMicros)) ms to the median, and it persists"
                }.joined(separator: "; ")
            }
            let slow = verdicts.filter(\.slowAnswers)
            if !slow.isEmpty {
                latencyNote += "; hop\(slow.count == 1 ? "" : "s") " + slow.map { "\($0.ttl)" }.joined(separator: ", ")
                    + " answer\(slow.count == 1 ? "s" : "") slowly itself (not on the path)"
            }
        }
        self.hops = verdicts
    }
}

/// The Wilson score interval of `k` successes in `n` trials at `z`, as ratios; (0, 1) for n = 0.
public func wilson(_ k: Int, _ n: Int, _ z: Double) -> (low: Double, high: Double) {
    guard n > 0 else { return (0, 1) }
    let p = Double(k) / Double(n), nn = Double(n), z2 = z * z
    let centre = p + z2 / (2 * nn)
    let margin = z * (p * (1 - p) / nn + z2 / (4 * nn * nn)).squareRoot()
    let denominator = 1 + z2 / nn
    return (max(0, (centre - margin) / denominator), min(1, (centre + margin) / denominator))
}

/// The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9), for p in
/// (0, 1).
public func normalQuantile(_ p: Double) -> Double {
    let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
        -3.066479806614716e+01, 2.506628277459239e+00]
    let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
        -1.328068155288572e+01]
    let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
        4.374664141464968e+00, 2.938163982698783e+00]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    let low = 0.02425
    func tail(_ q: Double) -> Double {
        ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
    }
    func tailDenominator(_ q: Double) -> Double { (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1 }
    if p < low {
        let q = (-2 * log(p)).squareRoot()
        return tail(q) / tailDenominator(q)
    }
    if p > 1 - low {
        let q = (-2 * log(1 - p)).squareRoot()
        return -tail(q) / tailDenominator(q)
    }
    let q = p - 0.5, r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
}

/// `12.5%`: one decimal.
public func formatPercent(_ percent: Double) -> String {
    let tenths = Int((percent * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
}

/// Milliseconds from µs with up to three decimals, trailing zeros kept to three (`1.250`).
public func formatMillisText(_ micros: UInt32) -> String {
    let frac = String(micros % 1000)
    return "\(micros / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
}
