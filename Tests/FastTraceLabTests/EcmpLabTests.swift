// Paris traceroute through the lab's wide ECMP (the wide-ecmp kind: a 4-way L4-hashed split, then a
// nested diamond whose branches differ by a router): every probe kind, over IPv4 and IPv6, must keep one
// flow per trace, so each trace follows exactly one of the truth's paths, its three probes per hop meet
// the same router, and it reaches the destination at that path's TTL. A kind whose flow changed from
// probe to probe would mix branches; the negative control shows that classic traceroute, which changes
// the UDP destination port per probe, does, and that the same judge catches it. Root and the lab
// (FT_LAB_PREFIX picks it).

import Foundation
import Testing

extension LabTruth {
    /// A kind behind ECMP splits with branches of unequal length: no one destination TTL, but a list of
    /// the paths a flow can take (scripts/lab.sh, write_truth).
    struct MultipathKind: Decodable {
        struct Split: Decodable {
            /// The router that splits, its TTL's ways, and the TTL at which they answer.
            var router: String
            var ttl: Int
            var ways: [String]
        }
        struct IPv6: Decodable {
            var prefix: String
            var example: String
            var hops: [[String]]
            var paths: [[String]]
            var splits: [Split]
        }
        var kind: String
        var prefix: String
        var example: String
        /// Per TTL every address that may answer ("target": the traced address).
        var hops: [[String]]
        /// Every path a flow can take: one address per TTL from 1, ending with "target" at its
        /// destination TTL.
        var paths: [[String]]
        var splits: [Split]
        var destination_ttls: [Int]
        var ports: [String: String]
        var udp_ports: [String: String]
        var icmp: String
        var ipv6: IPv6?

        /// The same kind as an IPv6 target meets it.
        var overIPv6: MultipathKind? {
            guard let ipv6 else { return nil }
            var kind = self
            (kind.prefix, kind.example, kind.hops, kind.paths, kind.splits, kind.ipv6) =
                (ipv6.prefix, ipv6.example, ipv6.hops, ipv6.paths, ipv6.splits, nil)
            return kind
        }
    }

    func multipathKind(named name: String) -> MultipathKind? { multipath_kinds?.first { $0.kind == name } }
}

/// Which of `paths` a trace followed, given per TTL (from 1) the distinct addresses its probes met there,
/// or why it followed none: probes of one hop that met different routers, a hop nobody answered, or a
/// sequence of routers that is no one path (branches mixed across TTLs).
func followedPath(_ answers: [[String]], target: String, paths: [[String]]) -> Result<[String], PathMismatch> {
    var sequence: [String] = []
    for (i, met) in answers.enumerated() {
        if met.count > 1 { return .failure(PathMismatch("ttl \(i + 1): one hop's probes met \(met)")) }
        guard let only = met.first else { return .failure(PathMismatch("ttl \(i + 1): no answer")) }
        sequence.append(only == target ? "target" : only)
    }
    guard let path = paths.first(where: { $0 == sequence }) else {
        return .failure(PathMismatch("\(sequence) is no path of the truth"))
    }
    return .success(path)
}

struct PathMismatch: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What the batch's traces crossed: per splitting router, the ways seen, and the destination TTLs.
struct SpreadSeen {
    var ways: [String: Set<String>] = [:]
    var destinationTTLs: Set<Int> = []

    mutating func add(_ path: [String], _ kind: LabTruth.MultipathKind) {
        for split in kind.splits where split.ttl <= path.count && split.ways.contains(path[split.ttl - 1]) {
            ways[split.router, default: []].insert(path[split.ttl - 1])
        }
        destinationTTLs.insert(path.count)
    }

    /// Why the spread is too narrow to have shown mixing, if it is: at least 3 of the first split's 4 ways,
    /// every way of the others, and both destination TTLs.
    func problems(_ kind: LabTruth.MultipathKind) -> [String] {
        var out: [String] = []
        for (i, split) in kind.splits.enumerated() {
            let seen = ways[split.router, default: []].count
            let needed = i == 0 ? split.ways.count - 1 : split.ways.count
            if seen < needed { out.append("split at \(split.router): \(seen) of \(split.ways.count) ways seen") }
        }
        if destinationTTLs != Set(kind.destination_ttls) {
            out.append("destination TTLs \(destinationTTLs.sorted()), expected \(kind.destination_ttls)")
        }
        return out
    }
}

/// One of fasttrace's probe kinds, as run against the wide-ecmp targets, and what the destination says.
struct EcmpProbeKind: CustomStringConvertible, Sendable {
    var name: String
    var arguments: [String]
    /// The destination hop's `kind` in JSON and the trace's `state`.
    var answer: String
    var state: String
    var description: String { name }

    static let all: [EcmpProbeKind] = [
        .init(name: "TCP SYN", arguments: ["-p", "443"], answer: "syn-ack", state: "open"),
        .init(name: "TCP ACK", arguments: ["-A", "-p", "443"], answer: "rst", state: "unfiltered"),
        .init(name: "UDP to DNS", arguments: ["-U", "-p", "53"], answer: "udp-reply", state: "open"),
        .init(name: "UDP to a closed port", arguments: ["-U", "-p", "33434"], answer: "port-unreachable",
            state: "closed"),
        .init(name: "ICMP echo", arguments: ["-I"], answer: "echo-reply", state: "reachable"),
    ]
}

