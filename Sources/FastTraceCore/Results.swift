// What a finished trace says: per hop, who answered each probe, how, and how fast. These are the
// values the CLI prints; the engine builds one per trace when the trace finishes (not per packet).

import FastTraceWire

/// What one trace asks for: a destination, a port, and the source address to send from.
public struct TraceRequest: Sendable, Equatable {
    /// Position in the input (target × port order); echoed in the result.
    public var index: Int
    /// Destination address.
    public var destination: IPAddress
    /// Destination port (0 for ICMP echo).
    public var port: UInt16
    /// Source address the probes carry (from the route, or `-s`), of the destination's family.
    public var source: IPAddress
    /// The destination's family (`ipv4` or `ipv6` in JSON).
    public var family: IPFamily { destination.family }
    /// The name the user gave, if the target was a hostname.
    public var name: String?

    public init(index: Int, destination: IPAddress, port: UInt16, source: IPAddress, name: String? = nil) {
        precondition(destination.family == source.family, "a trace's source and destination are of one family")
        self.index = index
        self.destination = destination
        self.port = port
        self.source = source
        self.name = name
    }

    /// An IPv4 request.
    public init(index: Int, destination: IPv4Address, port: UInt16, source: IPv4Address, name: String? = nil) {
        self.init(index: index, destination: IPAddress(destination), port: port, source: IPAddress(source), name: name)
    }
}

/// Why a probe has no answer.
public enum Silence: String, Sendable, Equatable {
    /// Nothing came back within the wait time (after every retry and re-ask).
    case timedOut = "none"
    /// Nothing came back from a router the run has shown rate-limiting its ICMP errors to us: the router
    /// at this hop is known (the one every trace saw right before this trace's next router) and it was
    /// caught answering some probes of a flow and dropping others. The silence says nothing about the path.
    case rateLimited = "rate-limited"
    /// Nothing came back where routers answer other traces and rate limiting was caught in the run, but
    /// the run cannot tell which router this trace met here: likely a rate limit, possibly a router that
    /// never sends ICMP (the two look alike from here).
    case likelyRateLimited = "likely-rate-limited"
    /// The run was interrupted before this probe's wait was over, or before it was sent.
    case interrupted
    /// The kernel refused to send the probe (larger than the route's MTU: EMSGSIZE; a local firewall:
    /// EPERM): it never left this host, so its silence says nothing about the network.
    case notSent = "not-sent"
    /// Nothing came back, at a TTL where routers on other paths were caught rate-limiting, but past the
    /// last TTL this trace heard anything from: a rate limit, or the end of the path; cannot tell.
    case unknown
}

/// One probe's result.
public struct ProbeResult: Sendable, Equatable {
    /// Who answered, or nil.
    public var responder: IPAddress?
    /// Round-trip time in microseconds (kernel receive timestamp minus send time), or nil.
    public var rttMicros: UInt32?
    /// How it was answered.
    public var outcome: Response
    /// Where a NAT on the path had sent the probe, when the answer's quote names a destination other
    /// than the target (DNAT detection); nil otherwise.
    public var translatedDestination: IPAddress?
    /// Why there is no answer; nil when there is one.
    public var silence: Silence?
    /// The TTL the probe was sent with, when the answer is shown at another hop: an unreachable whose
    /// quoted TTL says its router sits nearer than the TTL the probe carried. nil otherwise.
    public var sentTTL: UInt8?
    /// The MPLS label stack the answer's ICMP extensions reported (RFC 4950), if any.
    public var mpls: MPLSStack?
    /// How many tries of this column were sent and settled (answered or timed out): 1 + the immediate
    /// retries and re-asks that went out before it was answered or given up. A try still waiting when the
    /// run was interrupted is not counted (0 for a column never sent or waited for). Per-probe loss
    /// statistics count these, not columns: a re-ask answered after a lost try is one probe lost.
    public var tries: UInt8 = 1

    /// An answer from an IPv4 responder.
    public init(responder: IPv4Address, rttMicros: UInt32?, outcome: Response, translatedDestination: IPv4Address? = nil) {
        self.init(responder: IPAddress(responder), rttMicros: rttMicros, outcome: outcome,
            translatedDestination: translatedDestination.map(IPAddress.init))
    }

    public init(responder: IPAddress?, rttMicros: UInt32?, outcome: Response,
        translatedDestination: IPAddress? = nil)
    {
        self.responder = responder
        self.rttMicros = rttMicros
        self.outcome = outcome
        self.translatedDestination = translatedDestination
        self.silence = responder == nil ? .timedOut : nil
    }

    /// A probe with no answer, for `reason`.
    public init(silence reason: Silence) {
        self.init(responder: nil, rttMicros: nil, outcome: .none)
        silence = reason
        if reason == .interrupted || reason == .notSent { tries = 0 }
    }

    /// The unanswered probe.
    public static let silent = ProbeResult(silence: .timedOut)

    /// Two results are equal when they found the same thing (who, how fast, how, why not); how many tries
    /// it took (`tries`, counted for loss statistics) is not part of it.
    public static func == (a: ProbeResult, b: ProbeResult) -> Bool {
        a.responder == b.responder && a.rttMicros == b.rttMicros && a.outcome == b.outcome
            && a.translatedDestination == b.translatedDestination && a.silence == b.silence && a.sentTTL == b.sentTTL
            && a.mpls == b.mpls
    }
}

/// One TTL of a trace.
public struct HopResult: Sendable, Equatable {
    /// The TTL the probes carried.
    public var ttl: UInt8
    /// One entry per attempt, in attempt order.
    public var probes: [ProbeResult]

