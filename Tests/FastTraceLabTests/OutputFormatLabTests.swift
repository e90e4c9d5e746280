// `--format csv` and `--format dot` on the lab, read back by the peers that users will read them with:
// Python's csv module (every row, then the rows turned back into traces and checked against the lab's
// truth and against the JSON of the same 5-tuples) and Graphviz's dot (it renders the graph, and its
// reading of nodes and edges must be the lab's topology, ECMP branches included).

import Foundation
import Testing

/// The CSV header for runs with 3 probes per hop and hop names (no -n), as the README documents it.
let csvHeader = "target,target_name,port,protocol,tcp_flags,source,sport,reached,state,stop,dest_ttl,probes_sent,"
    + "ttl,addr,name,kind,code,dnat,addrs,mpls,rtt1_ms,rtt2_ms,rtt3_ms,reply1,reply2,reply3"

/// Reads fasttrace's CSV on stdin with Python's csv module and checks its form: the header (argv[1]),
/// LF line ends, no blank or short rows, no trailing junk, well-formed values, each trace's rows together
/// and in TTL order with the trace's fields the same on each, each hop's kind the one its replies give. Then it prints each trace as a JSON line in
/// fasttrace's JSON schema (plus `dest_ttl`), so the traces can be checked like JSON output. Any problem
/// exits 1 with the reason on stderr.
let csvToJSONLines = #"""
    import csv, io, json, re, sys
    raw = sys.stdin.buffer.read().decode("utf-8")
    expected = sys.argv[1].split(",")
    if not raw.endswith("\n"): sys.exit("does not end with a newline")
    if "\r" in raw: sys.exit("CR in output: lines end in LF")
    rows = list(csv.reader(io.StringIO(raw, newline=""), strict=True))
    if rows[0] != expected: sys.exit("header %r" % rows[0])
    answers = {"time-exceeded", "unreachable", "syn-ack", "rst"}
    silences = {"none", "rate-limited", "likely-rate-limited", "unknown", "interrupted"}
    traces, order, done = {}, [], set()
    for n, row in enumerate(rows[1:], 2):
        if len(row) != len(expected): sys.exit("row %d has %d fields: %r" % (n, len(row), row))
        r = dict(zip(expected, row))
        key = (r["target"], r["port"])
        if order and order[-1] != key:
            done.add(order[-1])
            if key in done: sys.exit("row %d: rows of %r are not together" % (n, key))
        trace_fields = ["target", "target_name", "port", "protocol", "source", "sport", "reached", "state",
                        "stop", "dest_ttl", "probes_sent"]
        if key not in traces:
            order.append(key)
            traces[key] = {"fields": {f: r[f] for f in trace_fields}, "hops": []}
        t = traces[key]
        if any(t["fields"][f] != r[f] for f in trace_fields): sys.exit("row %d: trace fields differ" % n)
        if r["ttl"] == "": continue
        rtts, replies = [r["rtt%d_ms" % i] for i in (1, 2, 3)], [r["reply%d" % i] for i in (1, 2, 3)]
        for rtt, reply in zip(rtts, replies):
            if rtt and not re.fullmatch(r"\d+\.\d{3}", rtt): sys.exit("row %d: rtt %r" % (n, rtt))
            if reply not in answers | silences: sys.exit("row %d: reply %r" % (n, reply))
            if bool(rtt) != (reply in answers): sys.exit("row %d: rtt %r with reply %r" % (n, rtt, reply))
        if r["kind"] not in answers | silences: sys.exit("row %d: kind %r" % (n, r["kind"]))
        # The hop's kind is its most telling reply; a silent hop's, the first reason its probes give in this order.
        told = [k for k in ("rate-limited", "likely-rate-limited", "interrupted", "unknown", "none") if k in replies]
        if r["kind"] not in (replies if r["kind"] in answers else told[:1]): sys.exit("row %d: kind %r, replies %r" % (n, r["kind"], replies))
        hop = {"ttl": int(r["ttl"]), "addr": r["addr"] or None, "kind": r["kind"],
               "rtt_ms": [float(x) if x else None for x in rtts], "replies": replies}
        if t["hops"] and hop["ttl"] != t["hops"][-1]["ttl"] + 1: sys.exit("row %d: ttl out of order" % n)
        if r["code"]: hop["code"] = int(r["code"])
        if r["dnat"]: hop["dnat"] = r["dnat"]
        if r["addrs"]: hop["addrs"] = r["addrs"].split(" ")
        t["hops"].append(hop)
    for key in order:
        f, hops = traces[key]["fields"], traces[key]["hops"]
        reached = {"true": True, "false": False}[f["reached"]]
        ends = [h["ttl"] for h in hops if h["kind"] in ("syn-ack", "rst")]
        if f["dest_ttl"] != (str(ends[0]) if reached and ends else ""): sys.exit("%r: dest_ttl %r" % (key, f["dest_ttl"]))
        out = {"target": f["target"], "port": int(f["port"]), "protocol": f["protocol"], "source": f["source"],
               "sport": int(f["sport"]), "reached": reached, "state": f["state"], "stop": f["stop"],
               "probes_sent": int(f["probes_sent"]), "dest_ttl": int(f["dest_ttl"]) if f["dest_ttl"] else None,
               "hops": hops}
        if f["target_name"]: out["name"] = f["target_name"]
        print(json.dumps(out))
    """#

/// The lab's example of each kind, one per line.
func examplesList(_ truth: LabTruth) -> String { truth.kinds.map { $0.example + "\n" }.joined() }

/// Every port the truth has an answer for, as a `-p` list.
func truthPorts(_ truth: LabTruth) -> String {
    Set(truth.kinds.flatMap { $0.ports.keys }).compactMap { Int($0) }.sorted().map(String.init).joined(separator: ",")
}

/// `csv` read back by Python (`csvToJSONLines`): the traces, or the reason it is not right.
func traces(fromCSV csv: String) -> Result<[JSONTrace], LabError> {
    let r = runTool(["python3", "-c", csvToJSONLines, csvHeader], stdin: csv)
    guard r.status == 0 else { return .failure(LabError("python3 csv: \(r.stderr)")) }
    return .success(parseTraces(r.stdout))
}

/// The hops of a trace as the two formats must agree on: addresses, kinds, DNAT, several routers, and
/// which probes were answered (RTT values differ from run to run).
func shape(_ trace: JSONTrace) -> [String] {
    ["\(trace.reached) \(trace.state) \(trace.stop)"] + trace.hops.map { hop in
        "\(hop.ttl) \(hop.addr ?? "*") \(hop.kind) \(hop.dnat ?? "-") \(hop.addrs ?? []) "
            + hop.rtts.map { $0 == nil ? "*" : "rtt" }.joined(separator: " ")
    }
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct OutputFormatLabTests {
    @Test("CSV of every kind and port: Python's csv reads it, and it says what the truth and the JSON say")
    func csvMatchesTruthAndJSON() throws {
        let lab = try Lab.get()
        let options = ["--netns", lab.namespace, "--targets", "-", "-p", truthPorts(lab.truth), "-w", "1", "-m", "12",
            "--gap", "3", "--sport", "47400"]
        let list = examplesList(lab.truth)
        let csv = runTool([fasttraceBinary] + options + ["--format", "csv"], stdin: list)
        #expect(csv.status == 0, "\(csv.stderr)")
        let json = runTool([fasttraceBinary] + options + ["--format", "json"], stdin: list)
        #expect(json.status == 0, "\(json.stderr)")
        let fromCSV = try traces(fromCSV: csv.stdout).get()
        let fromJSON = parseTraces(json.stdout)
        let expected = lab.truth.kinds.reduce(0) { $0 + $1.ports.count }
        #expect(fromCSV.count == expected && fromJSON.count == expected, "\(csv.stdout)")
        let rows = csv.stdout.split(separator: "\n").count - 1
        #expect(rows == fromCSV.reduce(0) { $0 + $1.hops.count }, "one row per hop")
        let jsonByKey = Dictionary(uniqueKeysWithValues: fromJSON.map { ("\($0.target):\($0.port)", $0) })
        for trace in fromCSV {
            let kind = try #require(lab.truth.kind(of: trace.target))
            #expect(problems(trace, kind, probes: 3) == [], "\(kind.kind) port \(trace.port): \(csv.stdout)")
            let twin = try #require(jsonByKey["\(trace.target):\(trace.port)"])
            #expect(shape(trace) == shape(twin), "\(trace.target):\(trace.port)")
        }
    }

    @Test("CSV with ICMP rate limits on: rate-limited probes are marked, and the traces are still right")
    func csvUnderRateLimits() throws {
        let lab = try Lab.get()
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "40"]).stdout
        let r = try withRateLimits {
            runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443", "--format", "csv",
                "-w", "1", "-m", "12", "--gap", "3"], stdin: list, timeout: 120)
        }
        #expect(r.status == 0, "\(r.stderr)")
        let traces = try traces(fromCSV: r.stdout).get()
        #expect(traces.count == 40)
        var wrong: [String] = []
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else { continue }
            let p = problemsUnderRateLimits(trace, kind)
            if !p.isEmpty { wrong.append("\(trace.target) (\(kind.kind)): \(p)") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong traces, first: \(wrong.prefix(5))")
        let limited = r.stdout.split(separator: "\n").count { $0.contains(",rate-limited,") }
        #expect(limited > 20, "only \(limited) rows with rate-limited probes")
    }

    @Test("CSV is streamed: rows of finished traces come out while others run; SIGINT leaves whole rows")
    func csvStreamsAndInterrupts() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = runTool([repoRoot + "/scripts/lab.sh", "targets", "open", "10"]).stdout
        let hole = runTool([repoRoot + "/scripts/lab.sh", "targets", "blackhole", "100"]).stdout
        scratch.write("list", open + hole)
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"),
            "-p", "443", "--format", "csv", "-w", "3", "--rate", "200"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        // The open targets finish in milliseconds; the black holes take seconds.
        let early = waitUntil(seconds: 10) { scratch.read("out").split(separator: "\n").count >= 1 + 7 * 10 }
        #expect(early && child.isRunning, "rows only at the end: \(scratch.read("out"))")
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        let traces = try traces(fromCSV: scratch.read("out")).get()
        let interrupted = traces.filter { $0.stop == "interrupted" }
        #expect(traces.count { $0.state == "open" } == 10 && !interrupted.isEmpty)
        #expect(interrupted.contains { $0.hops.contains { $0.kind == "interrupted" } }, "\(scratch.read("out"))")
        #expect(scratch.read("err").contains(", interrupted: \(interrupted.count) traces partial"), "\(scratch.read("err"))")
    }

    @Test("JSON validates against docs/trace.schema.json (jsonschema): every kind and port with names and AS numbers, rate limits on, an interrupted batch; start within the run, dest_ttl the truth's")
    func jsonValidatesAgainstTheSchema() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // An AS table covering the routers and the open targets, so hops have asn and as_name (and null).
        scratch.write("asn.tsv", "198.18.0.0\t198.18.0.255\t64500\tZZ\tLAB-CORE\n198.19.0.0/16 64501\n")
        var lines: [String] = []
        func wall() -> Double { Date().timeIntervalSince1970 }

        // Every kind × the truth's ports, names on (none answer in the lab: null) and --asn-db.
        let began = wall()
        let all = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", truthPorts(lab.truth),
            "-w", "1", "-m", "12", "--gap", "3", "--name-timeout", "0.5", "--asn-db", scratch.file("asn.tsv"),
            "--format", "json"], stdin: examplesList(lab.truth), timeout: 120)
        let ended = wall()
        #expect(all.status == 0, "\(all.stderr)")
        lines += all.stdout.split(separator: "\n").map(String.init)
        // dest_ttl is where the truth says the destination answers, null where it does not.
        for line in all.stdout.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let target = try #require(object["target"] as? String), port = try #require(object["port"] as? Int)
            let kind = try #require(lab.truth.kind(of: target))
            let state = kind.ports[String(port)] ?? "closed"
            if state == "filtered" {
                #expect(object["dest_ttl"] is NSNull, "\(line)")
            } else {
                #expect(object["dest_ttl"] as? Int == kind.destination_ttl, "\(line)")
            }
            #expect(object["schema"] as? Int == 3)
        }
        let window = "\(began) \(ended)"

        // UDP and ICMP echo, every kind: their states, hop kinds and keys (no port for ICMP).
        for method in [["-U", "-p", "53,123,33434"], ["-I"]] {
            let run = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-w", "1", "-m", "12",
                "--gap", "3", "--format", "json"] + method, stdin: examplesList(lab.truth), timeout: 120)
            #expect(run.status == 0, "\(run.stderr)")
            lines += run.stdout.split(separator: "\n").map(String.init)
        }

        // With the routers' ICMP rate limits on: rate-limited and likely-rate-limited hops.
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "40"]).stdout
        let limited = try withRateLimits {
            runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-", "-p", "443", "--format",
                "json", "-w", "1", "-m", "12", "--gap", "3"], stdin: list, timeout: 120)
        }
        #expect(limited.status == 0, "\(limited.stderr)")
        lines += limited.stdout.split(separator: "\n").map(String.init)

        // Interrupted mid-batch: interrupted traces, state null.
        let open = runTool([repoRoot + "/scripts/lab.sh", "targets", "open", "10"]).stdout
        let hole = runTool([repoRoot + "/scripts/lab.sh", "targets", "blackhole", "100"]).stdout
        scratch.write("list", open + hole)
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets",
            scratch.file("list"), "-p", "443", "--format", "json", "-w", "3", "--rate", "200"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        _ = waitUntil(seconds: 10) { scratch.read("out").split(separator: "\n").count >= 10 }
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        let interrupted = scratch.read("out").split(separator: "\n").map(String.init)
        #expect(interrupted.contains { $0.contains("\"stop\":\"interrupted\"") && $0.contains("\"state\":null") })
        lines += interrupted

        // Every line, validated; the first run's starts lie within that run (wall clock, 1 s of slack).
        let check = runTool([python3, "-c", labSchemaCheck, repoRoot + "/docs/trace.schema.json", window],
            stdin: lines.joined(separator: "\n") + "\n")
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.hasPrefix("valid \(lines.count) "), "\(check.stdout)")
        // Between them the runs wrote the optional keys too, so those were checked against the schema.
        for key in ["name", "asn", "as_name", "rate-limited", "interrupted", "null-state", "udp-reply", "port-unreachable",
            "echo-reply"]
        {
            #expect(check.stdout.contains(" \(key)"), "no \(key) seen: \(check.stdout)")
        }
    }

    @Test("DOT of a mixed batch: dot renders it; its nodes and edges are the lab's, ECMP branches and counts included")
    func dotIsTheLab() throws {
        let lab = try Lab.get()
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "40"]).stdout
            + runTool([repoRoot + "/scripts/lab.sh", "targets", "dnat", "4"]).stdout
        let targets = list.split(separator: "\n").map(String.init)
        let ports = ["25", "443"]
        let options = ["--netns", lab.namespace, "--targets", "-", "-p", ports.joined(separator: ","), "-w", "1",
            "-m", "12", "--gap", "3", "--sport", "47500"]
        let dot = runTool([fasttraceBinary] + options + ["--format", "dot"], stdin: list, timeout: 120)
        #expect(dot.status == 0, "\(dot.stderr)")
        let svg = runTool(["dot", "-Tsvg"], stdin: dot.stdout)
        #expect(svg.status == 0 && svg.stdout.contains("</svg>"), "dot -Tsvg: \(svg.stderr)")
        let graph = try GraphvizView(dot.stdout)

        // What the truth allows: each trace's path, position by position (0: the source).
        let source = lab.truth.vantage.address
        var allowedEdges: Set<String> = []
        var allowedNodes: Set<String> = [source]
        var expectedLabels: [String: String] = [:]
        for target in targets {
            let kind = try #require(lab.truth.kind(of: target))
            var states: [String: [String]] = [:]
            for port in ports {
                let state = kind.ports[port] ?? "closed"
                states[state, default: []].append(port)
                let routerTTLs = state == "filtered" ? kind.filtered_last_ttl! : kind.destination_ttl! - 1
                var positions = [[source]] + kind.hops.prefix(routerTTLs).map { $0.map { $0 == "target" ? target : $0 } }
                if state != "filtered" { positions.append([target]) }
                allowedNodes.formUnion(positions.joined())
                allowedNodes.insert(target)
                var last = 0
                for i in 1..<positions.count where !positions[i].isEmpty {
                    for a in positions[last] { for b in positions[i] { allowedEdges.insert("\(a) -> \(b) hop \(i - last - 1)") } }
                    last = i
                }
                if state == "filtered" { for a in positions[last] { allowedEdges.insert("\(a) -> \(target) last-seen") } }
            }
            expectedLabels[target] = ([target] + ["open", "closed", "filtered"].compactMap { state in
                states[state].map { "\(state) \($0.joined(separator: ", "))" }
            }).joined(separator: "\\n")
        }
        #expect(Set(graph.nodes.keys) == allowedNodes)
        for (target, label) in expectedLabels { #expect(graph.nodes[target]?["label"] == label, "\(target)") }
        let seenEdges = Set(graph.edges.map(\.key))
        #expect(seenEdges == allowedEdges, "not allowed: \(seenEdges.subtracting(allowedEdges)), missing: \(allowedEdges.subtracting(seenEdges))")
        #expect(graph.edges.count == seenEdges.count, "one edge per (from, to, kind)")
        // ECMP: both branches of r3, and both join r5 again.
        let ecmp = lab.truth.kinds[0].hops[3]
        #expect(ecmp.count == 2)
        for branch in ecmp {
            #expect(seenEdges.contains("\(lab.truth.kinds[0].hops[2][0]) -> \(branch) hop 0"))
            #expect(seenEdges.contains("\(branch) -> \(lab.truth.kinds[0].hops[4][0]) hop 0"))
        }

        // The counts: every edge's label is the number of traces that crossed it in a JSON run of the same
        // 5-tuples (so the same ECMP branches).
        let json = runTool([fasttraceBinary] + options + ["--format", "json"], stdin: list, timeout: 120)
        let traces = parseTraces(json.stdout)
        #expect(traces.count == targets.count * ports.count)
        var counts: [String: Int] = [:]
        for trace in traces {
            var previous = source, silent = 0
            for hop in trace.hops {
                guard let addr = hop.addr else { silent += 1; continue }
                counts["\(previous) -> \(addr) hop \(silent)", default: 0] += 1
                previous = addr
                silent = 0
            }
            if !trace.reached { counts["\(previous) -> \(trace.target) last-seen", default: 0] += 1 }
        }
        #expect(Dictionary(uniqueKeysWithValues: graph.edges.map { ($0.key, $0.count) }) == counts)
        #expect(counts["\(source) -> \(lab.truth.kinds[0].hops[0][0]) hop 0"] == traces.count)

        // The same 5-tuples give the same text.
        let again = runTool([fasttraceBinary] + options + ["--format", "dot"], stdin: list, timeout: 120)
        #expect(again.stdout == dot.stdout)
    }
}

/// A graph as Graphviz reads it (`dot -Tjson0`): nodes by name with their attributes, and edges as
/// `"FROM -> TO hop N"` (N silent hops between) or `"FROM -> TO last-seen"` with the count in their label.
struct GraphvizView {
    var nodes: [String: [String: String]] = [:]
    var edges: [(key: String, count: Int)] = []

    init(_ dot: String) throws {
        let r = runTool(["dot", "-Tjson0"], stdin: dot)
        guard r.status == 0, let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        else { throw LabError("dot -Tjson0: \(r.stderr)") }
        var names: [Int: String] = [:]
        for node in object["objects"] as? [[String: Any]] ?? [] {
            guard let id = node["_gvid"] as? Int, let name = node["name"] as? String else { continue }
            names[id] = name
            nodes[name] = node.compactMapValues { $0 as? String }
        }
        for edge in object["edges"] as? [[String: Any]] ?? [] {
            guard let tail = (edge["tail"] as? Int).flatMap({ names[$0] }), let head = (edge["head"] as? Int).flatMap({ names[$0] }),
                let label = edge["label"] as? String
            else { throw LabError("edge without ends or label: \(edge)") }
            // "3" or "3, 1 silent hop" / "3, 2 silent hops".
            let parts = label.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let count = Int(parts[0]) else { throw LabError("edge label \(label)") }
            let silent = parts.count > 1 ? Int(parts[1].split(separator: " ")[0]) ?? -1 : 0
            let style = edge["style"] as? String
            switch style {
            case nil where silent == 0, "dashed" where silent > 0: edges.append(("\(tail) -> \(head) hop \(silent)", count))
            case "dotted": edges.append(("\(tail) -> \(head) last-seen", count))
            default: throw LabError("edge \(tail) -> \(head): style \(style ?? "none") with label \(label)")
            }
        }
    }
}

/// Validates each JSON line on stdin against the schema (argv[1], Draft 2020-12) with Python's jsonschema;
/// the lines of the first run (those whose hops carry `asn`) must start within argv[2] ("BEGIN END", Unix
/// seconds) ± 1 s. Prints `valid N` and what it saw (hop keys, kinds, `null-state`), or the first problem
/// and exits 1.
let labSchemaCheck = #"""
    import datetime, json, sys
    import jsonschema
    schema = json.load(open(sys.argv[1]))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    begin, end = (float(x) for x in sys.argv[2].split())
    seen, n = set(), 0
    for i, line in enumerate(sys.stdin, 1):
        if not line.strip(): continue
        trace = json.loads(line)
        for error in validator.iter_errors(trace):
            sys.exit("line %d: %s: %s\n%s" % (i, list(error.absolute_path), error.message, line))
        if trace["state"] is None: seen.add("null-state")
        for hop in trace["hops"]:
            seen.update(hop.keys())
            seen.add(hop["kind"])
        if trace["hops"] and "asn" in trace["hops"][0]:
            start = datetime.datetime.fromisoformat(trace["start"].replace("Z", "+00:00")).timestamp()
            if not begin - 1 <= start <= end + 1: sys.exit("line %d: start %s outside the run" % (i, trace["start"]))
        n += 1
    print("valid %d %s" % (n, " ".join(sorted(seen))))
    """#
