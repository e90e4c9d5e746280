// "Never silently wrong", on the command-line side: a failed write of results, a -i/-s the route
// cannot use, and target lists that arrive slowly, resolve slowly or are very long. Each test runs the
// fasttrace binary in the lab's vantage namespace (scripts/lab.sh; FT_LAB_PREFIX picks the lab) and
// fails on the code before the change it names.

import Foundation
import Testing

/// A scratch directory for one test, removed by `cleanup()` (call it in a defer).
struct Scratch {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ft-cli-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func read(_ name: String) -> String { (try? String(contentsOfFile: file(name), encoding: .utf8)) ?? "" }
    func write(_ name: String, _ text: String) {
        _ = FileManager.default.createFile(atPath: file(name), contents: Data(text.utf8))
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Lines of `text` that are fasttrace JSON traces.
func traceCount(_ text: String) -> Int { parseTraces(text).count }

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct CLIHonestyTests {
    // MARK: 1. write errors

    @Test("Results written to /dev/full: exit 1 with one line naming the problem")
    func writeToFullDevice() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = lab.truth.kind(named: "open").example
        for arguments in [["-n", "-w", "1", open, "443"],
                          ["--format", "json", "-w", "1", open, "443"]] {
            let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace] + arguments,
                stdoutPath: "/dev/full", stderrPath: scratch.file("err")))
            let status = child.wait(timeout: 60)
            let err = scratch.read("err")
            #expect(status == 1, "\(arguments): \(err)")
            #expect(err == "fasttrace: writing results: No space left on device\n", "\(arguments)")
        }
        // Batch mode: the same, and promptly (not after the whole list).
        scratch.write("list", runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "300"]).stdout)
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"),
            "-p", "443", "--format", "json", "-w", "1", "--rate", "20000"],
            stdoutPath: "/dev/full", stderrPath: scratch.file("err")))
        #expect(child.wait(timeout: 60) == 1)
        #expect(scratch.read("err") == "fasttrace: writing results: No space left on device\n")
    }

    @Test("A reader that goes away (closed pipe): exit 1 with one line, not a silent SIGPIPE death")
    func closedStdout() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // Open targets finish at once, black holes only after -w: the reader (head) is gone by then.
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "300"]).stdout
        scratch.write("list", list)
        let script = """
            "$0" --netns "$1" --targets "$2" -p 443 --format json -w 1 --rate 20000 2>"$3" | head -n 1 >/dev/null
            echo "${PIPESTATUS[0]}"
            """
        let r = runTool(["bash", "-c", script, fasttraceBinary, lab.namespace, scratch.file("list"), scratch.file("err")],
            timeout: 60)
        #expect(r.stdout == "1\n", "fasttrace exited \(r.stdout): \(scratch.read("err"))")
        #expect(scratch.read("err") == "fasttrace: writing results: Broken pipe\n")
    }
}

// MARK: 2. -i and -s the route cannot use

/// An interface `ftdum0` (203.0.113.1/24) in the lab's vantage namespace, with a /32 route for
/// `decoy` through it: the routing table sends `decoy` into a device that leads nowhere. Removed
/// by `remove()` (call it in a defer).
struct DecoyInterface {
    static let name = "ftdum0"
    static let address = "203.0.113.1"
    static let decoy = "198.19.254.201"
    let namespace: String

    init(namespace: String) throws {
        self.namespace = namespace
        remove()
        // A veth pair with both ends in the namespace (this kernel has no dummy driver): nothing sent
        // into it goes anywhere.
        try run(["ip", "-n", namespace, "link", "add", Self.name, "type", "veth", "peer", "name", Self.name + "p"])
        try run(["ip", "-n", namespace, "link", "set", Self.name + "p", "up"])
        try run(["ip", "-n", namespace, "addr", "add", Self.address + "/24", "dev", Self.name])
        try run(["ip", "-n", namespace, "link", "set", Self.name, "up"])
        try run(["ip", "-n", namespace, "route", "add", Self.decoy + "/32", "dev", Self.name])
    }

