// Hop names and AS numbers on the lab's real hops. Names come from a hosts file (and, for the slow
// resolver, a DNS server that never answers) given to fasttrace in a private mount namespace: the test
// bind-mounts its own /etc/hosts, /etc/nsswitch.conf and /etc/resolv.conf for that one process
// (`unshare --mount`), so the host's files are never touched. The AS table is generated from the lab's
// truth into a temporary file. Root only (scripts/lab.sh; FT_LAB_PREFIX picks the lab).

import Foundation
import Testing

/// Runs `arguments` with `binds` (file → path under /etc) bind-mounted in a private mount namespace
/// that only this command sees; the host's files stay as they are.
func runWithPrivateFiles(_ binds: [(file: String, over: String)], _ arguments: [String], timeout: Double = 60)
    -> ToolResult
{
    let script = #"set -e; while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done; shift; exec "$@""#
    var command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    for bind in binds { command += [bind.file, bind.over] }
    return runTool(command + ["--"] + arguments, timeout: timeout)
}

/// One hop of a JSON trace with the annotation keys as written: absent (nil), null (.some(nil)) or a value.
struct AnnotatedHop {
    var ttl: Int
    var addr: String?
    var name: String??
    var asn: Int??
    var asName: String??

    static func all(_ output: String) -> [(target: String, hops: [AnnotatedHop])] {
        output.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let target = object["target"] as? String, let hops = object["hops"] as? [[String: Any]]
            else { return nil }
            return (target, hops.map { h in
                func key<T>(_ name: String, _ type: T.Type) -> T?? {
                    guard let value = h[name] else { return nil }
                    return .some(value as? T)
                }
                return AnnotatedHop(ttl: h["ttl"] as? Int ?? -1, addr: h["addr"] as? String, name: key("name", String.self),
                    asn: key("asn", Int.self), asName: key("as_name", String.self))
            })
        }
    }
}

/// The AS table a test writes, and the answer it expects for an address (narrowest row wins).
struct LabASNTable {
    struct Row {
        var first: UInt32
        var last: UInt32
        var asn: Int
        var name: String?
    }
    var rows: [Row] = []
    var text = "# generated from the lab's truth by AnnotationLabTests\n"

    /// The lines, in the three forms fasttrace reads.
    mutating func range(_ first: String, _ last: String, _ asn: Int, _ name: String) {
        rows.append(Row(first: ipv4(first)!, last: ipv4(last)!, asn: asn, name: name))
        text += "\(first)\t\(last)\t\(asn)\tZZ\t\(name)\n"
    }

    mutating func pfx2as(_ prefix: String, _ asn: Int) {
        let (first, last) = Self.bounds(prefix)
        rows.append(Row(first: first, last: last, asn: asn))
        let parts = prefix.split(separator: "/")
        text += "\(parts[0])\t\(parts[1])\t\(asn)\n"
    }

    mutating func cidr(_ prefix: String, _ asn: Int) {
        let (first, last) = Self.bounds(prefix)
        rows.append(Row(first: first, last: last, asn: asn))
        text += "\(prefix) AS\(asn)\n"
    }

    static func bounds(_ prefix: String) -> (UInt32, UInt32) {
        let parts = prefix.split(separator: "/")
        let base = ipv4(String(parts[0]))!, length = Int(parts[1])!
        let host: UInt32 = length == 32 ? 0 : ~UInt32(0) >> length
        return (base & ~host, base | host)
    }

