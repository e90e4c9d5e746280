// What a new-user trial of ICMP echo, rounds and send paths found confusing (issue 12's stop notes): each
// output must say what the network said, as JSON already did.

import FastTraceCore
import FastTraceStats
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

/// A trace a router's network unreachable stopped at TTL 2 (the lab's NAT for a DNAT target): JSON's
/// `stop` is `unreachable`, its state `filtered`.
private func stoppedByUnreachable(_ destination: IPv4Address = t4) -> TraceResult {
    trace(routers([1]) + [HopResult(ttl: 2, probes: Array(repeating: answered(router(9), 60, .unreachable(code: 0)),
        count: 3))], destination: destination, stop: .unreachable)
}

@Suite struct TrialFindingsTests {
    @Test("a trace stopped by a router's unreachable is named so in the summary, the graph and the report title")
    func unreachableIsNamedEverywhere() {
        let t = stoppedByUnreachable()
        #expect(t.state == .filtered && t.stopReason == .unreachable)
        var r = RunSummary()
        r.traces = 3
        r.filtered = 2
        r.unreachable = 1
        #expect(summaryLine(r, rate: 2000, maxInFlight: 4096).contains(", 2 filtered (1 stopped by a router's unreachable),"))
        // UDP: a trace stopped by an unreachable is filtered, not open|filtered; the summary counts it.
        r.openFiltered = 1
        r.filtered = 1
        #expect(summaryLine(r, rate: 2000, maxInFlight: 4096, method: .udp(.byPort))
            .contains(", 1 open|filtered, 1 filtered (1 stopped by a router's unreachable),"))
        let dot = graph([t])
        #expect(dot.contains("\"198.51.100.4\" [label=\"198.51.100.4\\nunreachable 443\""), "\(dot)")
        var stats = RoundStats(request: t.request, method: .tcp(.syn))
        for _ in 0..<3 { stats.add(t) }
        let title = ReportText.block(stats, requested: 3).split(separator: "\n").first.map(String.init) ?? ""
        #expect(title.contains("3 rounds, filtered 3 (3 stopped by a router's unreachable), destination not reached"),
            "\(title)")
    }

    @Test("-I with a port: ICMP has no port, and a list is not told to give the host alone")
    func icmpPortAdvice() {
        #expect(icmpPortRefusal(option: nil, batch: true)
            == "-p: ICMP echo (-I) has no port: each target of the list is traced once; leave -p out")
        #expect(icmpPortRefusal(option: nil, batch: false) == "-p: ICMP echo (-I) has no port; give the host alone")
        #expect(icmpPortRefusal(option: "443", batch: false) == "port '443': ICMP echo (-I) has no port; give the host alone")
    }

    @Test("one round, one probe a hop: the loss line says 1 probe")
    func oneProbeGrammar() {
        let hops = [HopResult(ttl: 1, probes: [answered(router(1), 50)]),
            HopResult(ttl: 2, probes: [answered(t4, 70, .synAck)])]
        var stats = RoundStats(request: trace(hops, destination: t4).request, method: .tcp(.syn))
        stats.add(trace(hops, destination: t4))
        let text = ReportText.block(stats, requested: 1)
        #expect(text.contains("Loss: no loss to the destination in 1 probe (up to "), "\(text)")
    }

    @Test("reports show a hop's MPLS labels as a trace does, and no StDev for a single sample")
    func reportMPLSAndOneSample() throws {
        let stack = MPLSStack(depth: 3, top: 24001 << 12 | 1, second: 16 << 12 | 1 << 8 | 1)
        var lsr = answered(router(9), 80)
        lsr.mpls = stack
        let hops = [HopResult(ttl: 1, probes: [answered(router(1), 50)]), HopResult(ttl: 2, probes: [lsr]),
            HopResult(ttl: 3, probes: [answered(t4, 90, .synAck)])]
        var stats = RoundStats(request: trace(hops, destination: t4).request, method: .tcp(.syn))
        stats.add(trace(hops, destination: t4))
        let text = ReportText.block(stats, requested: 1)
        let row = text.split(separator: "\n").first { $0.hasPrefix("   2  ") }.map(String.init) ?? ""
        // The mark a trace line has for the same answer, and StDev `-` (unknown from one RTT), not 0.000.
        #expect(row.contains("198.18.0.9" + mplsMark(stack)) && mplsMark(stack) == " <MPLS:L=24001,E=0,S=0,T=1/L=16,E=0,S=1,T=1/+1 more>",
            "\(text)")
        // The StDev cell, right-aligned under its header.
        let header = text.split(separator: "\n").first { $0.hasPrefix(" TTL") }.map(String.init) ?? ""
        let end = header.range(of: "StDev")?.upperBound.utf16Offset(in: header) ?? 0
        let cell = row.count >= end ? String(Array(row)[(end - 7)..<end]).trimmingCharacters(in: .whitespaces) : "?"
        #expect(cell == "-", "StDev of one sample: '\(cell)' in \(row)")
        let json = ReportJSON.line(stats, requested: 1)
        #expect(json.contains("\"addr\":\"198.18.0.9\",\"mpls\":[{\"label\":24001,\"tc\":0,\"s\":0,\"ttl\":1},"
            + "{\"label\":16,\"tc\":0,\"s\":1,\"ttl\":1}],\"mpls_depth\":3,"), "\(json)")
        #expect(json.contains("\"stddev_ms\":null"), "\(json)")
    }

    @Test("rounds stop at the gap as a list's trace does: a report of a black hole lists no ??? rows to -m")
    func roundsUseTheListsGap() throws {
        #expect(try FastTrace.parse(["-c", "3", "198.51.100.7", "443"]).gapLimit == 5)
        #expect(try FastTrace.parse(["--report", "198.51.100.7", "443"]).gapLimit == 5)
        #expect(try FastTrace.parse(["-c", "3", "--gap", "0", "198.51.100.7", "443"]).gapLimit == 0)
        #expect(try FastTrace.parse(["198.51.100.7", "443"]).gapLimit == 0)
        #expect(try FastTrace.parse(["--targets", "-", "-p", "443"]).gapLimit == 5)
    }

    @Test("--help and the README give -l's range for ICMP echo")
    func icmpLengthRange() throws {
        let help = FastTrace.helpMessage(columns: 1000)
        #expect(help.contains("ICMP echo (-I) 34...1500"), "\(help)")
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("ICMP echo (`-I`) 34–1500"))
    }
}

