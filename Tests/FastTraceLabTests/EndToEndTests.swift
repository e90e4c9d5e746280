// The whole tool against real kernel routers: the `fasttrace` binary runs inside the lab's vantage
// namespace (scripts/lab.sh) and every trace is compared with the ground truth the lab writes down,
// and with tcptraceroute's view of the same path. Root only; the lab is brought up here if it is not
// up already (scripts/test.sh brings it up first) and torn down at exit by whoever brought it up.

import FastTraceWire
import Foundation
import Testing

// MARK: the lab and its truth

struct LabTruth: Decodable {
    struct Vantage: Decodable {
        var namespace: String
        var interface: String
        var address: String
    }
    struct Kind: Decodable {
        var kind: String
        var prefix: String
        var example: String
        var hops: [[String]]
        var destination_ttl: Int?
        var ports: [String: String]
        /// UDP ports' states (53 DNS, 123 NTP, 33434 closed): open, closed or open|filtered.
        var udp_ports: [String: String]?
        /// What an ICMP echo finds: reachable, filtered, or unreachable (the DNAT kind).
        var icmp: String?
        var filtered_last_ttl: Int?
        /// Routers from `ttl` on quote the destination rewritten into `prefix` (same host part).
        var dnat: DNAT?
        /// The kind over IPv6: its prefix, example and routers, and the DNAT kind's NAT66.
        var ipv6: IPv6?

        /// The same kind as an IPv6 target meets it: its IPv6 prefix, example, routers and NAT66, the rest alike.
        var overIPv6: Kind? {
            guard let ipv6 else { return nil }
            var kind = self
            (kind.prefix, kind.example, kind.hops, kind.ipv6) = (ipv6.prefix, ipv6.example, ipv6.hops, nil)
            if kind.dnat != nil { kind.dnat = ipv6.dnat }
            return kind
        }
    }
    struct IPv6: Decodable {
        var prefix: String
        var example: String
        var hops: [[String]]
        /// The DNAT kind's NAT66: from `ttl` on, quotes name the destination mapped into `prefix`.
        var dnat: DNAT?
    }
    struct DNAT: Decodable {
        var ttl: Int
        var prefix: String
    }
    var vantage: Vantage
    var kinds: [Kind]
    /// Kinds reached through ECMP splits whose branches differ in length (`wide-ecmp`): no single
    /// destination TTL, so they are kept apart from `kinds` (EcmpLabTests.swift).
    var multipath_kinds: [MultipathKind]?

    func kind(named name: String) -> Kind { kinds.first { $0.kind == name }! }

    /// The kind whose prefix holds `address` (over IPv6: the kind `overIPv6`, as the lab's /48s tell).
    func kind(of address: String) -> Kind? {
        if address.contains(":") {
            return kinds.lazy.compactMap(\.overIPv6).first { k in
                address.hasPrefix(k.prefix.split(separator: "/")[0].dropLast(1))  // "2001:db8:100:" of "…::/48"
            }
        }
        guard let a = ipv4(address) else { return nil }
        return kinds.first { k in
            let parts = k.prefix.split(separator: "/")
            guard let base = ipv4(String(parts[0])), let len = Int(parts[1]) else { return false }
            let mask = IPv4Address.prefixMask(length: len)
            return a & mask == base & mask
        }
    }
}

func ipv4(_ s: String) -> UInt32? {
    let p = s.split(separator: ".").compactMap { UInt32($0) }
    guard p.count == 4, p.allSatisfy({ $0 < 256 }) else { return nil }
    return p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]
}

/// Dotted-quad text of `a`.
func ipv4String(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 0xFF).\(a >> 8 & 0xFF).\(a & 0xFF)" }

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
let isRoot = getuid() == 0

/// The lab, up for the whole test process. If this process brought it up, it takes it down at exit.
final class Lab: Sendable {
    let truth: LabTruth
    let namespace: String

    static let shared: Result<Lab, LabError> = {
        do { return .success(try Lab()) } catch let e as LabError { return .failure(e) } catch {
            return .failure(LabError("\(error)"))
        }
    }()

    /// The lab's namespace prefix: `$FT_LAB_PREFIX` (as scripts/lab.sh reads it), default `ftlab`.
    static let prefix: String = {
        let value = ProcessInfo.processInfo.environment["FT_LAB_PREFIX"] ?? ""
        return value.isEmpty ? "ftlab" : value
    }()