    /// The AS and AS name the table gives `address` (nil, nil when none covers it).
    func expected(_ address: String) -> (asn: Int?, name: String?) {
        guard let a = ipv4(address) else { return (nil, nil) }
        let covering = rows.filter { $0.first <= a && a <= $0.last }
        guard let best = covering.min(by: { $0.last - $0.first < $1.last - $1.first }) else { return (nil, nil) }
        return (best.asn, rows.first { $0.asn == best.asn && $0.name != nil }?.name)
    }
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct AnnotationLabTests {
    /// A table covering the lab: every router in one range (AS 64500, named), the first router also as a
    /// more specific /32 (AS 64599), each target kind its own AS in a different form, except the silent
    /// kind, which no row covers; the NAT's inside prefix too.
    func labTable(_ lab: Lab) -> LabASNTable {
        var table = LabASNTable()
        let routers = Set(lab.truth.kinds.flatMap { $0.hops.joined() }.filter { $0 != "target" })
        let sorted = routers.compactMap(ipv4).sorted()
        let low = sorted.first! & 0xFFFF_FF00, high = sorted.last! | 0xFF
        func text(_ v: UInt32) -> String { "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)" }
        table.range(text(low), text(high), 64500, "LAB-CORE Lab routers")
        table.cidr(lab.truth.kinds[0].hops[0][0] + "/32", 64599)
        for (i, kind) in lab.truth.kinds.enumerated() where kind.kind != "silent" {
            if i % 2 == 0 {
                table.pfx2as(kind.prefix, 64501 + i)
            } else {
                let (first, last) = LabASNTable.bounds(kind.prefix)
                table.range(text(first), text(last), 64501 + i, "LAB-\(kind.kind.uppercased())")
            }
        }
        if let dnat = lab.truth.kind(named: "dnat").dnat { table.cidr(dnat.prefix, 64550) }
        return table
    }

    /// The hosts file: names for some routers and one target; the other addresses have none.
    func labHosts(_ lab: Lab) -> [String: String] {
        let open = lab.truth.kind(named: "open")
        return [open.hops[0][0]: "r1.lab.example", open.hops[1][0]: "r2.lab.example",
            open.hops[4][0]: "r5.lab.example", open.example: "web.lab.example"]
    }

    func hostsText(_ names: [String: String]) -> String {
        "127.0.0.1 localhost\n" + names.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)\n" }.joined()
    }