    func remove() { _ = runTool(["ip", "-n", namespace, "link", "del", Self.name]) }
}

extension CLIHonestyTests {
    @Test("-i lo and -s 127.0.0.1 toward a lab target: exit 2 with one line, no probes into silence")
    func unusableInterfaceOrSource() throws {
        let lab = try Lab.get()
        let target = lab.truth.kind(named: "open").example
        let cases: [([String], String)] = [
            (["-i", "lo"], "fasttrace: \(target): no route through lo (-i lo)\n"),
            (["-s", "127.0.0.1"],
             "fasttrace: \(target): -s 127.0.0.1 cannot be used: the route leaves through \(lab.truth.vantage.interface), and 127.0.0.1 is an address of lo\n"),
        ]
        for (option, message) in cases {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "1", "-m", "8"] + option
                + [target, "443"], timeout: 60)
            #expect(r.status == 2, "\(option): \(r.stdout)")
            #expect(r.stderr == message, "\(option)")
            #expect(r.stdout.isEmpty, "\(option): no header for a trace that is not run")
        }
    }

    @Test("In a list, a target whose route cannot use -i is skipped with its line")
    func unusableInterfaceInAList() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = lab.truth.kind(named: "open").example
        let silent = lab.truth.kind(named: "silent").example
        scratch.write("list", "\(open)\n\(silent)\n")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"), "-p", "443",
            "--format", "json", "-w", "1", "-i", "lo"], timeout: 60)
        // Every target refused: nothing was traced, which is bad input (exit 2), said in one last line.
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.hasSuffix("fasttrace: \(scratch.file("list")): no target could be traced (2 skipped)\n"),
            "\(r.stderr)")
        #expect(r.stdout.isEmpty, "no trace probed into silence: \(r.stdout)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.prefix(2) == [
            "fasttrace: \(scratch.file("list")):1: \(open): no route through lo (-i lo) (skipped)",
            "fasttrace: \(scratch.file("list")):2: \(silent): no route through lo (-i lo) (skipped)",
        ][...], "\(r.stderr)")
        // The count is in the last line; no "0 traces, …" summary before it (nothing was traced).
        #expect(lines.count == 3 && !r.stderr.contains("fasttrace: 0 traces"), "\(r.stderr)")
    }

    @Test("-p 443 -p 80, two lists, two listen addresses: one line and exit 2, never the last one alone (the parser kept 80 silently)")
    func optionGivenTwice() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open").example
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-p", "443", "-p", "80", open])
        #expect(r.status == 2 && r.stdout.isEmpty, "\(r.stdout)")
        #expect(r.stderr == "fasttrace: -p given twice ('443', then '80'): list the ports in one: -p 443,80\n", "\(r.stderr)")
        let m = runTool([fasttraceBinary, "--netns", lab.namespace, "--interval", "5", "--metrics-listen", "127.0.0.1:9917",
            "--metrics-listen=127.0.0.1:9918", open, "443"])
        #expect(m.status == 2 && m.stderr.hasPrefix("fasttrace: --metrics-listen given twice ('127.0.0.1:9917', then "
            + "'127.0.0.1:9918')"), "\(m.stderr)")
        // The same value twice, or a repeat that is an override by custom (-q), is taken as before.
        let same = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "3", "-q", "1", "-p", "443", "-p443", open])
        #expect(same.status == 0 && same.stdout.contains("[open]"), "\(same.stdout) \(same.stderr)")
    }

    @Test("A directory as --targets: one line and exit 2, like a missing file")
    func directoryAsTargetList() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.path, "-p", "443"])
        #expect(r.status == 2 && r.stdout.isEmpty, "\(r.stderr)")
        #expect(r.stderr == "fasttrace: cannot read target file '\(scratch.path)': Is a directory\n", "\(r.stderr)")
    }

    @Test("-i sends through that interface: the header's device is the one the probes take")
    func interfaceReallySends() throws {
        let lab = try Lab.get()
        let decoy = try DecoyInterface(namespace: lab.namespace)
        defer { decoy.remove() }
        let vantage = lab.truth.vantage
        // The routing table sends the decoy address into ftdum0; -i veth0 must still send (and trace)
        // through veth0, where the open prefix lives: reached at TTL 7 like any open target.
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "1", "-m", "8", "--sport", "47555",
            "-i", vantage.interface, DecoyInterface.decoy, "443"], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.first == "Selected device \(vantage.interface), address \(vantage.address), port 47555 for outgoing packets",
            "\(r.stdout)")
        #expect(lines.last?.hasPrefix(" 7  \(DecoyInterface.decoy) [open]") == true, "\(r.stdout)")
        // Without -i the header names the device the routing table picks (and the trace goes silent there).
        let plain = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "0.3", "-m", "2", "-q", "1",
            DecoyInterface.decoy, "443"], timeout: 60)
        #expect(plain.stdout.hasPrefix("Selected device \(DecoyInterface.name), address \(DecoyInterface.address),"),
            "\(plain.stdout)")
        // An address of another interface, or an interface the route does not take: refused.
        let target = lab.truth.kind(named: "open").example
        for (option, message) in [
            (["-s", DecoyInterface.address],
             "fasttrace: \(target): -s \(DecoyInterface.address) cannot be used: the route leaves through \(vantage.interface), and \(DecoyInterface.address) is an address of \(DecoyInterface.name)\n"),
            (["-i", DecoyInterface.name], "fasttrace: \(target): no route through \(DecoyInterface.name) (-i \(DecoyInterface.name))\n"),
        ] {
            let refused = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "1"] + option + [target, "443"])
            #expect(refused.status == 2 && refused.stderr == message, "\(option): \(refused.stderr)")
        }
    }
}

