// The command line as an operator meets it: argument errors (one line, exit 2), --help, --version and
// completions; and tcptraceroute's habits checked against tcptraceroute itself in the lab: service
// names, hex TOS, "Destination not reached" and exit 1, its `!` letters, --track-port, --no-dnat-strict;
// then what a terminal sees: escaped control characters and the progress line kept off the results.

import Foundation
import Testing

/// A namespace that does not exist: argument tests pass it so that a case which wrongly got through
/// the argument checks stops at `--netns` (and says so) instead of probing from the root namespace.
let noSuchNamespace = "ft-no-such-namespace-for-tests"

/// swift-argument-parser's man page generator, built next to the binary under test
/// (`swift build --product generate-manual`).
let generateManualBinary = URL(fileURLWithPath: fasttraceBinary).deletingLastPathComponent()
    .appendingPathComponent("generate-manual").path

@Suite struct ArgumentErrorTests {
    @Test(arguments: [
        (["--bogus", "198.19.0.1"], "fasttrace: unknown option '--bogus'"),
        (["-q", "-1", "198.19.0.1"], "fasttrace: -q: probes per hop must be 1...8 (got -1)"),
        (["-q", "1.5", "198.19.0.1"], "fasttrace: the value '1.5' is invalid for '-q <probes>'"),
        (["-w", "abc", "198.19.0.1"], "fasttrace: the value 'abc' is invalid for '-w <seconds>'"),
        (["-w", "-1", "198.19.0.1"], "fasttrace: -w: wait must be 0.001...60 seconds (got -1)"),
        (["-w", "1e-9", "198.19.0.1"], "fasttrace: -w: wait must be 0.001...60 seconds (got 1e-09)"),
        (["-w", "0.5", "-f", "-3", "198.19.0.1"], "fasttrace: -f: first TTL must be 1...255 (got -3)"),
        (["198.19.0.1", "-q"], "fasttrace: missing value for '-q <probes>'"),
        (["198.19.0.1", "443", "extra"], "fasttrace: unexpected argument 'extra'"),
        (["--rate", "0", "198.19.0.1"], "fasttrace: --rate: must be 1...10000000 probes/s (got 0)"),
        (["--sport", "-5", "198.19.0.1"], "fasttrace: --sport: must be 1...65535 (got -5)"),
        (["--format", "xml", "198.19.0.1"],
         "fasttrace: the value 'xml' is invalid for '--format <format>'. Please provide one of 'text', 'json', 'csv' or 'dot'."),
        (["198.19.0.1", "htps"], "fasttrace: bad port 'htps': not a number, and no TCP service of that name"),
        (["--targets", "-", "-p", "https,nosuchservice"],
         "fasttrace: -p: bad port 'nosuchservice': not a number, and no TCP service of that name"),
        (["-p", "-1", "198.19.0.1"], "fasttrace: -p: bad port '-1': ports are 1...65535"),
        (["-t", "0x100", "198.19.0.1"], "fasttrace: -t: TOS must be 0...255 (got 0x100)"),
        (["-t", "lowdelay", "198.19.0.1"], "fasttrace: -t: TOS must be 0...255, decimal or 0x hex (got 'lowdelay')"),
        (["--\u{1b}]0;pwned\u{07}", "198.19.0.1"], "fasttrace: unknown option '--\\x1b]0;pwned\\x07'"),
        (["198.19.0.0/30", "443"], "fasttrace: '198.19.0.0/30' is a prefix: give it in a --targets list (one target per HOST)"),
        // Help asked for the wrong way (issue 13): pointed to --help, not to another option or -l's value.
        (["-help"], "fasttrace: unknown option '-help': for the help, use --help (or -h)"),
        (["198.19.0.1", "--h"], "fasttrace: unknown option '--h': for the help, use --help (or -h)"),
        (["-hlep"], "fasttrace: unknown option '-hlep': for the help, use --help (or -h)"),
        (["help", "443"], "fasttrace: 'help' is not taken as a host name: for the help, use --help; a host named help can be given as 'help.'"),
        // Values attached to short options are read as tcptraceroute reads them: the arguments pass, and
        // the run stops at the namespace that does not exist.
        (["-q1", "-w1", "-m8", "-n", "198.19.0.1", "443"], "fasttrace: --netns: no network namespace named '\(noSuchNamespace)' (see `ip netns list`)"),
        (["-p443", "--targets", "-"], "fasttrace: --netns: no network namespace named '\(noSuchNamespace)' (see `ip netns list`)"),
        (["-s198.18.0.2", "-ilo", "-f2", "-t0x10", "-l60", "-nF", "198.19.0.1"],
         "fasttrace: --netns: no network namespace named '\(noSuchNamespace)' (see `ip netns list`)"),
        (["-q9", "198.19.0.1"], "fasttrace: -q: probes per hop must be 1...8 (got 9)"),
        (["-q-1", "198.19.0.1"], "fasttrace: -q: probes per hop must be 1...8 (got -1)"),
        (["-x1", "198.19.0.1"], "fasttrace: unknown option '-x1'"),
        (["255.255.255.255"], "fasttrace: '255.255.255.255' is the limited broadcast address, not a host's: nothing to trace"),
        (["fe80::1", "443"], "fasttrace: 'fe80::1' is a link-local address (fe80::/10), not a host's: nothing to trace"),
        (["-6", "-s", "198.18.0.2", "2001:db8::1"], "fasttrace: -s 198.18.0.2 is an IPv4 address, and -6 traces IPv6 only"),
        (["-4", "-6", "198.19.0.1"], "fasttrace: -4 and -6: give one or the other"),
        (["--interval", "10", "--duration", "3", "--targets", "/dev/null", "-p", "443"],
         "fasttrace: --duration 3 is shorter than --interval 10: a list's rounds are spread over the interval, so the "
            + "targets whose turn comes later would never be traced; give a --duration of at least the interval, or --count"),
        (["--interval", "1", "--metrics-listen", "abc", "198.19.0.1"],
         "fasttrace: --metrics-listen: give ADDR:PORT, :PORT or [ADDR]:PORT (got 'abc')"),
        (["--interval", "1", "--metrics-listen", "256.1.1.1:9917", "198.19.0.1"],
         "fasttrace: --metrics-listen: '256.1.1.1' is not an IPv4 address (give an address, not a name; [ADDR] for IPv6)"),
        (["--interval", "1", "--metrics-listen", "localhost:9917", "198.19.0.1"],
         "fasttrace: --metrics-listen: 'localhost' is not an IPv4 address (give an address, not a name; [ADDR] for IPv6)"),
        (["--interval", "1", "--metrics-listen", "[]:9917", "198.19.0.1"],
         "fasttrace: --metrics-listen: '[]' is not an IPv6 address"),
        (["--interval", "1", "--metrics-listen", "1.2.3.4:99999", "198.19.0.1"],
         "fasttrace: --metrics-listen: port must be 0...65535 (got '99999')"),
        (["--interval", "1", "--metrics-listen", "127.0.0.1:+80", "198.19.0.1"],
         "fasttrace: --metrics-listen: port must be 0...65535 (got '+80')"),
        (["--interval", "1", "--metrics-listen", "[::1]", "198.19.0.1"],
         "fasttrace: --metrics-listen: give ADDR:PORT, :PORT or [ADDR]:PORT (got '[::1]')"),
        (["--interval", "1", "--metrics-listen", "::1:9917", "198.19.0.1"],
         "fasttrace: --metrics-listen: an IPv6 address goes in brackets, [ADDR]:PORT (got '::1:9917')"),
    ])
    func oneLineAndExit2(arguments: [String], message: String) {
        let r = runTool([fasttraceBinary, "--netns", noSuchNamespace] + arguments)
        #expect(r.status == 2, "\(arguments): exit \(r.status)")
        #expect(r.stderr == message + "\n", "\(arguments)")
        #expect(r.stdout.isEmpty, "\(arguments)")
    }

