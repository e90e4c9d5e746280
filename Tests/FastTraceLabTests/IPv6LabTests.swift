// IPv6 against the lab's real routers (every node but the NAT's branch is dual-stack, 2001:db8::/32):
// every kind and every probe kind over IPv6 checked against the truth's IPv6 routers, IPv4 and IPv6
// targets in one list and one run, traceroute -6 as a peer, the hostile twins (the kernel's ICMPv6
// rate limits on; forged ICMPv6 errors and SYN-ACKs from a router), and the family options. Root and
// the lab (FT_LAB_PREFIX picks it).

import FastTraceLinux
import FastTraceWire
import Foundation
import Testing

/// `n` IPv6 targets of the lab's `kind` (scripts/lab.sh targets6).
func targets6(_ kind: String, _ n: Int) -> String {
    runTool([repoRoot + "/scripts/lab.sh", "targets6", kind, String(n)]).stdout
}

/// The JSON objects of fasttrace's output lines that are traces (not the summary).
func traceObjects(_ output: String) -> [[String: Any]] {
    output.split(separator: "\n").compactMap {
        (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
    }.filter { $0["target"] != nil }
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct IPv6LabTests {
    @Test("IPv6: longest-prefix match, metrics, reject routes, and a usable source sharing the longest prefix")
    func longestPrefixMatch6() async throws {
        func a(_ text: String) -> IPAddress { IPAddress(text)! }
        let table = RouteTable6(
            entries: [
                .init(destination: a("::"), prefixLength: 0, interfaceIndex: 2, gateway: a("2001:db8:0:1::1")),
                .init(destination: a("2001:db8:100::"), prefixLength: 48, interfaceIndex: 3, gateway: a("2001:db8:3::1"),
                    metric: 200),
                .init(destination: a("2001:db8:100::"), prefixLength: 48, interfaceIndex: 2, gateway: a("2001:db8:0:1::fe"),
                    metric: 100),
                .init(destination: a("2001:db8:100:8000::"), prefixLength: 49, kind: .reject, interfaceIndex: 0),
                .init(destination: a("2001:db8:77::9"), prefixLength: 128, interfaceIndex: 3,
                    preferredSource: a("2001:db8:3::77")),
                .init(destination: a("2001:db8:0:1::"), prefixLength: 64, interfaceIndex: 2),
            ],
            addresses: [
                .init(interfaceIndex: 1, address: a("::1"), prefixLength: 128, usable: false),
                .init(interfaceIndex: 2, address: a("fe80::1"), prefixLength: 64, usable: false),
                .init(interfaceIndex: 2, address: a("2001:db8:9::2"), prefixLength: 64),
                .init(interfaceIndex: 2, address: a("2001:db8:0:1::2"), prefixLength: 64),
                .init(interfaceIndex: 2, address: a("2001:db8:0:1::3"), prefixLength: 64, usable: false),  // tentative
                .init(interfaceIndex: 3, address: a("2001:db8:3::2"), prefixLength: 64),
            ],
            interfaceNames: [1: "lo", 2: "eth-a", 3: "eth-b"])
        // Default route; of eth-a's usable addresses, the one sharing the longest prefix with the
        // destination (link-local and tentative ones never).
        #expect(table.lookup(a("2001:db8:0:1::77"))
            == Route(interfaceIndex: 2, interfaceName: "eth-a", source: a("2001:db8:0:1::2"), gateway: nil))
        #expect(table.lookup(a("2001:db8:9::5"))?.source == a("2001:db8:9::2"))
        // Equal prefixes: the lower metric wins; a more specific reject route means no route.
        #expect(table.lookup(a("2001:db8:100::5"))?.gateway == a("2001:db8:0:1::fe"))
        #expect(table.lookup(a("2001:db8:100:8000::5")) == nil)
        // A host route with a preferred source.
        #expect(table.lookup(a("2001:db8:77::9"))?.source == a("2001:db8:3::77"))
        #expect(table.sourceAddressExists(a("2001:db8:3::2")) && !table.sourceAddressExists(a("2001:db8:3::3")))
        #expect(table.restricted(toInterface: 3).lookup(a("2001:db8:0:1::77")) == nil)
        #expect(RouteTable6(entries: [], addresses: []).lookup(a("2001:db8::1")) == nil)
        // The real table in the lab's vantage namespace: the default route via r1, the vantage's address.
        let lab = try Lab.get()
        let r1 = try #require(lab.truth.kind(named: "open").overIPv6).hops[0][0]
        let open = try #require(lab.truth.kind(named: "open").overIPv6).example
        let loaded = try await inNamespace(lab.namespace) { try RouteTable6.load() }
        let route = try #require(loaded.lookup(a(open)))
        #expect(route.interfaceName == "veth0" && route.gateway == a(r1) && route.source == a(lab.truth.vantage6), "\(route)")
        // The kernel's own choice agrees.
        let kernel = runTool(["ip", "netns", "exec", lab.namespace, "ip", "-6", "route", "get", open])
        #expect(kernel.stdout.contains("via \(r1) dev veth0") && kernel.stdout.contains("src \(lab.truth.vantage6)"),
            "\(kernel.stdout)")
    }

    @Test("TCP SYN over IPv6: every kind and port as the truth says, routers at their TTLs")
    func tcpMatchesTheTruth() throws {
        let lab = try Lab.get()
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443,80,25",
            "--format", "json", "-n", "-q", "2", "-w", "1", "-m", "12", "--gap", "3"], stdin: targets6("mixed", 60),
            timeout: 180)
        #expect(r.status == 0, "\(r.stderr)")
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 180)
        var wrong: [String] = []
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else {
                wrong.append("\(trace.target): not a lab target")
                continue
            }
            for p in problems(trace, kind, probes: 2) { wrong.append("\(trace.target):\(trace.port) (\(kind.kind)) \(p)") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(8))")
        #expect(traceObjects(r.stdout).allSatisfy { $0["family"] as? String == "ipv6" })
        #expect(r.stderr.contains(" 0 rejected"), "\(r.stderr)")
    }

    @Test("UDP, ICMPv6 echo, TCP ACK over IPv6: every kind's states as the truth says")
    func otherProbeKinds() throws {
        let lab = try Lab.get()
        let list = targets6("mixed", 40)
        // UDP: DNS and NTP answered (their answers echo the word), 33434 closed by the host's own ICMPv6
        // port unreachable, silence where the firewall or the black hole is.
        let udp = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "--targets", "-", "-p", "53,123,33434",
            "--format", "json", "-n", "-w", "1", "-m", "12", "--gap", "3"], stdin: list, timeout: 180)
        #expect(udp.status == 0, "\(udp.stderr)")
        let udpTraces = parseTraces(udp.stdout)
        #expect(udpTraces.count == 120)
        var wrong: [String] = []
        for trace in udpTraces {
            guard let kind = lab.truth.kind(of: trace.target) else { continue }
            for p in udpProblems(trace, kind) { wrong.append("udp \(trace.target):\(trace.port) \(p)") }
        }
        // ICMPv6 echo: reachable where the host answers, filtered past the firewall and in the black hole.
        let icmp = runTool([fasttraceBinary, "--netns", lab.namespace, "-I", "--targets", "-", "--format", "json",
            "-n", "-w", "1", "-m", "12", "--gap", "3"], stdin: list, timeout: 180)
        #expect(icmp.status == 0, "\(icmp.stderr)")
        let echoes = traceObjects(icmp.stdout)
        #expect(echoes.count == 40)
        for object in echoes {
            let target = object["target"] as? String ?? "?"
            guard let kind = lab.truth.kind(of: target) else { continue }
            let hops = object["hops"] as? [[String: Any]] ?? []
            if object["state"] as? String != kind.icmp { wrong.append("icmp \(target): \(object["state"] ?? "null")") }
            if kind.icmp == "reachable" {
                let last = hops.last
                if hops.count != kind.destination_ttl || last?["addr"] as? String != target
                    || last?["kind"] as? String != "echo-reply"
                {
                    wrong.append("icmp \(target): \(hops.count) hops, last \(last ?? [:])")
                }
            }
            for (i, hop) in hops.enumerated() where i < min(kind.hops.count, (kind.destination_ttl ?? 99) - 1) {
                let allowed = kind.hops[i]
                let addr = hop["addr"] as? String
                if allowed.isEmpty ? addr != nil : !(addr.map(allowed.contains) ?? false) {
                    wrong.append("icmp \(target) ttl \(i + 1): \(addr ?? "*"), expected \(allowed)")
                }
            }
        }
        // TCP ACK: the host's RST says unfiltered; the firewall and the hole say nothing.
        let ack = runTool([fasttraceBinary, "--netns", lab.namespace, "-A", "--targets", "-", "-p", "80",
            "--format", "json", "-n", "-w", "1", "-m", "12", "--gap", "3"], stdin: list, timeout: 180)
        for trace in parseTraces(ack.stdout) {
            guard let kind = lab.truth.kind(of: trace.target) else { continue }
            let expected = kind.ports["80"] == "filtered" ? "filtered" : "unfiltered"
            if trace.state != expected { wrong.append("ack \(trace.target): \(trace.state ?? "null"), expected \(expected)") }
        }
        #expect(parseTraces(ack.stdout).count == 40)
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(8))")
    }

    @Test("IPv4 and IPv6 targets in one list: one run, each trace right for its family")
    func bothFamiliesInOneRun() throws {
        let lab = try Lab.get()
        let v4 = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "50"]).stdout
        let v6 = targets6("mixed", 50)
        // Interleaved, so the families share batches, slots and the ring.
        let list = zip(v4.split(separator: "\n"), v6.split(separator: "\n")).map { "\($0)\n\($1)\n" }.joined()
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443", "--format", "json",
            "-n", "-q", "1", "-w", "1", "-m", "12", "--gap", "3"], stdin: list, timeout: 180)
        #expect(r.status == 0, "\(r.stderr)")
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 100)
        var wrong: [String] = []
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else { continue }
            for p in problems(trace, kind, probes: 1) { wrong.append("\(trace.target) (\(kind.kind)) \(p)") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(8))")
        let families = traceObjects(r.stdout).map { "\($0["target"] as? String ?? "")|\($0["family"] as? String ?? "")" }
        #expect(families.filter { $0.hasSuffix("|ipv6") }.allSatisfy { $0.contains(":") })
        #expect(families.filter { $0.hasSuffix("|ipv4") }.count == 50)
        // Nothing refused but, on a loaded machine, late replies (stale: answered after their trace's wait).
        #expect(r.stderr.contains("fasttrace: 100 traces, "), "\(r.stderr)")
        for reason in ["forged", "malformed", "foreign", "IP ID rewritten", "premature"] {
            #expect(!r.stderr.contains(" \(reason)"), "\(r.stderr)")
        }
    }

    @Test("IPv6 JSON of every probe kind validates against docs/trace.schema.json; IPv6 hops get AS numbers")
    func schemaAndASNumbers() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // An iptoasn-style table with one IPv6 range: the lab's first link (r1 answers from it).
        scratch.write("asn.tsv", "2001:db8:0:1::\t2001:db8:0:1:ffff:ffff:ffff:ffff\t64510\tZZ\tLAB-LINK-1\n")
        let list = targets6("mixed", 20)
        var lines = ""
        let begin = Date().timeIntervalSince1970
        for method in [["-p", "443,25"], ["-U", "-p", "53,33434"], ["-I"], ["-A", "-p", "80"]] {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "--format", "json", "-n",
                "--asn-db", scratch.file("asn.tsv"), "-q", "1", "-w", "1", "-m", "10", "--gap", "3"] + method,
                stdin: list, timeout: 120)
            #expect(r.status == 0, "\(method): \(r.stderr)")
            lines += r.stdout
            for object in traceObjects(r.stdout) {
                let first = (object["hops"] as? [[String: Any]])?.first
                #expect(first?["asn"] as? Int == 64510 && first?["as_name"] as? String == "LAB-LINK-1",
                    "\(method) \(object["target"] ?? "?"): \(first ?? [:])")
            }
        }
        let window = "\(begin) \(Date().timeIntervalSince1970)"
        let check = runTool(["python3", "-c", labSchemaCheck, repoRoot + "/docs/trace.schema.json", window],
            stdin: lines, timeout: 60)
        #expect(check.status == 0 && check.stdout.hasPrefix("valid 120 "), "\(check.stdout)\(check.stderr)")
        for kind in ["syn-ack", "rst", "udp-reply", "port-unreachable", "echo-reply", "time-exceeded"] {
            #expect(check.stdout.contains(" \(kind)"), "\(kind) in \(check.stdout)")
        }
    }

    @Test("Over IPv6 the same routers as traceroute -6 -T, and the text output names them")
    func agreesWithTraceroute6() throws {
        let lab = try Lab.get()
        let open = try #require(lab.truth.kind(named: "open").overIPv6)
        let ours = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "--sport", "41234",
            open.example, "443"], timeout: 60)
        #expect(ours.status == 0, "\(ours.stderr)")
        #expect(ours.stdout.hasPrefix("Selected device veth0, address \(lab.truth.vantage6), port 41234 for outgoing packets"),
            "\(ours.stdout)")
        #expect(ours.stdout.contains(" 7  \(open.example) [open]"), "\(ours.stdout)")
        let theirs = runTool(["ip", "netns", "exec", lab.namespace, "traceroute", "-6", "-T", "-p", "443", "-n", "-q", "1",
            "-w", "1", "--sport=41234", open.example], timeout: 60)
        #expect(theirs.status == 0, "\(theirs.stderr)")
        func hopAddresses(_ text: String) -> [String] {
            text.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 2, Int(fields[0]) != nil else { return nil }
                return String(fields[1])
            }
        }
        // The same source port: the same ECMP branch at TTL 4.
        #expect(hopAddresses(ours.stdout) == hopAddresses(theirs.stdout), "ours:\n\(ours.stdout)\ntheirs:\n\(theirs.stdout)")
        #expect(hopAddresses(ours.stdout).count == open.destination_ttl)
    }

    @Test("ICMPv6 rate limits on: reach, state and destination TTL exact over IPv6, silence marked")
    func rateLimited() throws {
        let lab = try Lab.get()
        let list = targets6("mixed", 100)
        let r = try withRateLimits {
            runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443,25", "--format", "json",
                "-w", "1", "-m", "12", "--gap", "3"], stdin: list, timeout: 180)
        }
        #expect(r.status == 0, "\(r.stderr)")
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 200)
        var wrong: [String] = []
        var marked = 0
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else { continue }
            let p = problemsUnderRateLimits(trace, kind)
            if !p.isEmpty { wrong.append("\(trace.target):\(trace.port) (\(kind.kind)): \(p)") }
            marked += trace.hops.count(where: { $0.markedRateLimited || $0.markedLikely })
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong traces, first: \(wrong.prefix(5))")
        #expect(marked > 50, "the limits bit: only \(marked) hops marked")
    }

    @Test("Forged ICMPv6 time exceeded and SYN-ACKs, from a router that knows the ports, are rejected")
    func forgedRepliesAreRejected() throws {
        let lab = try Lab.get()
        let hole = try #require(lab.truth.kind(named: "blackhole").overIPv6)
        let sport = "47300"
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("ft-forge6-\(UUID().uuidString)")
        let errURL = outURL.appendingPathExtension("err")
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let process = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--format", "json",
            "--summary", "-w", "2", "-m", "10", "--sport", sport, hole.example, "443"],
            stdoutPath: outURL.path, stderrPath: errURL.path))
        usleep(300_000)
        let prefix = String(lab.namespace.dropLast("-vantage".count))
        let forge = runTool(["ip", "netns", "exec", "\(prefix)-r1", "python3", "-c", forgeICMPv6,
            hole.example, lab.truth.vantage6, String(hole.hops[0][0]), sport, "60"], timeout: 30)
        #expect(forge.status == 0, "forger: \(forge.stderr)")
        #expect(process.wait(timeout: 60) == 1)  // not reached: nothing forged counts
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        let trace = try #require(parseTraces(out).first, "\(out) \(err)")
        #expect(trace.state == "filtered" && !trace.reached, "a forged SYN-ACK must not open the port")
        #expect(problems(trace, hole, probes: 3).isEmpty, "\(problems(trace, hole, probes: 3))")
        // Past the hole nothing answers: a forged time exceeded accepted there would show an address.
        #expect(trace.hops.dropFirst(hole.hops.count).allSatisfy { $0.addr == nil }, "\(out)")
        let rejected = err.split(separator: ",").first { $0.contains("rejected") }
            .flatMap { Int($0.split(separator: " ").first ?? "") }
        #expect((rejected ?? 0) >= 120, "\(err)")
    }

    @Test("-4 and -6 pick the family: targets of the other are skipped with their line, names resolve to it")
    func familyOptions() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open4 = lab.truth.kind(named: "open").example
        let open6 = try #require(lab.truth.kind(named: "open").overIPv6).example
        scratch.write("list", "\(open4)\n\(open6)\n")
        let only6 = runTool([fasttraceBinary, "--netns", lab.namespace, "-6", "--targets", scratch.file("list"), "-p", "443",
            "--format", "json", "-n", "-q", "1", "-w", "1"], timeout: 60)
        #expect(only6.status == 3, "a line skipped: \(only6.stderr)")
        #expect(parseTraces(only6.stdout).map(\.target) == [open6])
        #expect(only6.stderr.hasPrefix("fasttrace: \(scratch.file("list")):1: \(open4): an IPv4 address, and -6 traces IPv6 only (skipped)"),
            "\(only6.stderr)")
        let only4 = runTool([fasttraceBinary, "--netns", lab.namespace, "-4", "--targets", scratch.file("list"), "-p", "443",
            "--format", "json", "-n", "-q", "1", "-w", "1"], timeout: 60)
        #expect(only4.status == 3 && parseTraces(only4.stdout).map(\.target) == [open4], "\(only4.stderr)")
        #expect(only4.stderr.hasPrefix("fasttrace: \(scratch.file("list")):2: \(open6): an IPv6 address, and -4 traces IPv4 only (skipped)"),
            "\(only4.stderr)")
        // A literal of the other family on the command line: one line, exit 2, nothing sent.
        let literal = runTool([fasttraceBinary, "--netns", lab.namespace, "-4", open6, "443"], timeout: 30)
        #expect(literal.status == 2 && literal.stdout.isEmpty
            && literal.stderr == "fasttrace: \(open6): an IPv6 address, and -4 traces IPv4 only\n", "\(literal.stderr)")
        // Names from a private /etc/hosts (only this process sees it): a name with both families resolves
        // to the one -4 or -6 asks for, an AAAA-only name to its IPv6 address; IPv6 hops get their names.
        let r1 = try #require(lab.truth.kind(named: "open").overIPv6).hops[0][0]
        scratch.write("hosts", "\(open4) web.lab.test\n\(open6) web.lab.test\n\(open6) v6only.lab.test\n\(r1) r1.lab.test\n")
        scratch.write("nsswitch.conf", "hosts: files\n")
        let binds = [(scratch.file("hosts"), "/etc/hosts"), (scratch.file("nsswitch.conf"), "/etc/nsswitch.conf")]
        for (flag, want) in [("-6", open6), ("-4", open4)] {
            let named = runWithPrivateFiles(binds, [fasttraceBinary, "--netns", lab.namespace, flag, "--format", "json",
                "-q", "1", "-w", "1", "web.lab.test", "443"])
            let object = try #require(traceObjects(named.stdout).first, "\(flag): \(named.stderr)")
            #expect(object["target"] as? String == want && object["name"] as? String == "web.lab.test", "\(object)")
        }
        let v6only = runWithPrivateFiles(binds, [fasttraceBinary, "--netns", lab.namespace, "--format", "json",
            "-q", "1", "-w", "1", "v6only.lab.test", "443"])
        let object = try #require(traceObjects(v6only.stdout).first, "\(v6only.stderr)")
        #expect(object["target"] as? String == open6 && object["family"] as? String == "ipv6", "\(object)")
        let firstHop = (object["hops"] as? [[String: Any]])?.first
        #expect(firstHop?["addr"] as? String == r1 && firstHop?["name"] as? String == "r1.lab.test", "\(firstHop ?? [:])")
        let v4only = runWithPrivateFiles(binds, [fasttraceBinary, "--netns", lab.namespace, "-4", "-q", "1", "-w", "1",
            "v6only.lab.test", "443"])
        #expect(v4only.status == 2 && v4only.stderr.hasPrefix("fasttrace: cannot resolve 'v6only.lab.test' (-4): "),
            "\(v4only.stderr)")

        // -s of one family refuses targets of the other in one line.
        let mixed = runTool([fasttraceBinary, "--netns", lab.namespace, "-s", lab.truth.vantage.address, "-n", "-q", "1",
            "-w", "1", open6, "443"], timeout: 60)
        #expect(mixed.status == 2 && mixed.stderr == "fasttrace: \(open6): an IPv6 address, and -s \(lab.truth.vantage.address) is not\n",
            "\(mixed.stderr)")
    }
}