// MARK: 3. streaming input

/// `VmHWM` (peak resident set) of a process, in KiB, from /proc.
func peakResidentKiB(_ pid: pid_t) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
    return line.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
}

extension CLIHonestyTests {
    @Test("A list from a slow pipe: the first results come out before the writer has finished")
    func slowWriter() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let targets = runTool([repoRoot + "/scripts/lab.sh", "targets", "open", "100"]).stdout.split(separator: "\n")
        #expect(targets.count == 100)
        scratch.write("first", targets.prefix(50).joined(separator: "\n") + "\n")
        scratch.write("second", targets.suffix(50).joined(separator: "\n") + "\n")
        // The writer marks the moment it has written everything (just before it closes the pipe).
        let script = """
            { cat "$1"; sleep 3; cat "$2"; touch "$3"; } | "$0" --netns "$4" --targets - -p 443 --format json -w 1 -m 8
            """
        let child = try #require(Child(["bash", "-c", script, fasttraceBinary, scratch.file("first"),
            scratch.file("second"), scratch.file("done"), lab.namespace],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        let sawResults = waitUntil(seconds: 30) { traceCount(scratch.read("out")) > 0 }
        let writerDone = FileManager.default.fileExists(atPath: scratch.file("done"))
        #expect(sawResults && !writerDone, "results only after the writer finished: \(scratch.read("err"))")
        #expect(child.wait(timeout: 60) == 0, "\(scratch.read("err"))")
        #expect(traceCount(scratch.read("out")) == 100)
    }

    @Test("A name whose lookup is slow holds up no other line")
    func slowName() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // The vantage namespace gets its own resolv.conf (ip netns exec mounts /etc/netns/NS/ files over
        // /etc): a name server in the lab's black hole, which never answers. The host's files are not
        // touched.
        let directory = "/etc/netns/\(lab.namespace)"
        let madeDirectory = !FileManager.default.fileExists(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: directory + "/resolv.conf")
            if madeDirectory { try? FileManager.default.removeItem(atPath: directory) }
        }
        let hole = lab.truth.kind(named: "blackhole").example
        #expect(FileManager.default.createFile(atPath: directory + "/resolv.conf",
            contents: Data("nameserver \(hole)\noptions timeout:10 attempts:1\n".utf8)))
        let targets = runTool([repoRoot + "/scripts/lab.sh", "targets", "open", "50"]).stdout
        scratch.write("list", "slow.example.\n" + targets)
        let child = try #require(Child(["ip", "netns", "exec", lab.namespace, fasttraceBinary,
            "--targets", scratch.file("list"), "-p", "443", "--format", "json", "-w", "1", "-m", "8"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        // All 50 addresses are traced while the name on line 1 is still being looked up (10 s).
        let allTraced = waitUntil(seconds: 7) { traceCount(scratch.read("out")) == 50 }
        #expect(allTraced, "\(traceCount(scratch.read("out"))) of 50 traced while the name was looking up")
        #expect(child.isRunning && !scratch.read("err").contains("slow.example"), "the lookup is still going on")
        // The name that did not resolve was skipped: the list was traced but not all of it (exit 3).
        #expect(child.wait(timeout: 60) == 3, "\(scratch.read("err"))")
        #expect(scratch.read("err").hasPrefix("fasttrace: \(scratch.file("list")):1: cannot resolve 'slow.example.'"),
            "\(scratch.read("err"))")
        #expect(scratch.read("err").contains("fasttrace: 50 traces,"), "\(scratch.read("err"))")
    }

    @Test("A 1,000,000-line list: probing starts at once and memory stays flat")
    func millionLines() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // 1,000,000 addresses inside the lab's open prefix 198.19.0.0/16 (each about 15 times).
        var text = ""
        text.reserveCapacity(15_000_000)
        for i in 0..<1_000_000 { text += "198.19.\(i >> 8 & 255).\(i & 255)\n" }
        scratch.write("list", text)
        text = ""
        let child = try #require(Child(["ip", "netns", "exec", lab.namespace, fasttraceBinary,
            "--targets", scratch.file("list"), "-p", "443", "--format", "json", "-m", "2", "-q", "1", "-w", "0.2",
            "--rate", "50000", "--max-in-flight", "1024"],
            stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
        defer { child.stop() }
        // `ip netns exec` execs fasttrace in place: the child's pid is fasttrace's.
        let started = waitUntil(seconds: 5) { !scratch.read("out").isEmpty }
        #expect(started, "no result within 5 s: the list is being read whole first? \(scratch.read("err"))")
        usleep(2_000_000)
        let peak = peakResidentKiB(child.pid)
        kill(child.pid, SIGINT)
        #expect(child.wait(timeout: 30) == 130, "\(scratch.read("err"))")
        // Reading the list whole costs about 125 MB here (debug build); streaming about 35 MB, most of
        // it the receive ring.
        #expect((peak ?? .max) < 64 * 1024, "peak RSS \(peak.map { "\($0) KiB" } ?? "unknown")")
        #expect(traceCount(scratch.read("out")) > 1000)
        #expect(scratch.read("err").contains(", interrupted: "), "\(scratch.read("err"))")
    }

    @Test("Started with standard output closed: no socket takes descriptor 1, so the results go nowhere, not into a raw socket")
    func closedStandardOutput() throws {
        let lab = try Lab.get()
        let target = lab.truth.kind(named: "open").example
        // Before descriptors 0-2 were reserved, the raw IPv4 socket was given descriptor 1: the results were
        // written into it, the write failed (EDESTADDRREQ) and the run ended with status 1.
        let r = runTool(["/bin/sh", "-c", "exec \"$0\" --netns \"$1\" -n -q 1 -w 1 \"$2\" 443 >&-",
            fasttraceBinary, lab.namespace, target], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
    }
}
