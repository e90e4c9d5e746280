// Rounds of one target × port × probe method, aggregated: per TTL over every round, and per path (the
// responder sequence of a round, as trippy's flows: a hop nothing answered is a wildcard), so that a route
// change mid-run shows as two paths instead of as loss at the hops that changed (mtr #361), and ECMP
// branches that a flow's fixed 5-tuple keeps apart are told apart (mtr #233). Fed once per finished
// trace, never per packet.

import FastTraceCore
import FastTraceWire

/// One path a target's rounds took: the responder at each TTL, and that path's own per-hop statistics.
public struct PathStats: Sendable, Equatable {
    /// The responder at each TTL from `firstTTL` on; nil where no round of this path heard one yet.
    public private(set) var responders: [IPAddress?]
    /// Rounds that took this path.
    public private(set) var rounds = 0
    /// Statistics of this path's rounds, one per TTL from `firstTTL`.
    public private(set) var hops: [HopStats] = []
    let firstTTL: UInt8

    init(responders: [IPAddress?], firstTTL: UInt8) {
        self.responders = responders
        self.firstTTL = firstTTL
    }

    /// True when `sequence` can be this path: equal wherever both know the responder.
    func matches(_ sequence: [IPAddress?]) -> Bool { Self.compatible(responders, sequence) }

    /// Two responder sequences can be one path: equal wherever both know the responder.
    public static func compatible(_ a: [IPAddress?], _ b: [IPAddress?]) -> Bool {
        for (x, y) in zip(a, b) {
            if let x, let y, x != y { return false }
        }
        return true
    }

    mutating func add(_ trace: TraceResult, sequence: [IPAddress?]) {
        rounds += 1
        let reaches = trace.destinationTTL != nil
        responders = Self.merge(responders, reaches: reachesDestination, sequence, reaches: reaches)
        reachesDestination = reachesDestination || reaches
        addHops(trace, to: &hops, firstTTL: firstTTL)
    }

    /// Whether a round of this path met the destination (its responders then end there).
    public private(set) var reachesDestination = false

    /// Responder sequence `b` merged into `a`, two sequences of one path (equal wherever both know the
    /// responder), each ending at the destination when its rounds met it (`reaches`). A silent hop is a
    /// wildcard, filled in from the other. The destination ends the path at the least TTL it answered at:
    /// under loss a round can meet it only past its distance (its probe at that TTL lost, a later one
    /// answered), and that round neither lengthens the path nor leaves the destination's address at a
    /// TTL inside it, so the path and its id stay what the rounds that saw the whole path saw.
    public static func merge(_ a: [IPAddress?], reaches aReaches: Bool, _ b: [IPAddress?], reaches bReaches: Bool)
        -> [IPAddress?]
    {
        switch (aReaches && !a.isEmpty, bReaches && !b.isEmpty) {
        case (true, true):
            let end = min(a.count, b.count) - 1
            var out = b.count < a.count ? Array(a[0..<end]) + [b[end]] : a
            for i in 0..<end where out[i] == nil { out[i] = b[i] }
            return out
        case (true, false):
            var out = a
            for i in 0..<min(a.count - 1, b.count) where out[i] == nil { out[i] = b[i] }
            return out
        case (false, true):
            var out = b
            for i in 0..<min(b.count - 1, a.count) where out[i] == nil { out[i] = a[i] }
            return out
        case (false, false):
            var out = a
            for (i, responder) in b.enumerated() {
                if i < out.count {
                    if out[i] == nil { out[i] = responder }
                } else {
                    out.append(responder)
                }
            }
            return out
        }
    }

    /// A stable id for the responder sequence (FNV-1a over the known addresses and their TTLs, hex), as
    /// mtr-exporter's `path_id` hashes the hop list.
    public var id: String { Self.id(of: responders) }