extension LabTruth {
    /// The vantage point's IPv6 address (the lab's link 1, ::2).
    var vantage6: String { "2001:db8:0:1::2" }
}

/// A python3 program (argv: TARGET VANTAGE ROUTER SPORT N) sending, from the router it runs on, N
/// ICMPv6 time exceeded messages to VANTAGE quoting TCP SYNs from VANTAGE:SPORT to TARGET:443 with made-up
/// sequence numbers, and N SYN-ACKs spoofed from TARGET:443 to VANTAGE:SPORT with made-up
/// acknowledgements, 2 ms apart.
let forgeICMPv6 = """
    import random, socket, struct, sys, time
    target, vantage, router, sport, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    def csum(b):
        if len(b) % 2: b += b"\\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        s = (s >> 16) + (s & 0xffff); s += s >> 16
        return ~s & 0xffff
    a = lambda x: socket.inet_pton(socket.AF_INET6, x)
    raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    def ip6(src, dst, nh, payload, hops=64):
        return struct.pack("!IHBB", 6 << 28, len(payload), nh, hops) + a(src) + a(dst) + payload
    for i in range(n):
        seq = random.getrandbits(32)
        tcp = struct.pack("!HHIIBBHHH", sport, 443, seq, 0, 0x50, 0x02, 5840, 0, 0)
        quote = ip6(vantage, target, 6, tcp, hops=1)
        icmp = struct.pack("!BBHI", 3, 0, 0, 0) + quote
        pseudo = a(router) + a(vantage) + struct.pack("!I3xB", len(icmp), 58)
        icmp = icmp[:2] + struct.pack("!H", csum(pseudo + icmp)) + icmp[4:]
        raw.sendto(ip6(router, vantage, 58, icmp), (vantage, 0))
        synack = struct.pack("!HHIIBBHHH", 443, sport, random.getrandbits(32), random.getrandbits(32), 0x50, 0x12, 65535, 0, 0)
        pseudo = a(target) + a(vantage) + struct.pack("!I3xB", len(synack), 6)
        synack = synack[:16] + struct.pack("!H", csum(pseudo + synack)) + synack[18:]
        raw.sendto(ip6(target, vantage, 6, synack), (vantage, 0))
        time.sleep(0.002)
    """