    @Test("--help: exit 0, the whole help on stdout, a value name for every option, each default once")
    func help() {
        let r = runTool([fasttraceBinary, "--help"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        for synopsis in ["-p <ports>", "-i <interface>", "-w <seconds>", "-q <probes>", "-f <ttl>", "-m <ttl>",
            "-t <tos>", "-l <bytes>", "-s <address>", "--rate <probes/s>", "--targets <file>", "--sport <port>",
            "--gap <hops>", "--netns <name>", "--max-in-flight <traces>", "--version", "--track-port", "-N",
            "--no-dnat-strict"]
        {
            #expect(r.stdout.contains("  " + synopsis + " ") || r.stdout.contains("  " + synopsis + "\n"),
                "\(synopsis) missing from:\n\(r.stdout)")
        }
        // No value named after its option's letter (`-p <p>`).
        #expect(r.stdout.range(of: #"-([a-zA-Z]) <\1>"#, options: .regularExpression) == nil, "\(r.stdout)")
        // Each option's entry (its line and the indented lines after it) says its default at most once.
        var entries: [String] = []
        for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  -") || line.hasPrefix("  <") { entries.append(String(line)) } else if line
                .hasPrefix("     "), !entries.isEmpty
            {
                entries[entries.count - 1] += " " + line.trimmingCharacters(in: .whitespaces)
            }
        }
        #expect(entries.count >= 25, "\(entries)")
        for entry in entries {
            #expect(entry.components(separatedBy: "default").count <= 2, "\(entry)")
        }
        #expect(entries.contains { $0.hasPrefix("  -q <probes>") && $0.hasSuffix("(default: 3).") }, "\(entries)")
    }