    /// Where scripts/lab.sh writes the truth for `prefix` (lab-state/ for the default lab,
    /// lab-state/PREFIX/ for another).
    static var truthPath: String {
        repoRoot + (prefix == "ftlab" ? "/lab-state/truth.json" : "/lab-state/\(prefix)/truth.json")
    }

    /// The lab's namespace for `node` (`vantage`, `r1`, …).
    static func namespace(_ node: String) -> String { "\(prefix)-\(node)" }

    private init() throws {
        let truthPath = Self.truthPath
        let up = FileManager.default.fileExists(atPath: "/run/netns/\(Self.namespace("vantage"))")
            && FileManager.default.fileExists(atPath: truthPath)
        if !up {
            let r = runTool([repoRoot + "/scripts/lab.sh", "up"], timeout: 120)
            guard r.status == 0 else { throw LabError("scripts/lab.sh up failed: \(r.stderr)") }
            atexit { _ = runTool([repoRoot + "/scripts/lab.sh", "down"], timeout: 120) }
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: truthPath))
        truth = try JSONDecoder().decode(LabTruth.self, from: data)
        namespace = truth.vantage.namespace
    }

    static func get() throws -> Lab { try shared.get() }
}

/// Path of the fasttrace binary: $FASTTRACE_BIN, else next to this test bundle.
let fasttraceBinary: String = {
    if let p = ProcessInfo.processInfo.environment["FASTTRACE_BIN"] { return p }
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [here, here.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("fasttrace").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return repoRoot + "/.build/debug/fasttrace"
}()

// MARK: checking a trace against the truth

/// A trace as fasttrace's JSON line describes it.
struct JSONTrace {
    struct Hop {
        var ttl: Int
        var addr: String?
        var rtts: [Double?]
        var kind: String
        var addrs: [String]?
        var dnat: String?
        /// On an answered hop: how many of its probes went unanswered by a router caught rate-limiting
        /// (`rate_limited`), or likely so (`likely_rate_limited`).
        var rateLimited = 0
        var likelyRateLimited = 0

        /// Marked `[rate-limited]` in text, as the summary counts it.
        var markedRateLimited: Bool { kind == "rate-limited" || rateLimited > 0 }
        /// Marked `[likely rate-limited]` in text.
        var markedLikely: Bool { !markedRateLimited && (kind == "likely-rate-limited" || likelyRateLimited > 0) }
    }
    var target: String
    var port: Int
    var reached: Bool
    /// nil when JSON says `null`: an interrupted trace the destination never answered.
    var state: String?
    var stop: String
    var hops: [Hop]
    /// `tcp` or `udp`.
    var proto: String

    init?(line: Substring) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let target = object["target"] as? String, let port = object["port"] as? Int,
            let reached = object["reached"] as? Bool, object["state"] is String || object["state"] is NSNull,
            let stop = object["stop"] as? String, let hops = object["hops"] as? [[String: Any]],
            let proto = object["protocol"] as? String, proto == "tcp" || proto == "udp"
        else { return nil }
        self.proto = proto
        self.target = target
        self.port = port
        self.reached = reached
        self.state = object["state"] as? String
        self.stop = stop
        self.hops = hops.map { h in
            Hop(ttl: h["ttl"] as? Int ?? -1, addr: h["addr"] as? String,
                rtts: (h["rtt_ms"] as? [Any] ?? []).map { $0 as? Double },
                kind: h["kind"] as? String ?? "?", addrs: h["addrs"] as? [String], dnat: h["dnat"] as? String,
                rateLimited: h["rate_limited"] as? Int ?? 0, likelyRateLimited: h["likely_rate_limited"] as? Int ?? 0)
        }
    }
}

/// `address` with its network part replaced by `prefix`'s (a one-to-one prefix NAT).
func translate(_ address: String, into prefix: String) -> String? {
    let parts = prefix.split(separator: "/")
    if address.contains(":") {
        // IPv6 (the lab's NAT66 maps /48s): the prefix's network bits, the address's host bits.
        guard let a = IPAddress(address), let base = IPAddress(String(parts[0])), let length = Int(parts[1]),
            (1...64).contains(length)
        else { return nil }
        let mask = UInt64.max << (64 - UInt64(length))
        return IPAddress(high: base.high & mask | a.high & ~mask, low: a.low).description
    }
    guard let a = ipv4(address), let base = ipv4(String(parts[0])), let length = Int(parts[1]) else { return nil }
    let mask = IPv4Address.prefixMask(length: length)
    let t = base & mask | a & ~mask
    return "\(t >> 24).\(t >> 16 & 0xFF).\(t >> 8 & 0xFF).\(t & 0xFF)"
}