    public init(ttl: UInt8, probes: [ProbeResult]) {
        self.ttl = ttl
        self.probes = probes
    }

    /// The first address that answered at this TTL, if any.
    public var firstResponder: IPAddress? { probes.lazy.compactMap(\.responder).first }
    /// The translated destination the answers at this TTL quoted (DNAT detected), if any.
    public var translatedDestination: IPAddress? { probes.lazy.compactMap(\.translatedDestination).first }
    /// The hop's kind as output prints it: the most telling outcome, or for a hop with no answer at all,
    /// why: `rate-limited` when the run showed this hop's router rate-limiting, `likely-rate-limited`
    /// when routers answer others there but this one cannot be told from a silent router, `interrupted` when the run was cut
    /// short before the wait was over, `unknown` when a rate limit or the end of the path may explain
    /// it, `none` otherwise.
    public var kind: String {
        if outcome != .none { return outcome.description }
        if probes.contains(where: { $0.silence == .notSent }) { return Silence.notSent.rawValue }
        if probes.contains(where: { $0.silence == .rateLimited }) { return Silence.rateLimited.rawValue }
        if probes.contains(where: { $0.silence == .likelyRateLimited }) { return Silence.likelyRateLimited.rawValue }
        if probes.contains(where: { $0.silence == .interrupted }) { return Silence.interrupted.rawValue }
        if probes.contains(where: { $0.silence == .unknown }) { return Silence.unknown.rawValue }
        return "none"
    }

    /// True when some probe at this TTL is silent because its router was caught rate-limiting (text
    /// `[rate-limited]`), whether or not other probes at this TTL were answered.
    public var isMarkedRateLimited: Bool { probes.contains { $0.silence == .rateLimited } }
    /// True when no probe is marked rate-limited and some is likely rate-limited (text
    /// `[likely rate-limited]`).
    public var isMarkedLikelyRateLimited: Bool {
        !isMarkedRateLimited && probes.contains { $0.silence == .likelyRateLimited }
    }
    /// True when no probe at this TTL was answered and rate limiting explains it.
    public var isRateLimited: Bool { outcome == .none && probes.contains { $0.silence == .rateLimited } }
    /// True when no probe at this TTL was answered, none is shown rate-limited, and rate limiting likely
    /// explains it (`likely-rate-limited`).
    public var isLikelyRateLimited: Bool { kind == Silence.likelyRateLimited.rawValue }

    /// The most telling outcome at this TTL (`Response.precedence`; the first of equals).
    public var outcome: Response {
        probes.lazy.map(\.outcome).max { $0.precedence < $1.precedence } ?? .none
    }
}

/// Why a trace stopped probing further TTLs.
public enum StopReason: String, Sendable, Equatable {
    /// The destination answered.
    case destination
    /// A router answered destination unreachable.
    case unreachable
    /// `gap` consecutive TTLs stayed silent.
    case gapLimit = "gap-limit"
    /// The maximum TTL was probed.
    case maxTTL = "max-ttl"
    /// The run was interrupted (SIGINT, SIGTERM) before the trace was done: what it has is partial.
    case interrupted
    /// The kernel refused to send the trace's probes from this TTL on (larger than the route's MTU, a
    /// local firewall): they never left, so nothing past it was asked of the network. Its state is
    /// `unknown`, never `filtered`.
    case notSent = "not-sent"
}

/// A finished trace.
public struct TraceResult: Sendable, Equatable {
    /// What was traced.
    public var request: TraceRequest
    /// Hops from the first TTL up to where the trace stopped.
    public var hops: [HopResult]
    /// True when the destination answered (SYN-ACK or RST; for an ACK probe, RST).
    public var reached: Bool
    /// Open, closed (SYN), unfiltered (ACK) or filtered; `unknown` for a trace interrupted before the
    /// destination answered, or whose probes the kernel refused to send (`notSent`).
    public var state: PortState
    /// Why the trace stopped.
    public var stopReason: StopReason
    /// The source port all its probes carried.
    public var sourcePort: UInt16
    /// Probes sent for this trace.
    public var probesSent: Int
    /// When the kernel took its first probe, on the engine's monotonic clock (`EngineClock.now`, ns); nil
    /// when it sent none (interrupted before its first probe). The CLI turns it into wall-clock time.
    public var startNanos: UInt64?
    /// What was sent (protocol and flags): what the destination's answers mean depends on it.
    public var method: ProbeMethod
    /// True when an answer came from the destination's port (UDP) but nothing in it names the probe it
    /// answered (`--payload-hex`, a port without a built-in request): it cannot be told from a forged one,
    /// so the state stays `open|filtered`; likely open, at a TTL not known.
    public var answerUnmatched = false

    public init(
        request: TraceRequest, hops: [HopResult], reached: Bool, state: PortState, stopReason: StopReason,
        sourcePort: UInt16, probesSent: Int, startNanos: UInt64? = nil, method: ProbeMethod = .tcp(.syn)
    ) {
        self.method = method
        self.request = request
        self.hops = hops
        self.reached = reached
        self.state = state
        self.stopReason = stopReason
        self.sourcePort = sourcePort
        self.probesSent = probesSent
        self.startNanos = startNanos
    }

    /// The TTL the destination answered at (SYN-ACK or RST), if it did: CSV's `dest_ttl`, JSON's too.
    public var destinationTTL: UInt8? { hops.first { $0.outcome.isFromDestination }?.ttl }
}
