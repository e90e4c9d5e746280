// Rounds (-c) against the kernel's own routers, and their hostile twins: loss injected on one link with
// nftables (`numgen random mod 100 < K drop` on r3's forward path) must start at the hop after it and
// persist; with the routers' ICMP rate limits on, loss at the near hops must be marked limited, never
// path loss, and the destination lose nothing; a route changed mid-run (r3's route to the open targets
// moved from r4a to r4b) must show as two paths, not as loss; SIGINT between rounds reports what it has.
// Every rule and route change is undone even when a test fails (defer), and every run is bounded in time.

import Foundation
import Testing

/// One `--report --format json` object.
struct JSONReport {
    let object: [String: Any]
    init?(line: Substring) {
        guard let data = line.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            object["type"] as? String == "report"
        else { return nil }
        self.object = object
    }
    var target: String { object["target"] as? String ?? "" }
    var rounds: Int { object["rounds"] as? Int ?? -1 }
    var hops: [[String: Any]] { object["hops"] as? [[String: Any]] ?? [] }
    var paths: [[String: Any]] { object["paths"] as? [[String: Any]] ?? [] }
    var loss: [String: Any] { object["loss"] as? [String: Any] ?? [:] }
    func hop(_ ttl: Int) -> [String: Any]? { hops.first { $0["ttl"] as? Int == ttl } }
}

func parseReports(_ output: String) -> [JSONReport] { output.split(separator: "\n").compactMap(JSONReport.init(line:)) }

