// Continuous mode and the metrics endpoint against the kernel's own routers: `--interval` with `--count`
// traces every target that many times, an interval apart; `--changes` reports a route changed mid-run (r3's
// route to the open targets moved from r4a to r4b) as one path change, and loss injected on r3's forward
// path (nftables `numgen`) as a loss shift starting at hop 4; SIGHUP re-reads the list (and keeps it when
// the file is gone); SIGINT ends the run as interrupted with valid JSON; a real Prometheus server (Debian's)
// in the vantage namespace scrapes `/metrics` on loopback there and its HTTP API returns the values the lab
// implies, while garbage requests and idle connections neither crash the endpoint nor stall the engine.
// Every rule, route, file and process is undone even when a test fails (defer); every wait is bounded.

import Foundation
import Testing

/// One `--changes` event.
struct ChangeEventLine {
    let object: [String: Any]
    init?(line: Substring) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            object["type"] as? String == "change"
        else { return nil }
        self.object = object
    }
    var change: String { object["change"] as? String ?? "" }
    var before: [String: Any] { object["before"] as? [String: Any] ?? [:] }
    var after: [String: Any] { object["after"] as? [String: Any] ?? [:] }
}

func parseEvents(_ output: String) -> [ChangeEventLine] { output.split(separator: "\n").compactMap(ChangeEventLine.init(line:)) }

/// Every line of `text` parses as a JSON object.
func allLinesAreJSON(_ text: String) -> Bool {
    text.split(separator: "\n").allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) is [String: Any] }
}

/// Polls `condition` every 0.25 s for at most `seconds`; true once it holds.
func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    for _ in 0..<Int(seconds * 4) {
        if condition() { return true }
        usleep(250_000)
    }
    return condition()
}