@Suite struct ShardOptionTests {
    /// The one line `--shard` / `--shard-seed` fail with, or nil when they are accepted.
    func failure(_ arguments: [String]) throws -> String? {
        do {
            _ = try FastTrace.parse(arguments).shard()
            return nil
        } catch let error as UsageFailure {
            return error.message
        }
    }

    @Test("--shard: bad values and a single target are refused in one line; the shard is what was asked")
    func badShards() throws {
        let list = ["--targets", "-", "-p", "443"]
        #expect(try failure(list + ["--shard", "0/3"]) == "--shard: 0/3: the shard must be 1...3 (shards count from 1: 1/3 to 3/3)")
        #expect(try failure(list + ["--shard", "4/3"]) == "--shard: 4/3: the shard must be 1...3 (shards count from 1: 1/3 to 3/3)")
        #expect(try failure(list + ["--shard", "a/b"])
            == "--shard: 'a/b' is not I/N: two whole numbers, this host's shard and how many share the list (--shard 1/3)")
        #expect(try failure(["--shard", "1/3", "198.51.100.7"])
            == "--shard: splits a --targets list between hosts; one target is not split")
        #expect(try failure(list + ["--shard", "1/3", "--shard-seed", "xyz"])
            == "--shard-seed: 'xyz' is not a whole number of up to 64 bits (decimal, or hex with 0x)")
        #expect(try failure(list + ["--shard-seed", "7"]) == "--shard-seed: goes with --shard")
        #expect(try FastTrace.parse(list + ["--shard", "2/3", "--shard-seed", "0x2a"]).shard()
            == Shard(index: 2, count: 3, seed: 42))
        #expect(try FastTrace.parse(list + ["--shard", "2/3"]).shard()?.seed == Shard.defaultSeed)
        #expect(try FastTrace.parse(list).shard() == nil)
    }
}