func parseTraces(_ output: String) -> [JSONTrace] {
    output.split(separator: "\n").compactMap(JSONTrace.init(line:))
}

/// How `trace`'s reach, port state and destination TTL differ from the truth (empty when right).
func reachProblems(_ trace: JSONTrace, _ kind: LabTruth.Kind) -> [String] {
    var out: [String] = []
    let expected = kind.ports[String(trace.port)] ?? "closed"
    if trace.state != expected { out.append("state \(trace.state), expected \(expected)") }
    if trace.reached != (expected != "filtered") { out.append("reached \(trace.reached)") }
    if expected != "filtered" && trace.hops.count != (kind.destination_ttl ?? 0) {
        out.append("\(trace.hops.count) hops, expected \(kind.destination_ttl ?? 0)")
    }
    return out
}

/// Every way `trace` differs from what the lab's truth says (empty when it is right). `probes` is -q.
func problems(_ trace: JSONTrace, _ kind: LabTruth.Kind, probes: Int) -> [String] {
    var out = reachProblems(trace, kind)
    let expected = kind.ports[String(trace.port)] ?? "closed"
    let routerTTLs = expected == "filtered" ? (kind.filtered_last_ttl ?? 0) : (kind.destination_ttl ?? 1) - 1
    for (i, hop) in trace.hops.enumerated() {
        let ttl = i + 1
        if hop.ttl != ttl { out.append("hop \(i) has ttl \(hop.ttl)") }
        if hop.rtts.count != probes { out.append("ttl \(ttl): \(hop.rtts.count) probes") }
        if hop.addrs != nil { out.append("ttl \(ttl): several addresses \(hop.addrs!) on one 5-tuple") }
        if let dnat = kind.dnat, ttl <= routerTTLs {
            // Quotes past the NAT name the translated destination, those before it the target.
            let expectedDNAT = ttl >= dnat.ttl ? translate(trace.target, into: dnat.prefix) : nil
            if hop.dnat != expectedDNAT { out.append("ttl \(ttl): dnat \(hop.dnat ?? "none"), expected \(expectedDNAT ?? "none")") }
        } else if hop.dnat != nil {
            out.append("ttl \(ttl): dnat \(hop.dnat!) on a path without NAT")
        }
        if ttl <= routerTTLs {
            let allowed = kind.hops[i].map { $0 == "target" ? trace.target : $0 }
            if allowed.isEmpty {
                if hop.addr != nil || hop.kind != "none" { out.append("ttl \(ttl): silent router answered \(hop.addr ?? "-")") }
            } else {
                if hop.addr == nil || !allowed.contains(hop.addr!) { out.append("ttl \(ttl): \(hop.addr ?? "*"), expected one of \(allowed)") }
                if hop.kind != "time-exceeded" { out.append("ttl \(ttl): kind \(hop.kind)") }
                if hop.rtts.contains(where: { $0 == nil }) { out.append("ttl \(ttl): lost probes \(hop.rtts)") }
            }
        } else if expected == "filtered" {
            if hop.addr != nil { out.append("ttl \(ttl): answer \(hop.addr!) past the filter") }
        } else if ttl == routerTTLs + 1 {
            if hop.addr != trace.target { out.append("ttl \(ttl): destination hop from \(hop.addr ?? "*")") }
            if hop.kind != (expected == "open" ? "syn-ack" : "rst") { out.append("ttl \(ttl): kind \(hop.kind)") }
        }
    }
    if expected == "filtered" && trace.hops.count <= routerTTLs { out.append("only \(trace.hops.count) hops") }
    return out
}

// MARK: the tests

/// IDs of loaded programs named ft_reply_filter in `bpftool prog show` output.
func filterProgramIDs(_ listing: String) -> Set<Int> {
    Set(listing.split(separator: "\n").compactMap { line in
        line.contains("name ft_reply_filter") ? Int(line.split(separator: ":").first ?? "") : nil
    })
}