/// The lab's open targets go through r3 to r4a only (not the ECMP pair) for `body`; the pair is restored
/// afterwards, also when `body` throws.
func withRouteViaR4a<T>(_ body: () throws -> T) throws -> T {
    let r3 = Lab.namespace("r3")
    defer {
        _ = runTool(["ip", "-n", r3, "route", "replace", "198.19.0.0/16", "nexthop", "via", "198.18.0.13", "dev",
            "dn-a", "nexthop", "via", "198.18.0.17", "dev", "dn-b"])
    }
    try run(["ip", "-n", r3, "route", "replace", "198.19.0.0/16", "via", "198.18.0.13", "dev", "dn-a"])
    return try body()
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct MonitorLabTests {
    @Test("--interval 0.5 --count 3: every target three times, its rounds at least the interval apart, exit 0")
    func countBoundsTheRun() throws {
        let lab = try Lab.get()
        let list = ["198.19.0.10", "198.19.0.11", lab.truth.kind(named: "firewalled").example].joined(separator: "\n")
        let started = Date()
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-p", "443", "--interval", "0.5",
            "--count", "3", "-w", "0.5", "-m", "10", "--format", "json"], stdin: list, timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 20)
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 9, "\(r.stdout)")
        let starts = Dictionary(grouping: r.stdout.split(separator: "\n").compactMap { line -> (String, Date)? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let target = o["target"] as? String, let start = o["start"] as? String,
                let date = ISO8601DateFormatter.fractional.date(from: start)
            else { return nil }
            return (target, date)
        }, by: \.0)
        #expect(starts.count == 3)
        for (target, rounds) in starts {
            let times = rounds.map(\.1).sorted()
            #expect(times.count == 3, "\(target)")
            for (a, b) in zip(times, times.dropFirst()) {
                #expect(b.timeIntervalSince(a) >= 0.45, "\(target): rounds \(b.timeIntervalSince(a)) s apart")
            }
        }
        #expect(r.stderr.contains("9 traces, 9 reached"), "\(r.stderr)")
    }

    @Test("--changes: a route changed mid-run (r4a, then r4b) is one path change with before and after, nothing else")
    func routeChangeEvent() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        try withRouteViaR4a {
            let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--interval", "0.4",
                "--count", "20", "--changes", "-w", "0.5", "-m", "10", "198.19.0.10", "443"],
                stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
            defer { child.stop() }
            usleep(3_500_000)
            try run(["ip", "-n", Lab.namespace("r3"), "route", "replace", "198.19.0.0/16", "via", "198.18.0.17", "dev",
                "dn-b"])
            #expect(child.wait(timeout: 60) == 0, "\(scratch.read("err"))")
        }
        let output = scratch.read("out")
        #expect(allLinesAreJSON(output), "\(output)")
        let events = parseEvents(output)
        #expect(events.count == 1, "\(output)")
        let event = try #require(events.first)
        #expect(event.change == "path")
        #expect((event.before["addrs"] as? [Any])?[3] as? String == "198.18.0.13", "\(event.before)")
        #expect((event.after["addrs"] as? [Any])?[3] as? String == "198.18.0.17", "\(event.after)")
        #expect(event.before["path_id"] as? String != event.after["path_id"] as? String)
        #expect(event.object["target"] as? String == "198.19.0.10" && event.object["port"] as? Int == 443)
        let round = event.object["round"] as? Int ?? 0
        #expect(round > 3 && round < 20, "\(event.object)")
    }

    @Test("--changes: loss injected on r3's forward path mid-run is a loss shift from 0 %, starting at hop 4")
    func injectedLossEvent() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--interval", "0.3",
            "--count", "45", "--change-window", "15", "--changes", "-q", "3", "-w", "0.3", "-m", "8",
            "198.19.0.10", "443"], stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        // The first window (15 rounds, 4.5 s) runs clean; then half the packets r3 forwards to the open
        // targets are dropped until the run ends.
        usleep(5_500_000)
        let status = try withForwardRule("r3", "ip daddr 198.19.0.0/16 numgen random mod 100 < 50 drop") {
            child.wait(timeout: 120)
        }
        #expect(status == 0, "\(scratch.read("err"))")
        let output = scratch.read("out")
        #expect(allLinesAreJSON(output), "\(output)")
        let losses = parseEvents(output).filter { $0.change == "loss" }
        let event = try #require(losses.first, "\(output)")
        #expect(event.before["lost"] as? Int == 0 && event.before["first_round"] as? Int == 1, "\(event.before)")
        #expect((event.after["loss_pct"] as? Double ?? 0) > 15, "\(event.after)")
        #expect(event.after["start_ttl"] as? Int == 4 && event.after["start_ttl_latest"] as? Int == 4, "\(event.after)")
        #expect(event.after["end_is_destination"] as? Bool == true)
        #expect(parseEvents(output).allSatisfy { $0.change != "path" }, "\(output)")
    }

    @Test("SIGHUP re-reads --targets: kept, added and removed targets; a file gone keeps the list and says so on one line")
    func sighupReloads() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // A repeated line in each list: dropped, named, and counted in the reload line and the summary (the
        // continuous summary left them out).
        scratch.write("list", "198.19.0.10\n198.19.0.11\n198.19.0.10\n")
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", scratch.file("list"),
            "-p", "443", "--interval", "0.5", "-w", "0.5", "-m", "10", "--format", "json"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        #expect(eventually(10) { parseTraces(scratch.read("out")).count >= 4 })
        scratch.write("list", "198.19.0.11\n198.19.0.12\nnot a target!\n198.19.0.12\n")
        kill(child.pid, SIGHUP)
        #expect(eventually(10) { scratch.read("err").contains("re-read") }, "\(scratch.read("err"))")
        // From a second after the reload on, only the new list is traced.
        usleep(1_000_000)
        let mark = scratch.read("out").count
        #expect(eventually(10) {
            let later = String(scratch.read("out").dropFirst(mark))
            return parseTraces(later).filter { $0.target == "198.19.0.12" }.count >= 2
        })
        try FileManager.default.removeItem(atPath: scratch.file("list"))
        kill(child.pid, SIGHUP)
        #expect(eventually(10) { scratch.read("err").contains("cannot read target file") }, "\(scratch.read("err"))")
        usleep(1_500_000)
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        let later = parseTraces(String(scratch.read("out").dropFirst(mark)))
        #expect(!later.contains { $0.target == "198.19.0.10" }, "removed target still traced")
        #expect(later.contains { $0.target == "198.19.0.11" } && later.contains { $0.target == "198.19.0.12" })
        let err = scratch.read("err")
        #expect(err.contains("fasttrace: SIGHUP: \(scratch.file("list")) re-read: 2 target x ports (1 kept, 1 added, "
            + "1 removed), 1 line skipped, 1 duplicate target dropped"), "\(err)")
        #expect(err.contains("\(scratch.file("list")):3: "), "\(err)")
        #expect(err.contains("\(scratch.file("list")):4: ") && err.contains("(duplicate dropped)"), "\(err)")
        let summary = err.split(separator: "\n").last { $0.hasPrefix("fasttrace: ") && $0.contains(" traces, ") }
        #expect(summary?.hasSuffix(", 1 duplicate target dropped, 1 line skipped in re-reads") == true, "\(err)")
        let gone = err.split(separator: "\n").filter { $0.contains("cannot read target file") }
        #expect(gone.count == 1 && gone[0].contains("the list stays as it was (2 target x ports)"), "\(err)")
        #expect(allLinesAreJSON(scratch.read("out")))
    }

    @Test("A line a SIGHUP re-read skipped counts at the end as at the start: in the summary, and exit status 3 (a trial's run ended 0)")
    func sighupSkippedLinesCountAtTheEnd() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        scratch.write("list", "198.19.0.10\n")
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", scratch.file("list"),
            "-p", "443", "--interval", "0.5", "--duration", "4", "-q", "1", "-w", "0.5", "-m", "10", "--format", "json"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        #expect(eventually(10) { !parseTraces(scratch.read("out")).isEmpty }, "\(scratch.read("err"))")
        scratch.write("list", "198.19.0.10\nnot a target!\n")
        kill(child.pid, SIGHUP)
        #expect(eventually(10) { scratch.read("err").contains("re-read") }, "\(scratch.read("err"))")
        #expect(child.wait(timeout: 30) == 3, "\(scratch.read("err"))")
        let err = scratch.read("err")
        let summary = err.split(separator: "\n").last { $0.hasPrefix("fasttrace: ") && $0.contains(" traces, ") }
        #expect(summary?.hasSuffix(", 1 line skipped in re-reads") == true, "\(err)")
    }

    @Test("A SIGHUP while the list is being re-read is not dropped: the list is read again once that is done (a trial's newer list was never applied)")
    func sighupDuringAReloadReadsAgain() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        scratch.write("list", "198.19.0.10\n")
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", scratch.file("list"),
            "-p", "443", "--interval", "10", "-q", "1", "-w", "0.3", "-m", "10", "--max-prefix-addresses", "65536",
            "--format", "json"], stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        #expect(eventually(10) { !parseTraces(scratch.read("out")).isEmpty }, "\(scratch.read("err"))")
        // A /16 takes a while to read (65,536 routes looked up); 100 ms into it the list is written again
        // and signalled again. Each list is written to a new file moved into place, as editors do.
        func replace(_ text: String) throws {
            scratch.write("next", text)
            _ = rename(scratch.file("next"), scratch.file("list"))
        }
        try replace("198.19.0.0/16\n")
        kill(child.pid, SIGHUP)
        usleep(100_000)
        try replace("198.19.0.41\n198.19.0.42\n")
        kill(child.pid, SIGHUP)
        #expect(eventually(20) { scratch.read("err").contains("re-read: 2 target x ports") }, "\(scratch.read("err"))")
        let err = scratch.read("err")
        #expect(err.contains("is being re-read already; it is read again once that is done"),
            "the second signal came after the first re-read ended, the test proves nothing: \(err)")
        usleep(1_000_000)
        let mark = scratch.read("out").count
        // The newer list's targets start their rounds within the interval; none of the /16's other addresses does.
        #expect(eventually(20) {
            Set(parseTraces(String(scratch.read("out").dropFirst(mark))).map(\.target)).isSuperset(of: ["198.19.0.41", "198.19.0.42"])
        }, "\(scratch.read("err"))")
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130)
        let later = Set(parseTraces(String(scratch.read("out").dropFirst(mark))).map(\.target))
        #expect(later.isSubset(of: ["198.19.0.41", "198.19.0.42"]), "\(later.sorted().prefix(5))")
    }

    @Test("SIGHUP keeps --shard: the re-read list is split as a fresh run of the same shard splits it")
    func sighupKeepsTheShard() throws {
        // The defect: the re-read list was read without the shard, so after a SIGHUP every host traced
        // the whole list, each line still saying "shard":"1/2".
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let longer = (10..<34).map { "198.19.0.\($0)" }
        scratch.write("full", longer.joined(separator: "\n") + "\n")
        let fresh = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", scratch.file("full"), "-p", "443",
            "--shard", "1/2", "-q", "1", "-w", "0.5", "-m", "10", "--format", "json"], timeout: 60)
        let owned = Set(parseTraces(fresh.stdout).map(\.target))
        #expect(owned.count > 2 && owned.count < longer.count - 2, "\(fresh.stderr)")
        scratch.write("list", longer.prefix(6).joined(separator: "\n") + "\n")
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", scratch.file("list"),
            "-p", "443", "--shard", "1/2", "--interval", "0.5", "-q", "1", "-w", "0.5", "-m", "10", "--format", "json"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        #expect(eventually(10) { !parseTraces(scratch.read("out")).isEmpty }, "\(scratch.read("err"))")
        scratch.write("list", longer.joined(separator: "\n") + "\n")
        kill(child.pid, SIGHUP)
        #expect(eventually(10) { scratch.read("err").contains("re-read") }, "\(scratch.read("err"))")
        usleep(1_000_000)
        let mark = scratch.read("out").count
        // Two intervals after the reload every target of the shard has had a round; then two more.
        #expect(eventually(10) { owned.isSubset(of: Set(parseTraces(String(scratch.read("out").dropFirst(mark))).map(\.target))) })
        usleep(1_000_000)
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        let later = Set(parseTraces(String(scratch.read("out").dropFirst(mark))).map(\.target))
        #expect(later == owned, "after the reload: \(later.subtracting(owned).sorted()) traced outside the shard")
    }

    @Test("SIGINT in continuous mode: the rounds in flight are written as valid JSON, marked interrupted; exit 130")
    func sigintEndsTheRun() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let hole = lab.truth.kind(named: "blackhole").example
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-p", "443",
            "--interval", "0.5", "-w", "2", "-m", "10", "--format", "json"],
            stdinPath: try scratchList(scratch, [hole, "198.19.0.10"]),
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        // A black-hole round lasts at least -w (2 s, its silent TTLs) and the next one starts within an
        // interval (0.5 s) of the last one's end. Seen written (polled every 50 ms), its second round has
        // started 1 s later and is still under way: the signal always lands in the middle of it. (A fixed
        // sleep from the start landed between two rounds now and then.)
        var polls = 0
        while polls < 200 && !parseTraces(scratch.read("out")).contains(where: { $0.target == hole }) {
            usleep(50_000)
            polls += 1
        }
        #expect(polls < 200, "no round of the black hole written in 10 s: \(scratch.read("err"))")
        usleep(1_000_000)
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        let output = scratch.read("out")
        #expect(allLinesAreJSON(output), "\(output)")
        let traces = parseTraces(output)
        #expect(traces.filter { $0.target == "198.19.0.10" }.count >= 4, "\(output)")
        // The black hole's second round was under way: it is written, interrupted.
        #expect(traces.contains { $0.target == hole && $0.stop == "interrupted" }, "\(output)")
        #expect(scratch.read("err").contains("traces"), "\(scratch.read("err"))")
    }

    @Test("--interval to one black hole: a round stops 5 silent TTLs past the last router (--gap's default), not at -m")
    func gapDefaultsToFive() throws {
        let lab = try Lab.get()
        let hole = lab.truth.kind(named: "blackhole")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--interval", "1", "--count", "1", "-q", "1",
            "-w", "0.3", "--format", "json", hole.example, "443"], timeout: 60)
        let trace = try #require(parseTraces(r.stdout).first, "\(r.stderr)")
        #expect(trace.stop == "gap-limit" && trace.hops.last?.ttl == hole.hops.count + 5, "\(r.stdout)")
    }

    @Test("SIGHUP removing a target whose round is under way: its series go and do not come back when that round ends")
    func removedMidRoundLeavesNoSeries() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let hole = lab.truth.kind(named: "blackhole").example
        scratch.write("list", "198.19.0.10\n\(hole)\n")
        // -w 2: the black hole's silent TTLs keep each of its rounds under way for seconds.
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", scratch.file("list"),
            "-p", "443", "--interval", "1", "-q", "1", "-w", "2", "-m", "12", "--metrics-listen", "127.0.0.1:9919",
            "--format", "json"], stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        func scrape() -> String {
            runTool(["ip", "netns", "exec", lab.namespace, "curl", "-s", "-m", "3", "http://127.0.0.1:9919/metrics"],
                timeout: 10).stdout
        }
        // Its first round is in (its series exist); its second starts within the interval (1 s) and runs for
        // about 2 s (its silent TTLs' -w 2).
        #expect(eventually(20) { scrape().contains("target=\"\(hole)\"") }, "\(scratch.read("err"))")
        usleep(1_100_000)
        scratch.write("list", "198.19.0.10\n")
        kill(child.pid, SIGHUP)
        #expect(eventually(10) { scratch.read("err").contains("re-read") }, "\(scratch.read("err"))")
        // Past the end of the round that was under way (at most -m 12 TTLs' waits).
        #expect(eventually(15) { parseTraces(scratch.read("out")).filter { $0.target == hole }.count >= 2 })
        usleep(1_500_000)
        let text = scrape()
        #expect(!text.contains("target=\"\(hole)\""), "\(text.split(separator: "\n").filter { $0.contains(hole) }.prefix(3))")
        #expect(text.contains("target=\"198.19.0.10\""))
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
    }

    @Test("--metrics-listen :80 as root: bound before the capabilities go, and reachable over IPv4 and IPv6 alike")
    func listenEverywhere() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--interval", "1", "--count", "30",
            "-w", "0.5", "-m", "10", "--metrics-listen", ":80", "--format", "json", "198.19.0.10", "443"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        #expect(eventually(10) { scratch.read("err").contains("metrics at http://[::]:80/metrics") }, "\(scratch.read("err"))")
        for url in ["http://127.0.0.1:80/metrics", "http://[::1]:80/metrics", "http://198.18.0.2:80/metrics"] {
            var body = ""
            #expect(eventually(10) {
                body = runTool(["ip", "netns", "exec", lab.namespace, "curl", "-s", "-m", "3", url], timeout: 10).stdout
                return body.contains("fasttrace_probes_sent_total")
            }, "\(url): \(body.prefix(200)) \(scratch.read("err"))")
        }
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
    }

    @Test("A real Prometheus scrapes /metrics in the vantage namespace: values as the lab says; garbage gets 400; the engine never stalls")
    func prometheusScrapes() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let blackhole = lab.truth.kind(named: "blackhole").example
        let open = lab.truth.kind(named: "open")
        // The open target twice: a duplicate is dropped, and is no run error.
        scratch.write("list", "\(open.example)\n\(blackhole)\nnot a target!\n\(open.example)\n")
        scratch.write("prometheus.yml", """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: fasttrace
                scrape_interval: 1s
                scrape_timeout: 900ms
                static_configs:
                  - targets: ['127.0.0.1:9917']
            """)
        let ft = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", scratch.file("list"),
            "-p", "443", "--interval", "1", "-w", "0.5", "-m", "10", "--change-window", "3", "--vantage", "lab-test",
            "--metrics-listen", "127.0.0.1:9917", "--format", "json"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { ft.stop() }
        let prometheus = try #require(Child(["ip", "netns", "exec", lab.namespace, "prometheus",
            "--config.file=" + scratch.file("prometheus.yml"), "--storage.tsdb.path=" + scratch.file("tsdb"),
            "--web.listen-address=127.0.0.1:9090"], stdoutPath: scratch.file("prom-out"), stderrPath: scratch.file("prom-err")))
        defer {
            kill(prometheus.pid, SIGTERM)
            prometheus.wait(timeout: 10)
        }
        /// Runs PromQL `query` through Prometheus's HTTP API inside the namespace: metric labels and value.
        func query(_ query: String) -> [([String: String], Double)] {
            let url = "http://127.0.0.1:9090/api/v1/query?query="
                + (query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            let r = runTool(["ip", "netns", "exec", lab.namespace, "curl", "-s", "-m", "3", url], timeout: 10)
            guard let o = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                let data = o["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
            else { return [] }
            return result.compactMap { series in
                guard let metric = series["metric"] as? [String: String], let value = series["value"] as? [Any],
                    let text = value.last as? String, let number = Double(text)
                else { return nil }
                return (metric, number)
            }
        }
        // Prometheus has scraped the endpoint and both targets have a round in.
        #expect(eventually(40) { query("fasttrace_target_up").count == 2 }, "\(scratch.read("err")) \(scratch.read("prom-err").suffix(2000))")
        #expect(query("up{job=\"fasttrace\"}").first?.1 == 1)
        let up = query("fasttrace_target_up{vantage=\"lab-test\"}")
        #expect(up.first { $0.0["target"] == open.example }?.1 == 1, "\(up)")
        #expect(up.first { $0.0["target"] == blackhole }?.1 == 0, "\(up)")
        #expect(up.allSatisfy { $0.0["port"] == "443" && $0.0["protocol"] == "tcp" })
        #expect(query("fasttrace_target_hops{target=\"\(open.example)\"}").first?.1 == Double(open.destination_ttl ?? 0))
        #expect(query("fasttrace_target_state{target=\"\(open.example)\",state=\"open\"}").first?.1 == 1)
        #expect(query("fasttrace_hop_loss_ratio{target=\"\(open.example)\",ttl=\"1\"}").first?.1 == 0)
        #expect((query("fasttrace_probes_sent_total").first?.1 ?? 0) > 0)
        #expect((query("fasttrace_replies_matched_total").first?.1 ?? 0) > 0)
        // A target that fails (a line that is no target) still shows, as a run error.
        #expect(query("fasttrace_run_errors_total{reason=\"skipped_line\"}").first?.1 == 1)
        #expect(query("fasttrace_run_errors_total{reason=\"skipped_target\"}").first?.1 == 0)
        // The README's "which hop adds latency" query evaluates to one series per target × port.
        #expect(eventually(10) { query("fasttrace_target_rtt_seconds_count > 0").count == 1 })
        let rises = query("topk by (vantage, target, port, protocol) (1, fasttrace_hop_latency_added_seconds)")
        #expect(rises.count == 2, "\(rises)")
        // The README's "loss on the path" query: none anywhere in this lab, although the black hole's TTLs
        // past its last router lose every probe (they never answered: no_reply, not path loss).
        #expect(eventually(10) { query("fasttrace_hop_no_reply{target=\"\(blackhole)\"} == 1").count >= 1 })
        #expect(query("fasttrace_hop_loss_ratio{target=\"\(blackhole)\"} == 1").count >= 1)
        let pathLoss = query("fasttrace_hop_loss_ratio * on (vantage, target, port, protocol, ttl) fasttrace_hop_loss_path > 0")
        #expect(pathLoss.isEmpty, "\(pathLoss)")
        // No series is labelled by a responder address.
        let raw = runTool(["ip", "netns", "exec", lab.namespace, "curl", "-s", "-m", "3", "http://127.0.0.1:9917/metrics"])
        #expect(raw.status == 0 && !raw.stdout.contains("198.18.0."), "\(raw.stdout)")
        // promtool accepts the exposition text.
        let check = runTool(["promtool", "check", "metrics"], stdin: raw.stdout)
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")

        // Garbage, a wrong path and 50 idle connections: 400 and 404 answered and counted; the engine and
        // the scrape go on.
        let rounds = query("fasttrace_rounds_total").first?.1 ?? 0
        let script = """
            import socket, time
            def ask(data):
                s = socket.create_connection(("127.0.0.1", 9917), timeout=5)
                s.sendall(data)
                out = s.recv(4096)
                s.close()
                return out.split(b"\\r\\n")[0].decode()
            print(ask(b"GARBAGE \\x00\\x01\\x02 nonsense\\r\\n\\r\\n"))
            print(ask(b"GET /other HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"))
            print(ask(b"GET /metrics HTTP/2.0\\r\\n\\r\\n"))
            print(ask(b"GET http://127.0.0.1:9917/metrics HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n"))
            idle = [socket.create_connection(("127.0.0.1", 9917), timeout=5) for _ in range(50)]
            time.sleep(4)
            print(ask(b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n"))
            for s in idle: s.close()
            """
        let probe = runTool(["ip", "netns", "exec", lab.namespace, "python3", "-c", script], timeout: 30)
        let answers = probe.stdout.split(separator: "\n")
        // (HTTP/2.0 over plain text is a bad request, counted once; the absolute form names /metrics.)
        #expect(answers == ["HTTP/1.1 400 Bad Request", "HTTP/1.1 404 Not Found", "HTTP/1.1 400 Bad Request", "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK"], "\(probe.stdout) \(probe.stderr)")
        #expect(ft.isRunning)
        #expect(eventually(10) { query("fasttrace_http_bad_requests_total").first?.1 == 3 },
            "\(query("fasttrace_http_bad_requests_total"))")
        #expect(eventually(10) { (query("fasttrace_rounds_total").first?.1 ?? 0) >= rounds + 4 })
        kill(ft.pid, SIGINT)
        #expect(ft.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        #expect(allLinesAreJSON(scratch.read("out")))
    }
}

/// Writes `targets` to a list file in `scratch`; returns its path.
func scratchList(_ scratch: Scratch, _ targets: [String]) throws -> String {
    scratch.write("stdin-list", targets.joined(separator: "\n") + "\n")
    return scratch.file("stdin-list")
}

extension ISO8601DateFormatter {
    /// Timestamps with fractional seconds, as fasttrace writes them.
    static var fractional: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}