/// The lab's wide-ecmp kind in `family` ("ipv4" or "ipv6") and `n` of its targets.
func wideEcmp(_ lab: Lab, family: String, _ n: Int) throws -> (LabTruth.MultipathKind, [String]) {
    let v4 = try #require(lab.truth.multipathKind(named: "wide-ecmp"), "the truth has no wide-ecmp kind")
    let kind = try #require(family == "ipv4" ? v4 : v4.overIPv6)
    let list = runTool([repoRoot + "/scripts/lab.sh", family == "ipv4" ? "targets" : "targets6", "wide-ecmp", String(n)])
    let targets = list.stdout.split(separator: "\n").map(String.init)
    try #require(targets.count == n, "\(list.stderr)")
    return (kind, targets)
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct EcmpLabTests {
    static let targetCount = 64

    @Test("Every probe kind keeps one flow through the wide ECMP: one path of the truth per trace, three probes per hop agreeing, the destination at that path's TTL",
        arguments: EcmpProbeKind.all, ["ipv4", "ipv6"])
    func everyProbeKindFollowsOnePath(probe: EcmpProbeKind, family: String) throws {
        let lab = try Lab.get()
        let (kind, targets) = try wideEcmp(lab, family: family, Self.targetCount)
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "--format", "json", "-n",
            "-q", "3", "-w", "1", "-m", "12", "--gap", "3"] + probe.arguments,
            stdin: targets.map { $0 + "\n" }.joined(), timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let traces = traceObjects(r.stdout)
        #expect(traces.count == targets.count)
        #expect(Set(traces.compactMap { $0["target"] as? String }) == Set(targets))
        var wrong: [String] = []
        var spread = SpreadSeen()
        for object in traces {
            let target = object["target"] as? String ?? "?"
            if object["family"] as? String != family { wrong.append("\(target): family \(object["family"] ?? "none")") }
            let hops = object["hops"] as? [[String: Any]] ?? []
            var answers: [[String]] = []
            for (i, hop) in hops.enumerated() {
                let ttl = hop["ttl"] as? Int
                if ttl != i + 1 { wrong.append("\(target): hop \(i) has ttl \(ttl.map(String.init) ?? "none")") }
                // `addrs` is there only when the hop's probes met different routers.
                let met = hop["addrs"] as? [String] ?? [hop["addr"] as? String].compactMap { $0 }
                answers.append(met)
                let rtts = hop["rtt_ms"] as? [Any] ?? []
                if rtts.count != 3 || rtts.contains(where: { !($0 is Double) }) {
                    wrong.append("\(target) ttl \(i + 1): probes answered \(rtts)")
                }
            }
            switch followedPath(answers, target: target, paths: kind.paths) {
            case .failure(let why):
                wrong.append("\(target): \(why)")
            case .success(let path):
                spread.add(path, kind)
                if hops.last?["kind"] as? String != probe.answer {
                    wrong.append("\(target): destination answered \(hops.last?["kind"] ?? "nothing")")
                }
            }
            if object["reached"] as? Bool != true || object["state"] as? String != probe.state {
                wrong.append("\(target): reached \(object["reached"] ?? "-"), state \(object["state"] ?? "-")")
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(8))")
        // The batch spread over the ways: had a probe kind's flow changed per probe, it would have shown.
        let narrow = spread.problems(kind)
        #expect(narrow.isEmpty, "\(narrow); seen \(spread)")
        #expect(r.stderr.contains(" 0 rejected"), "\(r.stderr)")
    }

    @Test("Negative control: classic traceroute (UDP, a new destination port per probe) mixes branches, and the same judge says so",
        arguments: ["ipv4", "ipv6"])
    func classicTracerouteMixesBranches(family: String) throws {
        let lab = try Lab.get()
        let (kind, targets) = try wideEcmp(lab, family: family, 16)
        var mixed = 0, followed = 0
        var unexpected: [String] = []
        for target in targets {
            let r = runTool(["ip", "netns", "exec", lab.namespace, "traceroute", family == "ipv4" ? "-4" : "-6", "-n",
                "-q", "3", "-w", "1", "-m", "10", target], timeout: 60)
            #expect(r.status == 0, "\(r.stderr)")
            let answers = tracerouteAnswers(r.stdout)
            switch followedPath(answers, target: target, paths: kind.paths) {
            case .success: followed += 1
            case .failure(let why):
                if "\(why)".contains("no answer") { unexpected.append("\(target): \(why)") } else { mixed += 1 }
            }
            // Every address it met is one the truth allows at that TTL: the mixing is of real branches.
            for (i, met) in answers.enumerated() where i < kind.hops.count {
                let allowed = kind.hops[i].map { $0 == "target" ? target : $0 }
                if !met.allSatisfy(allowed.contains) { unexpected.append("\(target) ttl \(i + 1): \(met) not in \(allowed)") }
            }
        }
        #expect(unexpected.isEmpty, "\(unexpected.prefix(8))")
        // With 3 probes on 3 different flows at the 4-way split, a trace keeps to one way 1 time in 16.
        #expect(mixed >= targets.count / 2, "\(mixed) of \(targets.count) traces mixed branches, \(followed) did not")
    }
}

/// Per TTL the distinct addresses in a `traceroute -n` report (`*` for a probe unanswered), in order.
func tracerouteAnswers(_ text: String) -> [[String]] {
    text.split(separator: "\n").dropFirst().compactMap { line -> [String]? in
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let first = fields.first, Int(first) != nil else { return nil }
        var met: [String] = []
        for field in fields.dropFirst() {
            let f = String(field)
            let isAddress = f.contains(":") || f.split(separator: ".").count == 4
            if isAddress && !met.contains(f) { met.append(f) }
        }
        return met
    }
}