/// A python3 program sending N SYN-ACKs from SRC:443 to DST:DPORT with random acknowledgement numbers
/// (argv: SRC DST DPORT N), 2 ms apart; it exits when done.
let forgeSynAcks = """
    import random, socket, struct, sys, time
    src, dst, dport, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    def csum(b):
        if len(b) % 2: b += b"\\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        s = (s >> 16) + (s & 0xffff); s += s >> 16
        return ~s & 0xffff
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for i in range(n):
        tcp = struct.pack("!HHIIBBHHH", 443, dport, random.getrandbits(32), random.getrandbits(32), 0x50, 0x12, 65535, 0, 0)
        pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
        sock.sendto(ip + tcp, (dst, 0))
        time.sleep(0.002)
    """

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct EndToEndTests {
    @Test("Every target kind and port gives exactly the ground-truth hops")
    func everyKindMatchesTheTruth() throws {
        let lab = try Lab.get()
        for kind in lab.truth.kinds {
            for port in kind.ports.keys.sorted() {
                let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--format", "json", "-w", "1",
                    "-m", "12", "--gap", "3", kind.example, port])
                // A single target not reached (filtered) exits 1, as tcptraceroute does.
                let reached = kind.ports[port] != "filtered"
                #expect(r.status == (reached ? 0 : 1), "\(kind.kind):\(port): \(r.stderr)")
                let traces = parseTraces(r.stdout)
                #expect(traces.count == 1, "\(kind.kind):\(port): \(r.stdout)")
                guard let trace = traces.first else { continue }
                #expect(problems(trace, kind, probes: 3) == [], "\(kind.kind) port \(port): \(r.stdout)")
            }
        }
    }

    @Test("A 1,000-target mixed batch is right for every trace")
    func thousandTargetBatch() throws {
        let lab = try Lab.get()
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "1000"])
        #expect(list.status == 0)
        let targets = list.stdout.split(separator: "\n")
        #expect(targets.count == 1000)
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443", "--format", "json",
            "-w", "1", "-m", "12", "--gap", "3", "--rate", "20000"], stdin: list.stdout, timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 1000)
        let missing = Set(targets.map(String.init)).subtracting(traces.map(\.target))
        #expect(missing.isEmpty, "\(missing.count) targets without a trace, e.g. \(missing.prefix(5))")
        var wrong: [String] = []
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else {
                wrong.append("\(trace.target): not in any lab prefix")
                continue
            }
            let p = problems(trace, kind, probes: 3)
            if !p.isEmpty { wrong.append("\(trace.target) (\(kind.kind)): \(p)") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong traces, first: \(wrong.prefix(5))")
        // The summary line reports the run.
        #expect(r.stderr.contains("fasttrace: 1000 traces,"), "\(r.stderr)")
        #expect(r.stderr.contains(" 0 ring drops"), "\(r.stderr)")
    }

    @Test("Text output matches tcptraceroute's hops on the same 5-tuple")
    func textMatchesTcptraceroute() throws {
        let lab = try Lab.get()
        let kind = lab.truth.kind(named: "silent")
        let sport = "47123"
        let ours = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "1", "--sport", sport,
            kind.example, "443"])
        #expect(ours.status == 0, "\(ours.stderr)")
        let theirs = runTool(["ip", "netns", "exec", lab.namespace, "tcptraceroute", "-n", "-w", "1", "-p", sport,
            kind.example, "443"])
        #expect(theirs.status == 0, "tcptraceroute: \(theirs.stderr)")
        let lines = ours.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("Selected device \(lab.truth.vantage.interface), address \(lab.truth.vantage.address), port \(sport) for outgoing packets") == true, "\(ours.stdout)")
        #expect(lines.dropFirst().first == "Tracing the path to \(kind.example) on TCP port 443 (https), 30 hops max")
        func hopTable(_ text: String) -> [String] {
            text.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: " ")
                guard let ttl = fields.first, Int(ttl) != nil else { return nil }
                let address = fields.dropFirst().first { ipv4(String($0)) != nil } ?? "*"
                let mark = line.contains("[open]") ? " [open]" : line.contains("[closed]") ? " [closed]" : ""
                return "\(ttl) \(address)\(mark)"
            }
        }
        let ourHops = hopTable(ours.stdout)
        #expect(ourHops.count == kind.destination_ttl)
        #expect(ourHops == hopTable(theirs.stdout), "ours:\n\(ours.stdout)\ntcptraceroute:\n\(theirs.stdout)")
        #expect(ourHops.last == "\(kind.destination_ttl!) \(kind.example) [open]")
    }

    @Test("DNAT detection says what tcptraceroute --dnat says, at the same hop")
    func dnatMatchesTcptraceroute() throws {
        let lab = try Lab.get()
        let kind = lab.truth.kind(named: "dnat")
        let dnat = try #require(kind.dnat)
        let sport = "47321"
        let ours = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--dnat", "-w", "1", "--sport", sport,
            kind.example, "443"])
        let theirs = runTool(["ip", "netns", "exec", lab.namespace, "tcptraceroute", "-n", "--dnat", "-w", "1",
            "-p", sport, kind.example, "443"])
        #expect(ours.status == 0 && theirs.status == 0, "\(ours.stderr) \(theirs.stderr)")
        let notice = "      Detected DNAT to \(translate(kind.example, into: dnat.prefix)!)"
        func around(_ text: String) -> [String] {
            // The notice and the hop line after it, addresses only.
            let lines = text.split(separator: "\n").map(String.init)
            guard let i = lines.firstIndex(of: notice), i + 1 < lines.count else { return [] }
            let hop = lines[i + 1].split(separator: " ")
            return [notice, "\(hop[0]) \(hop[1])"]
        }
        #expect(around(ours.stdout) == [notice, "\(dnat.ttl) \(kind.hops[dnat.ttl - 1][0])"], "\(ours.stdout)")
        #expect(around(ours.stdout) == around(theirs.stdout), "ours:\n\(ours.stdout)\ntcptraceroute:\n\(theirs.stdout)")
        #expect(ours.stdout.split(separator: "\n").last?.contains("\(kind.example) [open]") == true)
    }

    @Test("DNAT over IPv6 (NAT66): the path to the NAT, the destination, and behind the NAT the translated address",
        arguments: ["-S", "-A", "-U"])
    func dnatOverIPv6(method: String) throws {
        // The methods the lab's NAT66 tracks (TCP and UDP; it leaves ICMPv6 untranslated), with the port
        // traced and the state the destination's answer gives.
        let (port, state) = method == "-U" ? ("53", "open") : ("443", method == "-A" ? "unfiltered" : "open")
        let lab = try Lab.get()
        let kind = try #require(lab.truth.kind(named: "dnat").overIPv6)
        let dnat = try #require(kind.dnat)
        let translated = try #require(translate(kind.example, into: dnat.prefix))
        let common = ["--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "-m", "12", method]
        let json = runTool([fasttraceBinary] + common + ["--format", "json", "--summary", kind.example, port])
        let text = runTool([fasttraceBinary] + common + ["--dnat", kind.example, port])
        let trace = try #require(parseTraces(json.stdout).first, "\(json.stdout) \(json.stderr)")
        // Up to the NAT (which answers from the address traced), and the destination through it.
        #expect(trace.reached && trace.state == state && trace.hops.count == kind.destination_ttl, "\(json.stdout)")
        for (i, allowed) in kind.hops.enumerated() where i + 1 < dnat.ttl {
            let hop = trace.hops[i]
            #expect(hop.addr.map { allowed.map { $0 == "target" ? kind.example : $0 }.contains($0) } == true
                && hop.dnat == nil, "ttl \(i + 1): \(hop.addr ?? "*") \(hop.dnat ?? "-")")
        }
        #expect(trace.hops.last?.addr == kind.example)
        // Behind the NAT: the router quotes the translated destination; --dnat says so before its line.
        let notice = "      Detected DNAT to \(translated)"
        let lines = text.stdout.split(separator: "\n").map(String.init)
        let hopLine = lines.firstIndex { $0.hasPrefix(" \(dnat.ttl)  ") }
        do {
            let hop = trace.hops[dnat.ttl - 1]
            #expect(hop.addr == kind.hops[dnat.ttl - 1][0] && hop.dnat == translated,
                "ttl \(dnat.ttl): \(hop.addr ?? "*") dnat \(hop.dnat ?? "-")")
            #expect(hopLine.map { $0 > 0 && lines[$0 - 1] == notice } == true, "\(text.stdout)")
            // Nothing refused as another flow's or made up; a late answer from past the destination (a
            // probe beyond it answered after the trace ended) may be counted stale.
            #expect(!json.stderr.contains("foreign") && !json.stderr.contains("forged"), "\(json.stderr)")
        }
    }

    @Test("--no-dnat-strict over IPv6: the hop behind the NAT66 is silent, the rest as without it")
    func noDNATStrictOverIPv6() throws {
        let lab = try Lab.get()
        let kind = try #require(lab.truth.kind(named: "dnat").overIPv6)
        let dnat = try #require(kind.dnat)
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-q", "1", "-w", "1", "-m", "12",
            "--no-dnat-strict", "--format", "json", "--summary", kind.example, "443"])
        let trace = try #require(parseTraces(r.stdout).first, "\(r.stdout) \(r.stderr)")
        #expect(trace.reached && trace.state == "open" && trace.hops.count == kind.destination_ttl)
        #expect(trace.hops[dnat.ttl - 1].addr == nil && trace.hops.allSatisfy { $0.dnat == nil }, "\(r.stdout)")
        #expect(trace.hops[dnat.ttl - 2].addr == kind.example && trace.hops.last?.addr == kind.example)
        #expect(r.stderr.contains(" foreign)") && !r.stderr.contains(" forged"), "\(r.stderr)")
    }

    @Test("While it runs, its ring socket is in /proc/net/packet and its socket filter is loaded")
    func ringAndFilterAreReal() throws {
        let lab = try Lab.get()
        let before = runTool(["ip", "netns", "exec", lab.namespace, "cat", "/proc/net/packet"]).stdout
            .split(separator: "\n").count
        let filterIDsBefore = filterProgramIDs(runTool(["bpftool", "prog", "show"]).stdout)
        let process = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "2", "-m", "8",
            lab.truth.kind(named: "blackhole").example, "443"]))
        usleep(800_000)
        let during = runTool(["ip", "netns", "exec", lab.namespace, "cat", "/proc/net/packet"]).stdout
        let programs = runTool(["bpftool", "prog", "show"]).stdout
        // Two sockets: the receive ring's, and the TX ring's (the lab's vantage has no output firewall, so
        // the default --send-path auto takes the ring).
        #expect(during.split(separator: "\n").count == before + 2, "\(during)")
        // Ours: the program whose descriptor this process holds (other fasttrace runs on the machine
        // may load theirs meanwhile), new since before, and listed by the kernel as the reply filter.
        let fdinfo = runTool(["sh", "-c", "cat /proc/\(process.pid)/fdinfo/* 2>/dev/null"]).stdout
        let held = Set(fdinfo.split(separator: "\n").compactMap { line -> Int? in
            line.hasPrefix("prog_id:") ? Int(line.dropFirst("prog_id:".count).trimmingCharacters(in: .whitespaces)) : nil
        })
        let ours = held.intersection(filterProgramIDs(programs)).subtracting(filterIDsBefore)
        #expect(ours.count == 1 && programs.contains("socket_filter"), "held \(held): \(programs)")
        #expect(process.wait(timeout: 60) == 1)  // a black hole: not reached
        // The kernel frees a socket filter shortly after its socket closes (RCU): allow it a moment.
        var remaining = ours
        for _ in 0..<50 where !remaining.isEmpty {
            usleep(100_000)
            remaining = ours.intersection(filterProgramIDs(runTool(["bpftool", "prog", "show"]).stdout))
        }
        #expect(remaining.isEmpty, "the filter goes away with the socket")
    }

    @Test("Forged SYN-ACKs from the traced address are rejected and counted")
    func forgedRepliesAreRejected() throws {
        let lab = try Lab.get()
        let target = lab.truth.kind(named: "blackhole").example
        let sport = "47200"
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("ft-forge-\(UUID().uuidString)")
        let errURL = outURL.appendingPathExtension("err")
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let process = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "-n", "--format", "json",
            "--summary", "-w", "2", "-m", "9", "--sport", sport, target, "443"],
            stdoutPath: outURL.path, stderrPath: errURL.path))
        usleep(300_000)
        // From the first router, spoofing the target: SYN-ACKs to our port with made-up ack numbers.
        let prefix = String(lab.namespace.dropLast("-vantage".count))
        let forge = runTool(["ip", "netns", "exec", "\(prefix)-r1", "python3", "-c", forgeSynAcks,
            target, lab.truth.vantage.address, sport, "40"], timeout: 20)
        #expect(forge.status == 0, "forger: \(forge.stderr)")
        #expect(process.wait(timeout: 60) == 1)  // not reached: the forged SYN-ACKs do not count
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        let trace = try #require(parseTraces(out).first, "\(out) \(err)")
        #expect(trace.state == "filtered" && !trace.reached, "a forged SYN-ACK must not open the port")
        // "N rejected (… forged F, stale S)": all 40 land as forged or stale.
        let rejected = err.split(separator: ",").first { $0.contains("rejected") }
            .flatMap { Int($0.split(separator: " ").first ?? "") }
        #expect((rejected ?? 0) >= 40, "\(err)")
    }

    @Test("The binary links libmnl and libbpf")
    func linksTheLibraries() {
        let ldd = runTool(["ldd", fasttraceBinary]).stdout
        #expect(ldd.contains("libmnl.so") && ldd.contains("libbpf.so"), "\(ldd)")
    }
}