/// Runs `body` with `rule` in a table of its own in namespace `node`'s forward chain; the table is deleted
/// afterwards, also when `body` throws.
func withForwardRule<T>(_ node: String, _ rule: String, _ body: () throws -> T) throws -> T {
    let ns = Lab.namespace(node), table = "ftrounds"
    _ = runTool(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", table])
    defer { _ = runTool(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", table]) }
    let script = """
        table inet \(table) {
            chain loss {
                type filter hook forward priority -10; policy accept;
                \(rule)
            }
        }
        """
    let added = runTool(["ip", "netns", "exec", ns, "nft", "-f", "-"], stdin: script)
    guard added.status == 0 else { throw LabError("nft in \(ns): \(added.stderr)") }
    return try body()
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct RoundsLabTests {
    @Test("Clean lab, 3 rounds of every kind: 0 % loss where the truth answers, 100 % at silent hops, states right")
    func cleanRounds() throws {
        let lab = try Lab.get()
        let list = ["open", "firewalled", "silent", "blackhole", "dnat"].map { lab.truth.kind(named: $0).example }
            .joined(separator: "\n")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-p", "443", "-c", "3",
            "-q", "2", "-w", "1", "-m", "10", "--format", "json"], stdin: list, timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let reports = parseReports(r.stdout)
        #expect(reports.count == 5)
        for report in reports {
            let kind = try #require(lab.truth.kinds.first { k in report.target == k.example })
            #expect(report.rounds == 3)
            let states = report.object["states"] as? [[String: Any]] ?? []
            let expected = kind.ports["443"] ?? "closed"
            #expect(states.count == 1 && states.first?["state"] as? String == expected && states.first?["rounds"] as? Int == 3,
                "\(kind.kind): \(states)")
            for (i, allowed) in kind.hops.enumerated() {
                guard let hop = report.hop(i + 1) else { continue }
                let loss = hop["loss_pct"] as? Double ?? -1
                if allowed.isEmpty {
                    #expect(loss == 100, "\(kind.kind) ttl \(i + 1): \(hop)")
                } else {
                    #expect(loss == 0, "\(kind.kind) ttl \(i + 1): \(hop)")
                }
            }
            if let ttl = kind.destination_ttl {
                #expect(report.object["dest_ttl_min"] as? Int == ttl && report.hop(ttl)?["loss_pct"] as? Double == 0)
            }
            #expect(report.loss["start_ttl"] is NSNull, "\(kind.kind): \(report.loss)")
        }
    }

    @Test("UDP (-U, port 53) and ICMP echo (-I) rounds through the same engine: states as the truth says, no loss at the routers or an answering destination",
        arguments: ["udp", "icmp"])
    func otherProbeKinds(proto: String) throws {
        let lab = try Lab.get()
        let kinds = ["open", "firewalled", "silent", "blackhole"].map { lab.truth.kind(named: $0) }
        let list = kinds.map(\.example).joined(separator: "\n")
        let args = proto == "udp" ? ["-U", "-p", "53"] : ["-I"]
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-c", "3", "-q", "2", "-w", "1",
            "-m", "10", "--format", "json"] + args, stdin: list, timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let reports = parseReports(r.stdout)
        #expect(reports.count == kinds.count)
        for report in reports {
            let kind = try #require(kinds.first { $0.example == report.target })
            #expect(report.rounds == 3 && report.object["protocol"] as? String == proto)
            #expect((report.object["port"] != nil) == (proto == "udp"))
            let expected = proto == "udp" ? kind.udp_ports?["53"] : kind.icmp
            let states = report.object["states"] as? [[String: Any]] ?? []
            #expect(states.count == 1 && states.first?["state"] as? String == expected, "\(kind.kind): \(states)")
            for ttl in 1...6 { #expect(report.hop(ttl)?["loss_pct"] as? Double == 0, "\(kind.kind) ttl \(ttl)") }
            if let ttl = report.object["dest_ttl_min"] as? Int {
                #expect(ttl == kind.destination_ttl && report.hop(ttl)?["loss_pct"] as? Double == 0, "\(kind.kind)")
            }
            #expect(report.loss["start_ttl"] is NSNull, "\(kind.kind): \(report.loss)")
        }
    }

    @Test("Loss injected on r3's forward path: it starts at hop 4 and persists to the destination; hops 1-3 lose nothing")
    func injectedLossStartsAtTheNextHop() throws {
        let lab = try Lab.get()
        let target = lab.truth.kind(named: "open").example
        let r = try withForwardRule("r3", "ip daddr 198.19.0.0/16 numgen random mod 100 < 30 drop") {
            runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "30", "-q", "3", "-w", "0.5",
                "--format", "json", target, "443"], timeout: 150)
        }
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(parseReports(r.stdout).first, "\(r.stdout) \(r.stderr)")
        #expect(report.rounds == 30)
        for ttl in 1...3 { #expect(report.hop(ttl)?["loss_pct"] as? Double == 0, "ttl \(ttl): \(report.hop(ttl) ?? [:])") }
        for ttl in 4...7 {
            let loss = report.hop(ttl)?["loss_pct"] as? Double ?? -1
            // The destination may lose more than the link: a dropped RST (ours, to its SYN-ACK) leaves a
            // half-open connection that answers the next SYN of the same 4-tuple with a bare ACK (seen in a
            // capture), which names no probe.
            #expect(loss > 12 && (ttl == 7 || loss < 50), "ttl \(ttl): \(loss)")
            #expect(report.hop(ttl)?["mark"] as? String == "path", "ttl \(ttl): \(report.hop(ttl) ?? [:])")
        }
        #expect(report.loss["start_ttl"] as? Int == 4, "\(report.loss)")
        #expect(report.loss["start_ttl_latest"] as? Int == 4, "\(report.loss)")
        #expect(report.loss["end_is_destination"] as? Bool == true)
        // The text says the same.
        let text = try withForwardRule("r3", "ip daddr 198.19.0.0/16 numgen random mod 100 < 30 drop") {
            runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "30", "-q", "3", "-w", "0.5", "--report",
                target, "443"], timeout: 150)
        }
        #expect(text.stdout.contains("loss at the destination starts at hop 4 and persists"), "\(text.stdout)")
    }

    @Test("ICMP rate limits on: loss at the near hops is marked limited, not path loss; the destination loses nothing")
    func rateLimitedHopsAreLimited() throws {
        let lab = try Lab.get()
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "open", "30"]).stdout
        let r = try withRateLimits {
            runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-p", "443", "-c", "8",
                "-q", "3", "-w", "1", "--format", "json"], stdin: list, timeout: 180)
        }
        #expect(r.status == 0, "\(r.stderr)")
        let reports = parseReports(r.stdout)
        #expect(reports.count == 30)
        var limited = 0, caught = 0
        for report in reports {
            #expect(report.rounds == 8)
            #expect(report.hop(7)?["loss_pct"] as? Double == 0, "\(report.target): \(report.hop(7) ?? [:])")
            #expect(report.loss["start_ttl"] is NSNull, "\(report.target): \(report.loss)")
            for hop in report.hops {
                #expect(hop["mark"] as? String != "path", "\(report.target): \(hop)")
                if hop["mark"] as? String == "limited" {
                    limited += 1
                    if hop["rate_limit_caught"] as? Bool == true { caught += 1 }
                }
            }
        }
        // The near routers were limiting: many hops show it, and the engine caught it at some.
        print("rate limits on: \(limited) hops marked limited, \(caught) of them caught")
        #expect(limited >= 30, "\(limited) hops marked limited")
        #expect(caught > 0)
    }

    @Test("A route changed mid-run (r3: r4a, then r4b) shows as two paths, each without loss")
    func routeChangeIsTwoPaths() throws {
        let lab = try Lab.get()
        let target = lab.truth.kind(named: "open").example
        let r3 = Lab.namespace("r3")
        let restore = ["ip", "-n", r3, "route", "replace", "198.19.0.0/16", "nexthop", "via", "198.18.0.13", "dev",
            "dn-a", "nexthop", "via", "198.18.0.17", "dev", "dn-b"]
        defer { _ = runTool(restore) }
        try run(["ip", "-n", r3, "route", "replace", "198.19.0.0/16", "via", "198.18.0.13", "dev", "dn-a"])
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "14", "-w", "1",
            "--format", "json", target, "443"], stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        usleep(5_500_000)
        try run(["ip", "-n", r3, "route", "replace", "198.19.0.0/16", "via", "198.18.0.17", "dev", "dn-b"])
        #expect(child.wait(timeout: 60) == 0, "\(scratch.read("err"))")
        let report = try #require(parseReports(scratch.read("out")).first, "\(scratch.read("out"))")
        #expect(report.rounds == 14)
        let paths = report.paths
        #expect(paths.count == 2, "\(paths.map { $0["addrs"] ?? "" })")
        #expect(paths.map { ($0["addrs"] as? [Any])?[3] as? String } == ["198.18.0.13", "198.18.0.17"])
        #expect(paths.allSatisfy { ($0["rounds"] as? Int ?? 0) >= 3 })
        for hop in report.hops { #expect(hop["loss_pct"] as? Double == 0, "\(hop)") }
        #expect((report.hop(4)?["responders"] as? [Any])?.count == 2)
        #expect(report.loss["start_ttl"] is NSNull)
    }

    @Test("SIGINT between rounds: the report has the rounds so far, says interrupted, exit 130")
    func interruptedRounds() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "50", "-w", "1",
            "--format", "json", lab.truth.kind(named: "open").example, "443"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        usleep(3_500_000)
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        let lines = scratch.read("out").split(separator: "\n")
        let report = try #require(parseReports(scratch.read("out")).first, "\(lines)")
        #expect(lines.count == 1)
        #expect(report.object["interrupted"] as? Bool == true)
        #expect((1...6).contains(report.rounds), "\(report.rounds) rounds")  // a slow start (a loaded CI machine) may leave one
        #expect(report.hop(7)?["loss_pct"] as? Double == 0)
    }

    @Test("One black-holed target, rounds interrupted: the report stops at the gap, Destination not reached, exit 130")
    func interruptedBlackHole() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "50", "-w", "0.3",
            lab.truth.kind(named: "blackhole").example, "443"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        usleep(4_000_000)
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        let out = scratch.read("out")
        // As README says: the report of the rounds there are, then the closing line a single trace has.
        #expect(scratch.read("err").contains("Destination not reached"), "\(scratch.read("err"))")
        #expect(out.contains("(interrupted)") && out.contains("destination not reached"), "\(out)")
        // Hops 1-6 answer; the rounds stop 5 silent TTLs past them (the gap, as a list's trace does), not at -m 30.
        let ttls = out.split(separator: "\n").compactMap { line -> Int? in
            let fields = line.split(separator: " ")
            return line.hasPrefix("  ") ? fields.first.flatMap { Int($0) } : nil
        }
        #expect(ttls.max() == 11, "\(out)")
    }

    @Test("--plot: the reports drawn into an SVG that renders; a full disk is one line and exit 1")
    func plot() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = lab.truth.kind(named: "open").example
        let svg = scratch.file("plot.svg")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "3", "-w", "0.3", "--plot", svg, open, "443"],
            timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        let text = scratch.read("plot.svg")
        #expect(text.contains("<g class=\"target\" data-target=\"\(open)\" data-port=\"443\""), "\(text.prefix(600))")
        // One box per hop that answered: the 6 routers and the destination.
        #expect(text.components(separatedBy: "<g class=\"rtt\"").count - 1 == 7)
        let png = runTool(["rsvg-convert", "-o", scratch.file("plot.png"), svg])
        #expect(png.status == 0, "\(png.stderr)")
        let full = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "2", "-w", "0.3", "--plot", "/dev/full",
            open, "443"], timeout: 60)
        #expect(full.status == 1 && full.stdout.contains("2 rounds"), "\(full.status) \(full.stderr)")
        #expect(full.stderr.split(separator: "\n").filter { $0.contains("--plot") }
            == ["fasttrace: --plot /dev/full: cannot write: No space left on device (ENOSPC)"], "\(full.stderr)")
        // A run refused after the file is opened (the vantage's own address) leaves an existing file as it was.
        scratch.write("keep.svg", "keep\n")
        let refused = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "2", "--plot", scratch.file("keep.svg"),
            "198.18.0.2", "443"], timeout: 30)
        #expect(refused.status == 2 && scratch.read("keep.svg") == "keep\n", "\(refused.stderr)")
        // A file that cannot be opened is said before any round, not after them all.
        let missing = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-c", "2", "-w", "0.3", "--plot",
            scratch.file("no-such-dir/plot.svg"), open, "443"], timeout: 60)
        #expect(missing.status == 2 && missing.stdout.isEmpty, "\(missing.status) \(missing.stdout)")
        #expect(missing.stderr == "fasttrace: --plot \(scratch.file("no-such-dir/plot.svg")): cannot write: "
            + "No such file or directory (ENOENT)\n", "\(missing.stderr)")
    }

    @Test("Bad rounds: -c 0, -c -1, -c abc and a CSV report are refused with one line and exit 2; --report alone is 10 rounds")
    func badInput() throws {
        for (args, message) in [
            (["-c", "0"], "fasttrace: -c: rounds must be 1...1000000 (got 0)"),
            (["-c", "-1"], "fasttrace: -c: rounds must be 1...1000000 (got -1)"),
            (["-c-1"], "fasttrace: -c: rounds must be 1...1000000 (got -1)"),
            (["-c", "abc"], "fasttrace: the value 'abc' is invalid for '-c <rounds>'"),
            (["--rounds", "abc"], "fasttrace: the value 'abc' is invalid for '--rounds <rounds>'"),
            (["-c", "3", "--format", "csv"], "fasttrace: -c: the report is written as text or json, not csv"),
            (["--report", "--format", "dot"], "fasttrace: --report: the report is written as text or json, not dot"),
        ] {
            let r = runTool([fasttraceBinary] + args + ["198.19.0.10", "443"])
            #expect(r.status == 2 && r.stderr == message + "\n", "\(args): \(r.status) \(r.stderr)")
        }
        let lab = try Lab.get()
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--report", "-w", "0.5", "--format", "json",
            lab.truth.kind(named: "open").example, "443"], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(parseReports(r.stdout).first?.object["rounds_requested"] as? Int == 10)
        #expect(parseReports(r.stdout).first?.rounds == 10)
    }
}