    @Test("fasttrace help prints the help, as the man page and --help say, rather than trace a host named help")
    func helpWord() {
        let r = runTool([fasttraceBinary, "help"])
        let help = runTool([fasttraceBinary, "--help"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        #expect(r.stdout == help.stdout && r.stdout.hasPrefix("OVERVIEW: "), "\(r.stdout.prefix(200))")
    }

    @Test("What the man page is made from (--experimental-dump-help) states every default, and reads right for --no-dnat")
    func dumpHelpStatesDefaults() throws {
        let r = runTool([fasttraceBinary, "--experimental-dump-help"])
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let arguments = try #require((object?["command"] as? [String: Any])?["arguments"] as? [[String: Any]])
        var abstracts: [String: String] = [:]
        for argument in arguments {
            guard let names = argument["names"] as? [[String: Any]], let abstract = argument["abstract"] as? String else { continue }
            for name in names {
                guard let kind = name["kind"] as? String, let text = name["name"] as? String else { continue }
                abstracts[(kind == "short" ? "-" : "--") + text] = abstract
            }
        }
        let defaults = ["-f": "1", "-m": "30", "-q": "3", "-w": "3", "-t": "0", "-l": "40", "--rate": "2000",
            "--format": "text", "--max-in-flight": "4096", "--name-timeout": "2", "--retries": "0",
            "--max-prefix-addresses": "65536", "--no-dnat": "--no-dnat", "-p": "80", "--gap": "5 in batch mode"]
        for (option, value) in defaults {
            #expect(abstracts[option]?.contains("(default: \(value)") == true, "\(option): \(abstracts[option] ?? "missing")")
        }
        #expect(abstracts["--no-dnat"]?.hasPrefix("Do not print") == true, "\(abstracts["--no-dnat"] ?? "")")
        #expect(abstracts["--dnat"]?.hasPrefix("Print") == true, "\(abstracts["--dnat"] ?? "")")
    }

    @Test("The man page (scripts/man-page.sh): defaults, every exit status, no help subcommand; groff renders it cleanly",
        .enabled(if: FileManager.default.isExecutableFile(atPath: generateManualBinary),
            "needs swift build --product generate-manual (scripts/test.sh builds it)"))
    func manPage() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let made = runTool([repoRoot + "/scripts/man-page.sh", fasttraceBinary, generateManualBinary, "2026-01-01",
            scratch.file("fasttrace.1")])
        #expect(made.status == 0, "\(made.stderr)")
        let groff = runTool(["groff", "-mandoc", "-Tutf8", "-ww", scratch.file("fasttrace.1")])
        #expect(groff.status == 0 && groff.stderr.isEmpty, "\(groff.stderr)")
        // As a reader sees it: rendered, overstriking (bold) taken out by col -bx (and no tabs).
        let page = runTool(["sh", "-c", "MANWIDTH=200 man -l '\(scratch.file("fasttrace.1"))' | col -bx"]).stdout
        for text in ["(default: 30)", "(default: 2000)", "(default: text)", "(default: 4096)", "(default: 2)",
            "Do not print those lines", "EXIT STATUS"]
        {
            #expect(page.contains(text), "man page lacks \(text)")
        }
        #expect(!page.contains("subcommand") && !page.contains(">0 if an error occurs"), "\(page)")
        let statuses = page.components(separatedBy: "EXIT STATUS").last ?? ""
        for status in ["0", "1", "2", "3", "130"] {
            #expect(statuses.range(of: "\n +\(status) +[A-Z]", options: .regularExpression) != nil, "status \(status): \(statuses)")
        }
    }

    @Test("--version prints the version on stdout and exits 0")
    func version() {
        let r = runTool([fasttraceBinary, "--version"])
        #expect(r.status == 0 && r.stderr.isEmpty)
        #expect(r.stdout.range(of: #"^fasttrace [0-9]+\.[0-9]+\.[0-9]+\n$"#, options: .regularExpression) != nil,
            "\(r.stdout)")
    }

