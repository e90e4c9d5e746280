// What the rounds say about one hop (a TTL of a target × port, on all paths or on one path): probes
// sent and answered, loss as mtr counts it, RTT statistics (Welford), percentiles from a fixed
// histogram, mtr's jitter, and every address that answered there. Everything here is of fixed size
// per hop except the responder list, which is capped; none of it grows with the number of rounds.

import FastTraceCore
import FastTraceWire

/// One address seen answering at a hop, and how often.
public struct ResponderCount: Sendable, Equatable {
    /// The address (a router's, or the destination's).
    public var address: IPAddress
    /// Answers from it.
    public var count: Int
    /// True when it answered as the destination (SYN-ACK, RST, …), not as a router.
    public var isDestination: Bool
    /// The MPLS label stack its latest answer that carried one reported (RFC 4950), if any.
    public var mpls: MPLSStack?
}

/// Statistics of one hop over the rounds.
public struct HopStats: Sendable, Equatable {
    /// Most distinct responders kept per hop; answers from others are counted in `otherResponders`.
    public static let maxResponders = 8

    /// The TTL.
    public let ttl: UInt8
    /// Probes sent and settled (answered, or timed out after their wait): mtr's `sent − in flight`.
    /// Each try counts: an immediate retry or a re-ask is a probe of its own.
    public private(set) var sent = 0
    /// Probes answered (at most one per column of a round).
    public private(set) var answered = 0
    /// Probes still waiting when the run was interrupted: excluded from `sent` and from the loss.
    public private(set) var inFlight = 0
    /// Unanswered probes the engine put down to a rate limit it caught: `rate-limited` (the router at this
    /// hop was caught limiting).
    public private(set) var rateLimitedSilences = 0
    /// Unanswered probes rate limiting may explain, not caught here: `likely-rate-limited` (a router at this
    /// position was caught limiting, or the trace went on past this TTL in a run that caught limits). A
    /// router that never sends ICMP looks the same, so these are never called rate-limited.
    public private(set) var likelyRateLimitedSilences = 0
    /// Rounds that had this TTL at all (a trace that stopped earlier has none).
    public private(set) var rounds = 0
    /// RTT samples (answers with a time).
    public private(set) var rttCount = 0
    private var mean = 0.0
    private var m2 = 0.0
    /// The latest, least and greatest RTT, µs.
    public private(set) var last: UInt32?
    public private(set) var best: UInt32?
    public private(set) var worst: UInt32?
    /// mtr's jitter: |RTT − previous RTT|, its running mean (Javg) and greatest value (Jmax), µs.
    private var jitterSum = 0.0
    private var jitterCount = 0
    public private(set) var jitterMax: UInt32 = 0
    /// Percentiles.
    public private(set) var histogram = RTTHistogram()
    /// Who answered, in order of first answer.
    public private(set) var responders: [ResponderCount] = []
    /// Answers from addresses beyond `maxResponders`.
    public private(set) var otherResponders = 0

    public init(ttl: UInt8) { self.ttl = ttl }

    /// Adds one round's probes at this TTL.
    public mutating func add(_ hop: HopResult) {
        rounds += 1
        for probe in hop.probes {
            // Refused by the kernel: it never left, so it is neither sent nor lost.
            if probe.silence == .notSent { continue }
            if probe.silence == .interrupted {
                inFlight += 1
                // Tries that timed out before the interruption still count (they were settled).
                sent += Int(probe.tries)
                continue
            }
            sent += Int(max(1, probe.tries))
            guard let responder = probe.responder else {
                if probe.silence == .rateLimited { rateLimitedSilences += 1 }
                if probe.silence == .likelyRateLimited { likelyRateLimitedSilences += 1 }
                continue
            }
            answered += 1
            note(responder, isDestination: probe.outcome.isFromDestination, mpls: probe.mpls)
            if let rtt = probe.rttMicros { record(rtt) }
        }
    }

    /// Records one RTT (µs): Welford's update of mean and variance, extremes, jitter, histogram.
    public mutating func record(_ rtt: UInt32) {
        if let last {
            let jitter = rtt > last ? rtt - last : last - rtt
            jitterSum += Double(jitter)
            jitterCount += 1
            jitterMax = max(jitterMax, jitter)
        }
        rttCount += 1
        let x = Double(rtt)
        let delta = x - mean
        mean += delta / Double(rttCount)
        m2 += delta * (x - mean)
        last = rtt
        best = min(best ?? rtt, rtt)
        worst = max(worst ?? rtt, rtt)
        histogram.record(rtt)
    }

    private mutating func note(_ address: IPAddress, isDestination: Bool, mpls: MPLSStack?) {
        if let i = responders.firstIndex(where: { $0.address == address }) {
            responders[i].count += 1
            if isDestination { responders[i].isDestination = true }
            if let mpls { responders[i].mpls = mpls }
        } else if responders.count < Self.maxResponders {
            responders.append(ResponderCount(address: address, count: 1, isDestination: isDestination, mpls: mpls))
        } else {
            otherResponders += 1
        }
    }

    /// Probes lost: settled and not answered.
    public var lost: Int { max(0, sent - answered) }
    /// mtr's loss: 100 − 100 · answered / (sent − in flight), in percent; nil when nothing was settled.
    public var lossPercent: Double? { sent == 0 ? nil : 100 * Double(lost) / Double(sent) }
    /// Mean RTT, µs.
    public var average: Double? { rttCount == 0 ? nil : mean }
    /// Sample standard deviation of the RTT (n − 1), µs; nil (unknown, not 0) for fewer than two samples.
    public var standardDeviation: Double? {
        rttCount < 2 ? nil : (m2 / Double(rttCount - 1)).squareRoot()
    }
    /// mtr's Javg, µs.
    public var jitterAverage: Double? { jitterCount == 0 ? nil : jitterSum / Double(jitterCount) }
    /// Median, 95th and 99th percentile RTT, µs (from the histogram: within 6.25 %).
    public var p50: UInt32? { histogram.value(atQuantile: 0.5) }
    public var p95: UInt32? { histogram.value(atQuantile: 0.95) }
    public var p99: UInt32? { histogram.value(atQuantile: 0.99) }
    /// The address that answered most often here, if any.
    public var mainResponder: ResponderCount? { responders.max { $0.count < $1.count } }
    /// True when the destination answered at this TTL.
    public var hasDestination: Bool { responders.contains { $0.isDestination } }
}