    @Test("JSON hops carry the AS number and name the generated table gives every hop; text shows [ASn]")
    func asNumbersOnEveryHop() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let table = labTable(lab)
        // One line the table cannot use: counted, named, skipped.
        scratch.write("asn.tsv", table.text + "198.18.0.0/24 not-an-as\n")
        let badLine = table.text.split(separator: "\n", omittingEmptySubsequences: false).count
        let examples = lab.truth.kinds.map(\.example)
        scratch.write("list", examples.joined(separator: "\n") + "\n")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--asn-db", scratch.file("asn.tsv"),
            "--targets", scratch.file("list"), "-p", "443", "--format", "json", "-w", "1", "-m", "12", "--gap", "3"],
            timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.hasPrefix(
            "fasttrace: --asn-db \(scratch.file("asn.tsv")): 1 line skipped, first \(scratch.file("asn.tsv")):\(badLine): 'not-an-as' is not an AS number\n"),
            "\(r.stderr)")
        let traces = AnnotatedHop.all(r.stdout)
        #expect(Set(traces.map(\.target)) == Set(examples))
        var checked = 0, unknown = 0
        for (target, hops) in traces {
            for hop in hops {
                let want: (asn: Int?, name: String?) = hop.addr.map { table.expected($0) } ?? (nil, nil)
                #expect(hop.asn == .some(want.asn), "\(target) TTL \(hop.ttl) \(hop.addr ?? "-"): asn \(String(describing: hop.asn))")
                #expect(hop.asName == .some(want.name), "\(target) TTL \(hop.ttl): as_name \(String(describing: hop.asName))")
                #expect(hop.name == nil, "-n: no name key")
                if hop.addr != nil { checked += 1 }
                if hop.addr != nil && want.asn == nil { unknown += 1 }
            }
        }
        // Routers, the /32, named and unnamed ASes, and an address no row covers were all seen.
        #expect(checked >= 30 && unknown >= 1, "\(checked) hops checked, \(unknown) without an AS")
        let seen = Set(traces.flatMap { $0.hops.compactMap { $0.asn ?? nil } })
        #expect(seen.isSuperset(of: [64500, 64599]), "\(seen)")

        // Text: `[AS64599]` after the first router, `[AS???]` for the silent kind's target.
        let silent = lab.truth.kind(named: "silent")
        let text = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--asn-db", scratch.file("asn.tsv"),
            "-w", "1", silent.example, "443"])
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix(" 1  \(silent.hops[0][0]) [AS64599]  ") }, "\(text.stdout)")
        #expect(lines.contains { $0.hasPrefix(" 2  \(silent.hops[1][0]) [AS64500]  ") }, "\(text.stdout)")
        #expect(lines.contains { $0.hasPrefix(" \(silent.destination_ttl!)  \(silent.example) [AS???] [open]  ") },
            "\(text.stdout)")

        // A file with no usable row, and a missing file: one line, exit 2, before anything is probed.
        scratch.write("empty.tsv", "# nothing\nnonsense\n")
        let empty = runTool([fasttraceBinary, "--netns", lab.namespace, "--asn-db", scratch.file("empty.tsv"),
            silent.example, "443"])
        #expect(empty.status == 2)
        #expect(empty.stderr == "fasttrace: --asn-db: \(scratch.file("empty.tsv")): no IP-to-AS rows (first line refused: \(scratch.file("empty.tsv")):2: expected START END ASN, NETWORK LENGTH ASN or NETWORK/LENGTH ASN, got 1 field(s))\n")
        let missing = runTool([fasttraceBinary, "--netns", lab.namespace, "--asn-db", scratch.file("nope.tsv"),
            silent.example, "443"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "fasttrace: --asn-db: cannot read '\(scratch.file("nope.tsv"))': No such file or directory\n")
    }

    @Test("Lab-local names (a private /etc/hosts) in JSON, batch text and single-target text; -n gives none")
    func namesFromAPrivateHostsFile() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let hostsBefore = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
        let names = labHosts(lab)
        scratch.write("hosts", hostsText(names))
        scratch.write("nsswitch.conf", "hosts: files\n")
        let binds = [(scratch.file("hosts"), "/etc/hosts"), (scratch.file("nsswitch.conf"), "/etc/nsswitch.conf")]
        let examples = lab.truth.kinds.map(\.example)
        scratch.write("list", examples.joined(separator: "\n") + "\n")
        let batch = [fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"), "-p", "443",
            "-w", "1", "-m", "12", "--gap", "3"]

        // JSON: "name" on every hop, the hosts file's name or null.
        let json = runWithPrivateFiles(binds, batch + ["--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let traces = AnnotatedHop.all(json.stdout)
        #expect(traces.count == examples.count, "\(json.stdout)")
        var named = 0
        for (target, hops) in traces {
            // Every trace is still right.
            if let trace = parseTraces(json.stdout).first(where: { $0.target == target }),
                let kind = lab.truth.kind(of: target)
            {
                #expect(problems(trace, kind, probes: 3) == [], "\(target)")
            }
            for hop in hops {
                let want = hop.addr.flatMap { names[$0] }
                #expect(hop.name == .some(want), "\(target) TTL \(hop.ttl) \(hop.addr ?? "-"): \(String(describing: hop.name))")
                #expect(hop.asn == nil, "no --asn-db: no asn key")
                if want != nil { named += 1 }
            }
        }
        #expect(named >= 3 * examples.count, "\(named) named hops")

        // Batch text: `name (addr)`, and `addr (addr)` for an address without one, as tcptraceroute prints.
        let open = lab.truth.kind(named: "open")
        let text = runWithPrivateFiles(binds, batch)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("\n 1  r1.lab.example (\(open.hops[0][0]))  "), "\(text.stdout)")
        #expect(text.stdout.contains("\n 3  \(open.hops[2][0]) (\(open.hops[2][0]))  "), "\(text.stdout)")
        #expect(text.stdout.contains("\n 7  web.lab.example (\(open.example)) [open]  "), "\(text.stdout)")

        // One target, text: the same names, hop lines in order.
        let single = runWithPrivateFiles(binds, [fasttraceBinary, "--netns", lab.namespace, "-w", "1", open.example, "443"])
        #expect(single.status == 0, "\(single.stderr)")
        let hopLines = single.stdout.split(separator: "\n").dropFirst(2).map(String.init)
        #expect(hopLines.count == open.destination_ttl, "\(single.stdout)")
        #expect(hopLines.first?.hasPrefix(" 1  r1.lab.example (\(open.hops[0][0]))  ") == true, "\(single.stdout)")
        #expect(hopLines.last?.hasPrefix(" 7  web.lab.example (\(open.example)) [open]  ") == true, "\(single.stdout)")

        // CSV and DOT, with the AS table too: `name`, `asn` and `as_name` columns; node labels.
        let table = labTable(lab)
        scratch.write("asn.tsv", table.text)
        let csv = runWithPrivateFiles(binds, batch + ["--format", "csv", "--asn-db", scratch.file("asn.tsv")])
        #expect(csv.status == 0, "\(csv.stderr)")
        let reader = """
            import csv, json, sys
            print(json.dumps(list(csv.DictReader(sys.stdin, strict=True))))
            """
        let rowsJSON = runTool(["python3", "-c", reader], stdin: csv.stdout)
        let rows = (try? JSONSerialization.jsonObject(with: Data(rowsJSON.stdout.utf8)) as? [[String: String]]) ?? []
        #expect(rows.count >= 5 * 6, "\(rowsJSON.stderr) \(csv.stdout)")
        #expect(csv.stdout.hasPrefix("target,target_name,port,protocol,tcp_flags,source,sport,reached,state,stop,dest_ttl,probes_sent,ttl,addr,name,asn,as_name,kind,"))
        for row in rows {
            let addr = row["addr"] ?? ""
            let want = table.expected(addr)
            #expect(row["name"] == (names[addr] ?? ""), "\(row)")
            #expect(row["asn"] == (want.asn.map(String.init) ?? ""), "\(row)")
            #expect(row["as_name"] == (want.name ?? ""), "\(row)")
        }
        let dot = runWithPrivateFiles(binds, batch + ["--format", "dot", "--asn-db", scratch.file("asn.tsv")])
        #expect(dot.status == 0, "\(dot.stderr)")
        #expect(dot.stdout.contains("\"\(open.hops[0][0])\" [label=\"r1.lab.example\\n\(open.hops[0][0])\\nAS64599\""),
            "\(dot.stdout)")
        #expect(dot.stdout.contains("\"\(open.example)\" [label=\"web.lab.example\\n\(open.example)\\nAS64501\\nopen 443\""),
            "\(dot.stdout)")

        // -n: no lookups, no name key, numeric text.
        let numeric = runWithPrivateFiles(binds, batch + ["--format", "json", "-n"])
        #expect(numeric.status == 0)
        let plain = AnnotatedHop.all(numeric.stdout)
        #expect(plain.count == examples.count)
        #expect(plain.allSatisfy { $0.hops.allSatisfy { $0.name == nil } }, "\(numeric.stdout)")
        let numericText = runWithPrivateFiles(binds, [fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "1",
            open.example, "443"])
        #expect(!numericText.stdout.contains("lab.example"), "\(numericText.stdout)")
        #expect(numericText.stdout.contains("\n 1  \(open.hops[0][0])  "), "\(numericText.stdout)")

        // The host's own file was never touched.
        #expect(try String(contentsOfFile: "/etc/hosts", encoding: .utf8) == hostsBefore)
    }

    @Test("Ctrl-C while the one target's name is still being looked up ends the run at once (exit 130)")
    func interruptDuringSetUp() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let hole = lab.truth.kind(named: "blackhole")
        let nameserver = hole.example.split(separator: ".").dropLast().joined(separator: ".") + ".53"
        scratch.write("resolv.conf", "nameserver \(nameserver)\noptions timeout:10 attempts:1\n")
        scratch.write("nsswitch.conf", "hosts: dns\n")
        let script = #"set -e; while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done; shift; exec "$@""#
        let child = try #require(Child(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            scratch.file("nsswitch.conf"), "/etc/nsswitch.conf", scratch.file("resolv.conf"), "/etc/resolv.conf", "--",
            fasttraceBinary, "--netns", lab.namespace, "-w", "1", "web.lab.example", "443"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        usleep(1_500_000)  // the lookup hangs for 10 s; a signal used to wait for it
        let sent = Date()
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        #expect(Date().timeIntervalSince(sent) < 2, "took \(Date().timeIntervalSince(sent)) s after the signal")
        #expect(scratch.read("err") == "fasttrace: interrupted before any probe was sent\n", "\(scratch.read("err"))")
        #expect(scratch.read("out").isEmpty)
    }

    @Test("--asn-db on something that is not a table with lines (/dev/zero): one line, exit 2, at once")
    func asnDatabaseWithoutLines() throws {
        let lab = try Lab.get()
        let started = Date()
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-m", "1", "--asn-db", "/dev/zero",
            lab.truth.kind(named: "open").example, "443"], timeout: 30)
        #expect(r.status == 2 && r.stdout.isEmpty, "\(r.status) \(r.stderr)")
        #expect(r.stderr == "fasttrace: --asn-db: /dev/zero: line 1 is longer than 1024 bytes: not an IP-to-AS table "
            + "(a compressed file? decompress it first)\n", "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test("A resolver that never answers delays names, never probes: traces right, run within the name timeout, names null")
    func slowResolverDelaysOnlyNames() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = lab.truth.kind(named: "open"), hole = lab.truth.kind(named: "blackhole")
        // DNS goes to an address in the lab's black hole (from inside the lab's namespace): queries are
        // dropped, so every lookup not answered by the hosts file hangs for resolv.conf's 10 s.
        let nameserver = hole.example.split(separator: ".").dropLast().joined(separator: ".") + ".53"
        scratch.write("resolv.conf", "nameserver \(nameserver)\noptions timeout:10 attempts:1\n")
        scratch.write("hosts", hostsText([open.hops[0][0]: "r1.lab.example"]))
        scratch.write("nsswitch.conf", "hosts: files dns\n")
        let binds = [(scratch.file("hosts"), "/etc/hosts"), (scratch.file("nsswitch.conf"), "/etc/nsswitch.conf"),
            (scratch.file("resolv.conf"), "/etc/resolv.conf")]

        // One target, text: hop lines wait for names at most the name timeout (default 2 s), together;
        // the lookups used to run on the engine's thread, one after another (7 × 10 s here).
        var started = Date()
        let single = runWithPrivateFiles(binds, [fasttraceBinary, "--netns", lab.namespace, "-w", "1",
            "--summary", open.example, "443"], timeout: 30)
        var wall = Date().timeIntervalSince(started)
        #expect(single.status == 0, "\(single.stderr)")
        let hopLines = single.stdout.split(separator: "\n").dropFirst(2).map(String.init)
        #expect(hopLines.count == open.destination_ttl, "\(single.stdout)")
        #expect(hopLines.first?.hasPrefix(" 1  r1.lab.example (\(open.hops[0][0]))  ") == true, "\(single.stdout)")
        #expect(hopLines.dropFirst().allSatisfy { !$0.contains("lab.example") }, "\(single.stdout)")
        #expect(hopLines.last?.hasPrefix(" 7  \(open.example) (\(open.example)) [open]  ") == true, "\(single.stdout)")
        let engineSeconds = Self.seconds(single.stderr)
        #expect(engineSeconds.map { $0 < 1 } == true, "the probing itself was not held up: \(single.stderr)")
        #expect(wall < 2 + (engineSeconds ?? 0) + 1.5, "\(wall) s")

        // A batch, JSON: every trace right, names null but r1's, done within the name timeout of the
        // engine's own time.
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "40"])
        scratch.write("list", list.stdout)
        started = Date()
        let batch = runWithPrivateFiles(binds, [fasttraceBinary, "--netns", lab.namespace, "--targets",
            scratch.file("list"), "-p", "443", "--format", "json", "-w", "1", "-m", "12", "--gap", "3",
            "--name-timeout", "1"], timeout: 60)
        wall = Date().timeIntervalSince(started)
        #expect(batch.status == 0, "\(batch.stderr)")
        let traces = parseTraces(batch.stdout)
        #expect(traces.count == 40)
        var wrong: [String] = []
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else { continue }
            let p = problems(trace, kind, probes: 3)
            if !p.isEmpty { wrong.append("\(trace.target): \(p)") }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(5))")
        for (target, hops) in AnnotatedHop.all(batch.stdout) {
            for hop in hops {
                let want: String? = hop.addr == open.hops[0][0] ? "r1.lab.example" : nil
                #expect(hop.name == .some(want), "\(target) TTL \(hop.ttl): \(String(describing: hop.name))")
            }
        }
        let batchEngine = Self.seconds(batch.stderr)
        #expect(batchEngine != nil, "\(batch.stderr)")
        #expect(wall < (batchEngine ?? 0) + 1 + 2, "\(wall) s for \(batchEngine ?? -1) s of probing")
    }

    /// The run's seconds from the summary line (`…, 1106 probes sent in 3.61 s (307 probes/s …`).
    static func seconds(_ stderr: String) -> Double? {
        guard let line = stderr.split(separator: "\n").last(where: { $0.hasPrefix("fasttrace: ") && $0.contains(" sent in ") }),
            let start = line.range(of: " sent in "), let end = line[start.upperBound...].range(of: " s")
        else { return nil }
        return Double(line[start.upperBound..<end.lowerBound])
    }
}