/// `--shard I/N` (issue 12): hosts given the same list and 1/N … N/N trace every target × port exactly once
/// between them.
@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct ShardLabTests {
    @Test("--shard 1/2 and 2/2 of one list: every target × port traced exactly once, each line names its shard")
    func twoShardsCoverTheList() throws {
        let lab = try Lab.get()
        // 16 open and 8 firewalled targets (prefixes, as lists give them) × 2 ports: 48 target × ports.
        let list = "198.19.0.0/28\n198.18.32.0/29\n"
        var seen: [String: String] = [:]
        var duplicates: [String] = []
        for shard in ["1/2", "2/2"] {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-p", "80,443",
                "--shard", shard, "--format", "json", "-q", "1", "-w", "0.5", "-m", "10", "--gap", "2"],
                stdin: list, timeout: 120)
            #expect(r.status == 0, "\(shard): \(r.stderr)")
            for line in r.stdout.split(separator: "\n") {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(object["shard"] as? String == shard)
                let key = "\(object["target"] as? String ?? "?"):\(object["port"] as? Int ?? -1)"
                if seen[key] != nil { duplicates.append(key) }
                seen[key] = shard
                // Each trace still right: the open prefix open on both ports, the firewalled one on 443 only.
                let open = (object["target"] as? String ?? "").hasPrefix("198.19.") || object["port"] as? Int == 443
                #expect((object["state"] as? String == "open") == open, "\(line)")
            }
        }
        #expect(duplicates.isEmpty, "traced by both shards: \(duplicates)")
        #expect(seen.count == 48, "\(seen.count) of 48 target × ports traced")
        // Both shards took a share (a keyed sample, not one of them all).
        #expect(Set(seen.values) == ["1/2", "2/2"] && seen.values.count { $0 == "1/2" } > 10)
    }

    @Test("A shard the list gives nothing is no bad input: one line, nothing traced, exit 0; the other shard traces it")
    func emptyShard() throws {
        let lab = try Lab.get()
        var statuses: [String: Int32] = [:]
        for shard in ["1/2", "2/2"] {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-p", "443",
                "--shard", shard, "--format", "json", "-q", "1", "-w", "0.5", "-m", "10"], stdin: "198.19.0.10\n", timeout: 60)
            statuses[shard] = r.status
            if r.stdout.isEmpty {
                #expect(r.status == 0 && r.stderr == "fasttrace: -: no target x port of it is in shard \(shard) (1 in the "
                    + "others): nothing to trace\n", "\(shard): \(r.stderr)")
            } else {
                #expect(r.status == 0 && parseTraces(r.stdout).map(\.target) == ["198.19.0.10"], "\(shard): \(r.stderr)")
            }
        }
        #expect(statuses == ["1/2": 0, "2/2": 0])
    }
}