    /// The id of a responder sequence (see `id`).
    public static func id(of responders: [IPAddress?]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ value: UInt64) {
            for shift in stride(from: 0, to: 64, by: 8) {
                hash ^= (value >> UInt64(shift)) & 0xFF
                hash = hash &* 0x100_0000_01b3
            }
        }
        for (i, responder) in responders.enumerated() {
            guard let responder else { continue }
            mix(UInt64(i))
            mix(responder.high)
            mix(responder.low)
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Adds a trace's hops to per-TTL statistics indexed from `firstTTL`.
func addHops(_ trace: TraceResult, to hops: inout [HopStats], firstTTL: UInt8) {
    for hop in trace.hops where hop.ttl >= firstTTL {
        let i = Int(hop.ttl - firstTTL)
        while hops.count <= i { hops.append(HopStats(ttl: UInt8(Int(firstTTL) + hops.count))) }
        hops[i].add(hop)
    }
}

/// Every round of one target × port × probe method so far.
public struct RoundStats: Sendable, Equatable {
    /// Most paths kept per target; rounds on further paths count in the per-TTL statistics and in
    /// `otherPathRounds` only.
    public static let maxPaths = 8

    /// What was traced (the first round's request).
    public let request: TraceRequest
    /// How it was probed.
    public let method: ProbeMethod
    /// TTL of the first hop (`-f`).
    public let firstTTL: UInt8
    /// Rounds finished (interrupted ones included).
    public private(set) var rounds = 0
    /// Rounds cut short by an interruption.
    public private(set) var interruptedRounds = 0
    /// Rounds whose destination answered.
    public private(set) var reachedRounds = 0
    /// Rounds by the port state they found, in the order first seen.
    public private(set) var states: [(state: PortState, rounds: Int)] = []
    /// Least and greatest TTL the destination answered at.
    public private(set) var destinationTTLs: ClosedRange<UInt8>?
    /// Rounds by the least TTL the destination answered at in them.
    public private(set) var destinationTTLRounds: [UInt8: Int] = [:]
    /// Rounds by why the trace stopped, in the order first seen.
    public private(set) var stops: [(reason: StopReason, rounds: Int)] = []
    /// Per TTL over every round, from `firstTTL`.
    public private(set) var hops: [HopStats] = []
    /// The paths seen, in order of first round.
    public private(set) var paths: [PathStats] = []
    /// Rounds on paths beyond `maxPaths`.
    public private(set) var otherPathRounds = 0

    public init(request: TraceRequest, method: ProbeMethod, firstTTL: UInt8 = 1) {
        self.request = request
        self.method = method
        self.firstTTL = firstTTL
    }

    public static func == (a: RoundStats, b: RoundStats) -> Bool {
        a.request == b.request && a.method == b.method && a.rounds == b.rounds && a.hops == b.hops
            && a.paths == b.paths && a.reachedRounds == b.reachedRounds && a.interruptedRounds == b.interruptedRounds
    }

    /// Adds one round (one finished trace of this target × port).
    public mutating func add(_ trace: TraceResult) {
        rounds += 1
        if trace.stopReason == .interrupted { interruptedRounds += 1 }
        if trace.reached { reachedRounds += 1 }
        if let i = states.firstIndex(where: { $0.state == trace.state }) { states[i].rounds += 1 }
        else { states.append((trace.state, 1)) }
        if let i = stops.firstIndex(where: { $0.reason == trace.stopReason }) { stops[i].rounds += 1 }
        else { stops.append((trace.stopReason, 1)) }
        if let ttl = trace.destinationTTL {
            destinationTTLs = destinationTTLs.map { min($0.lowerBound, ttl)...max($0.upperBound, ttl) } ?? ttl...ttl
            destinationTTLRounds[ttl, default: 0] += 1
        }
        addHops(trace, to: &hops, firstTTL: firstTTL)
        let sequence = Self.sequence(trace, firstTTL: firstTTL)
        if let i = paths.firstIndex(where: { $0.matches(sequence) }) {
            paths[i].add(trace, sequence: sequence)
        } else if paths.count < Self.maxPaths {
            var path = PathStats(responders: [], firstTTL: firstTTL)
            path.add(trace, sequence: sequence)
            paths.append(path)
        } else {
            otherPathRounds += 1
        }
    }

    /// A round's responder sequence: per TTL, the router that answered (the first one, when tries met
    /// several) or the destination; nil where nothing answered. Ends at the destination.
    public static func sequence(_ trace: TraceResult, firstTTL: UInt8) -> [IPAddress?] {
        var sequence: [IPAddress?] = []
        for hop in trace.hops where hop.ttl >= firstTTL {
            let i = Int(hop.ttl - firstTTL)
            while sequence.count < i { sequence.append(nil) }
            let destination = hop.probes.first { $0.outcome.isFromDestination }?.responder
            sequence.append(destination ?? hop.firstResponder)
            if destination != nil { break }
        }
        return sequence
    }

    /// The state most rounds found (ties: the first seen), or nil before any round.
    public var mainState: PortState? { states.max { $0.rounds < $1.rounds }?.state }
}