    @Test("--experimental-dump-help (what swift-argument-parser's generate-manual reads) still works")
    func dumpHelp() throws {
        let r = runTool([fasttraceBinary, "--experimental-dump-help"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect((object?["command"] as? [String: Any])?["commandName"] as? String == "fasttrace", "\(r.stdout.prefix(300))")
    }

    @Test("The hidden --generate-completion-script still works", arguments: ["bash", "zsh", "fish"])
    func completions(shell: String) {
        let r = runTool([fasttraceBinary, "--generate-completion-script", shell])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        #expect(r.stdout.contains("track-port") && r.stdout.contains("targets"), "\(r.stdout.prefix(300))")
    }
}

/// The lab's namespace for node `name` (`fw`, `vantage`, …).
func labNamespace(_ name: String) -> String { Lab.prefix + "-" + name }

/// An nftables table `fttest` loaded into namespace `namespace` for the duration of `body`, deleted
/// afterwards even if `body` throws.
func withNftTable<T>(in namespace: String, _ rules: String, _ body: () throws -> T) throws -> T {
    _ = runTool(["ip", "netns", "exec", namespace, "nft", "delete", "table", "ip", "fttest"])
    let loaded = runTool(["ip", "netns", "exec", namespace, "nft", "-f", "-"],
        stdin: "table ip fttest {\n\(rules)\n}\n")
    guard loaded.status == 0 else { throw LabError("nft in \(namespace): \(loaded.stderr)") }
    defer { _ = runTool(["ip", "netns", "exec", namespace, "nft", "delete", "table", "ip", "fttest"]) }
    return try body()
}

/// The hop lines of tcptraceroute-style text, as `TTL ADDRESS [mark]` (`*` for none).
func hopSummary(_ text: String) -> [String] {
    text.split(separator: "\n").compactMap { line -> String? in
        let fields = line.split(separator: " ")
        guard let ttl = fields.first, Int(ttl) != nil else { return nil }
        let address = fields.dropFirst().first { ipv4(String($0)) != nil } ?? "*"
        let mark = fields.first { $0.hasPrefix("!") || $0 == "[open]" || $0 == "[closed]" }.map { " " + $0 } ?? ""
        return "\(ttl) \(address)\(mark)"
    }
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct TcptracerouteCompatibilityTests {
    @Test("A port given as a service name is that port: the same header as 443, and as tcptraceroute's")
    func serviceNames() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open").example
        var headers: [String] = []
        for port in ["443", "https"] {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", open, port])
            #expect(r.status == 0, "\(port): \(r.stderr)")
            headers.append(r.stdout.split(separator: "\n").dropFirst().first.map(String.init) ?? "")
        }
        #expect(headers[0] == "Tracing the path to \(open) on TCP port 443 (https), 30 hops max")
        #expect(headers[1] == headers[0])
        // tcptraceroute prints its header on stderr.
        let theirs = runTool(["ip", "netns", "exec", lab.namespace, "tcptraceroute", "-n", "-q", "1", "-w", "1",
            open, "https"])
        #expect(theirs.stderr.split(separator: "\n").contains { $0 == headers[0] }, "\(theirs.stderr)")
        // A list: -p with names, in a range too.
        let list = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "https,smtp,ssh-23",
            "--format", "json", "-q", "1", "-w", "1", "-m", "8"], stdin: open + "\n")
        #expect(list.status == 0, "\(list.stderr)")
        #expect(parseTraces(list.stdout).map(\.port).sorted() == [22, 23, 25, 443], "\(list.stdout)")
    }