@Suite(.enabled(if: isRoot, "needs root to drop privileges and to enter namespaces"))
struct CommandLineInputTests {
    func withFile(_ text: String, _ body: (String) -> Void) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ft-list-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        body(path)
    }

    @Test("A malformed target line is skipped with its file and line; the lines after it are traced too; exit 3")
    func malformedLine() throws {
        // Run in the lab, never from the root namespace: the lines around the bad one are probed.
        let lab = try Lab.get()
        withFile("198.19.0.1\n# fine\n198.19.0.300\n198.19.0.2\n") { path in
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", path, "-p", "443",
                "--format", "json", "-w", "1", "-m", "8"])
            #expect(r.status == 3, "exit \(r.status): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.first == "fasttrace: \(path):3: '198.19.0.300' is not a valid IPv4 address (line skipped)",
                "\(r.stderr)")
            #expect(lines.last?.hasPrefix("fasttrace: 2 traces,") == true && lines.last?.hasSuffix(", 1 line skipped") == true,
                "the summary: \(r.stderr)")
            #expect(parseTraces(r.stdout).map(\.target).sorted() == ["198.19.0.1", "198.19.0.2"], "\(r.stdout)")
        }
    }

    @Test(arguments: [
        (["198.19.0.1", "70000"], "fasttrace: bad port '70000': ports are 1...65535\n"),
        (["--targets", "/nonexistent/list", "-p", "443"], "fasttrace: cannot read target file '/nonexistent/list': No such file or directory\n"),
        (["-q", "9", "198.19.0.1"], "fasttrace: -q: probes per hop must be 1...8 (got 9)\n"),
        (["-m", "3", "-f", "5", "198.19.0.1"], "fasttrace: -m 3 is below -f 5\n"),
        (["--netns", "ft-no-such-namespace", "198.19.0.1"],
         "fasttrace: --netns: no network namespace named 'ft-no-such-namespace' (see `ip netns list`)\n"),
        (["198.19.0.010", "443"],
         "fasttrace: '198.19.0.010' is ambiguous: a leading zero is octal to some tools and decimal to others; write the octets without leading zeros\n"),
        (["0x0a.1.1.1", "443"],
         "fasttrace: '0x0a.1.1.1' is not a valid IPv4 address (only dotted-quad decimal is accepted)\n"),
    ])
    func badArguments(arguments: [String], message: String?) {
        let r = runTool([fasttraceBinary] + arguments)
        #expect(r.status == 2, "\(arguments): exit \(r.status)")
        if let message { #expect(r.stderr == message) } else {
            #expect(r.stderr.hasPrefix("fasttrace: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
    }

    @Test("Without privileges it says which capabilities it needs")
    func missingPrivileges() throws {
        let lab = try Lab.get()
        let r = runTool(["ip", "netns", "exec", lab.namespace, "setpriv", "--reuid=65534", "--regid=65534",
            "--clear-groups", "--inh-caps=-all", fasttraceBinary, "198.19.0.10", "443"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("CAP_NET_RAW") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }
}