    @Test("-t 0x10 and -t 16 both put TOS 0x10 on the probes (seen on the wire)", arguments: ["0x10", "16"])
    func hexTypeOfService(tos: String) throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let sport = "47611"
        let capture = try #require(Child(["ip", "netns", "exec", lab.namespace, "tcpdump", "-l", "-nn", "-v", "-c",
            "1", "-i", lab.truth.vantage.interface, "tcp src port \(sport)"],
            stdoutPath: scratch.file("cap"), stderrPath: scratch.file("caperr")))
        defer { capture.stop() }
        for _ in 0..<100 where !scratch.read("caperr").contains("listening on") { usleep(50_000) }
        #expect(scratch.read("caperr").contains("listening on"), "tcpdump: \(scratch.read("caperr"))")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "-m", "1",
            "--sport", sport, "-t", tos, lab.truth.kind(named: "open").example, "443"])
        #expect(r.status == 1, "\(r.stderr)")  // TTL 1 does not reach
        capture.wait(timeout: 5)
        #expect(scratch.read("cap").contains("tos 0x10,"), "\(scratch.read("cap"))")
    }

    @Test("A single target not reached: 'Destination not reached' on stderr and exit 1, as tcptraceroute")
    func destinationNotReached() throws {
        let lab = try Lab.get()
        let hole = lab.truth.kind(named: "blackhole")
        // One 5-tuple for both, so both take the same ECMP branch.
        let sport = "47612"
        let ours = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "-m", "8",
            "--sport", sport, hole.example, "443"])
        let theirs = runTool(["ip", "netns", "exec", lab.namespace, "tcptraceroute", "-n", "-q", "1", "-w", "1",
            "-m", "8", "-p", sport, hole.example, "443"])
        #expect(ours.status == 1, "\(ours.stderr)")
        #expect(ours.stderr == "Destination not reached\n")
        #expect(theirs.status == 1 && theirs.stderr.hasSuffix("\nDestination not reached\n"), "\(theirs.stderr)")
        #expect(hopSummary(ours.stdout) == hopSummary(theirs.stdout), "ours:\n\(ours.stdout)\ntheirs:\n\(theirs.stdout)")
        #expect(hopSummary(ours.stdout).last == "8 *")
        // JSON: the same exit status; the object says it, no text on stderr.
        let json = runTool([fasttraceBinary, "--netns", lab.namespace, "--format", "json", "-q", "1", "-w", "1",
            "-m", "8", hole.example, "443"])
        #expect(json.status == 1 && json.stderr.isEmpty, "\(json.stderr)")
        #expect(parseTraces(json.stdout).map(\.reached) == [false])
        // Reached, open or closed: exit 0 and nothing on stderr.
        let open = lab.truth.kind(named: "open").example
        for port in ["443", "25"] {
            let reached = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", open, port])
            #expect(reached.status == 0 && reached.stderr.isEmpty, "\(port): \(reached.stderr)")
        }
    }

    @Test("Code 13 (administratively prohibited) is !A, as tcptraceroute prints it")
    func adminProhibited() throws {
        let lab = try Lab.get()
        let target = "198.18.32.11"  // behind the firewall router (kind firewalled)
        #expect(lab.truth.kind(of: target)?.kind == "firewalled")
        let firewall = lab.truth.kind(named: "firewalled").hops[6][0]
        try withNftTable(in: labNamespace("fw"), """
            chain forward {
                type filter hook forward priority -10; policy accept;
                ip daddr \(target) tcp dport 8443 reject with icmp type admin-prohibited
            }
            """) {
            let sport = "47613"
            let ours = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "--sport", sport,
                target, "8443"])
            let theirs = runTool(["ip", "netns", "exec", lab.namespace, "tcptraceroute", "-n", "-q", "1", "-w", "1",
                "-p", sport, target, "8443"])
            #expect(hopSummary(ours.stdout).last == "8 \(firewall) !A", "\(ours.stdout)")
            #expect(hopSummary(ours.stdout) == hopSummary(theirs.stdout), "ours:\n\(ours.stdout)\ntheirs:\n\(theirs.stdout)")
            // The destination did not answer: exit 1 (tcptraceroute exits 0 after a ! mark).
            #expect(ours.status == 1 && ours.stderr == "Destination not reached\n", "\(ours.stderr)")
        }
    }

    @Test("--track-port: a path that rewrites the IPv4 ID still shows its routers")
    func trackPort() throws {
        let lab = try Lab.get()
        let kind = lab.truth.kind(named: "open")
        // The vantage's own output path rewrites the ID of every probe, as some stacks and middleboxes do.
        try withNftTable(in: lab.namespace, """
            chain out {
                type filter hook output priority 0; policy accept;
                ip protocol tcp tcp dport 443 ip id set 4660
            }
            """) {
            let arguments = ["--netns", lab.namespace, "--format", "json", "-q", "1", "-w", "1", "--reasks", "0",
                kind.example, "443"]
            let strict = runTool([fasttraceBinary] + arguments)
            let tracked = runTool([fasttraceBinary, "--track-port"] + arguments)
            #expect(strict.status == 0 && tracked.status == 0, "\(strict.stderr) \(tracked.stderr)")
            let routers = kind.hops.count
            // Without it the quoted ID fails the MAC: only the destination is heard.
            let s = try #require(parseTraces(strict.stdout).first)
            #expect(s.reached && s.hops.prefix(routers).allSatisfy { $0.addr == nil }, "\(strict.stdout)")
            let t = try #require(parseTraces(tracked.stdout).first)
            #expect(problems(t, kind, probes: 1) == [], "\(tracked.stdout)")
        }
    }

    @Test("A router that rewrites the IPv4 ID: the hops past it are *, and one line names --track-port")
    func rewrittenIPIDIsHinted() throws {
        let lab = try Lab.get()
        let kind = lab.truth.kind(named: "open")
        // r2 (TTL 2) rewrites the ID of every probe it forwards: r2 itself quotes the probe as sent, the
        // routers past it (TTLs 3–6) quote the rewritten ID.
        try withNftTable(in: labNamespace("r2"), """
            chain rewrite {
                type filter hook forward priority 0; policy accept;
                ip protocol tcp tcp dport 443 ip id set 4660
            }
            """) {
            let arguments = ["--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "--reasks", "0", kind.example, "443"]
            let strict = runTool([fasttraceBinary] + arguments)
            let tracked = runTool([fasttraceBinary, "--track-port"] + arguments)
            #expect(strict.status == 0 && tracked.status == 0, "\(strict.stderr) \(tracked.stderr)")
            let routers = kind.hops.count
            let heard = Array(hopSummary(strict.stdout).prefix(routers))
            let expected = ["1 \(kind.hops[0][0])", "2 \(kind.hops[1][0])"] + (3...routers).map { "\($0) *" }
            #expect(heard.joined(separator: "|") == expected.joined(separator: "|"), "\(strict.stdout)")
            // Said once, with the count and the remedy.
            let hints = strict.stderr.split(separator: "\n").filter { $0.contains("--track-port") }
            #expect(hints == ["fasttrace: \(routers - 2) router replies came back with the probe's IP ID rewritten on "
                + "the way (a NAT or scrubber on the path), so those hops show as *: --track-port matches them without "
                + "the IP ID"], "\(strict.stderr)")
            // With --track-port every router is heard and nothing is hinted.
            #expect(!tracked.stderr.contains("--track-port"), "\(tracked.stderr)")
            #expect(hopSummary(tracked.stdout).prefix(routers).allSatisfy { !$0.hasSuffix(" *") }, "\(tracked.stdout)")
        }
    }

    @Test("--no-dnat-strict: the hop quoting the translated destination is silent, as in tcptraceroute")
    func noDNATStrict() throws {
        let lab = try Lab.get()
        let kind = lab.truth.kind(named: "dnat")
        let dnat = try #require(kind.dnat)
        let sport = "47614"
        let ours = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "--reasks", "0",
            "--sport", sport, "--no-dnat-strict", kind.example, "443"])
        let theirs = runTool(["ip", "netns", "exec", lab.namespace, "tcptraceroute", "-n", "-q", "1", "-w", "1",
            "-p", sport, "--no-dnat-strict", kind.example, "443"])
        #expect(ours.status == 0, "\(ours.stderr)")
        let hops = hopSummary(ours.stdout)
        #expect(hops.count == kind.destination_ttl && hops[dnat.ttl - 1] == "\(dnat.ttl) *", "\(ours.stdout)")
        #expect(hops == hopSummary(theirs.stdout), "ours:\n\(ours.stdout)\ntheirs:\n\(theirs.stdout)")
    }
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct TerminalOutputTests {
    @Test("Control characters from a target file are written out in messages, never sent to the terminal")
    func controlCharactersEscaped() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // A bad line: the message quotes it.
        scratch.write("list", "\u{1b}]0;pwned\u{07}\u{1b}[2J\n")
        let bad = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"), "-p", "443"])
        #expect(bad.status == 2)
        #expect(!bad.stderr.contains("\u{1b}") && !bad.stderr.contains("\u{07}"), "\(bad.stderr.debugDescription)")
        #expect(bad.stderr.contains(":1: '\\x1b]0;pwned\\x07\\x1b[2J'"), "\(bad.stderr)")
        // A skip message quotes the file's name: a name with an escape sequence in it.
        let hostile = "list\u{1b}[31m"
        scratch.write(hostile, lab.truth.kind(named: "open").example + "\n")
        let skipped = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file(hostile), "-p",
            "443", "-i", "lo"])
        #expect(skipped.status == 2, "\(skipped.stderr)")  // its one target skipped: nothing traced
        let first = skipped.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("fasttrace: \(scratch.path)/list\\x1b[31m:1: ") && first.hasSuffix("(skipped)"),
            "\(skipped.stderr.debugDescription)")
        #expect(!skipped.stderr.contains("\u{1b}"))
    }

    @Test("On a terminal the progress line is wiped before each result block and drawn again after")
    func progressLineKeptOffResults() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // Open targets finish at once; black holes after their wait and gap, while the progress line shows.
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "30"]).stdout
        scratch.write("list", list)
        let command = [fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"), "-p", "443", "-n",
            "-q", "1", "-w", "1", "--gap", "2"].map { "'\($0)'" }.joined(separator: " ")
        // script(1) runs it on a pseudo-terminal: stdout and stderr are the same terminal.
        let r = runTool(["script", "-q", "-e", "-c", command, scratch.file("typescript")], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        let raw = scratch.read("typescript")
        #expect(raw.contains("[fasttrace] "), "no progress line was drawn: the test proves nothing")
        // What the terminal shows: each line as carriage returns let later text overwrite it from the
        // left. (By Unicode scalars: as Characters, "\r\n" is one.)
        var screen: [String] = []
        var cells: [Unicode.Scalar] = []
        var column = 0
        for scalar in raw.unicodeScalars {
            switch scalar {
            case "\n":
                var line = String(String.UnicodeScalarView(cells))
                while line.last == " " { line.removeLast() }
                screen.append(line)
                cells = []
                column = 0
            case "\r":
                column = 0
            default:
                if column < cells.count { cells[column] = scalar } else { cells.append(scalar) }
                column += 1
            }
        }
        let titles = screen.filter { $0.contains(" port 443: ") }
        #expect(titles.count == 30, "\(titles)")
        for title in titles {
            #expect(!title.contains("[fasttrace]") && ipv4(String(title.prefix { $0 != " " })) != nil, "\(title)")
        }
        // The progress line is gone at the end: the summary stands alone.
        #expect(screen.contains { $0.hasPrefix("fasttrace: 30 traces,") }, "\(screen.suffix(3))")
    }

    @Test("A 20,000-line list: the progress line has its total long before the list is read (issue 13)")
    func progressTotalFromTheStart() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // 20,000 open targets on 2 ports take over a minute at the default rate; the run is interrupted
        // after 3 s, when the reader (held back by its queue of 4,096) is far from the end of the list.
        let open = try #require(ipv4(lab.truth.kind(named: "open").example))
        let base = open & 0xFFFF_0000
        scratch.write("list", (0..<20_000).map { ipv4String(base + 256 + UInt32($0)) + "\n" }.joined())
        let command = (["timeout", "--preserve-status", "-s", "INT", "3", fasttraceBinary, "--netns", lab.namespace, "--targets",
            scratch.file("list"), "-p", "443,80", "-n", "-q", "1", "-w", "1", "--format", "json"]
            .map { "'\($0)'" } + [">/dev/null"]).joined(separator: " ")
        let r = runTool(["script", "-q", "-e", "-c", command, scratch.file("typescript")], timeout: 60)
        #expect(r.status == 130, "\(r.stderr)")
        let drawn = scratch.read("typescript").split(whereSeparator: { $0 == "\r" || $0 == "\n" })
            .filter { $0.hasPrefix("[fasttrace] ") }
        #expect(!drawn.isEmpty, "no progress line was drawn: the test proves nothing")
        // Every line drawn has the total (20,000 targets × 2 ports) or says it is being counted.
        let unexplained = drawn.filter { !$0.contains("/40,000 traces,") && !$0.contains("list still being counted") }
        #expect(unexplained.isEmpty, "\(unexplained.prefix(3))")
        #expect(drawn.contains { $0.contains("/40,000 traces,") }, "\(drawn.suffix(3))")
    }
}
