// UDP probes (`-U`) against the lab's real hosts, routers, firewall and NAT: every trace of every kind
// to DNS (53), NTP (123) and a closed port checked against the truth's `udp_ports`, the same hosts
// scanned with nmap -sU and traced with traceroute -U, and the hostile twin: the kernel's ICMP rate
// limits on, where a closed port's port unreachable is itself rate-limited, so silence must be shown
// for what it is and no state may be a wrong positive. Root and the lab (FT_LAB_PREFIX picks it).

import Foundation
import Testing

extension LabTruth.Kind {
    /// What the truth says a UDP probe to `port` finds.
    func udpState(_ port: Int) -> String { udp_ports?[String(port)] ?? "closed" }
}

/// Every way a UDP `trace` differs from the truth (empty when right), for a lab without rate limits.
func udpProblems(_ trace: JSONTrace, _ kind: LabTruth.Kind) -> [String] {
    var out: [String] = []
    let expected = kind.udpState(trace.port)
    if trace.state != expected { out.append("state \(trace.state ?? "null"), expected \(expected)") }
    let silent = expected == "open|filtered"
    if trace.reached == silent { out.append("reached \(trace.reached)") }
    let routerTTLs = silent ? (kind.filtered_last_ttl ?? kind.hops.count) : (kind.destination_ttl ?? 1) - 1
    if !silent && trace.hops.count != kind.destination_ttl { out.append("\(trace.hops.count) hops") }
    for hop in trace.hops {
        if hop.ttl <= routerTTLs {
            guard let allowed = allowedAddresses(trace, kind, ttl: hop.ttl) else { continue }
            if allowed.isEmpty {
                if hop.addr != nil { out.append("ttl \(hop.ttl): silent router answered \(hop.addr!)") }
            } else if hop.addr == nil || !allowed.contains(hop.addr!) || hop.kind != "time-exceeded" {
                out.append("ttl \(hop.ttl): \(hop.addr ?? "*") \(hop.kind), expected one of \(allowed)")
            }
        } else if silent {
            if hop.addr != nil { out.append("ttl \(hop.ttl): answer \(hop.addr!) past the filter") }
        } else if hop.ttl == routerTTLs + 1 {
            // A service's answer comes back through the NAT (from the address traced); a port unreachable
            // from behind the lab's NAT, whose ICMP is not tracked, from the host's own address.
            let host = kind.dnat.map { translate(trace.target, into: $0.prefix) } ?? trace.target
            let expectedAddress = expected == "closed" ? host : trace.target
            let expectedKind = expected == "closed" ? "port-unreachable" : "udp-reply"
            if hop.addr != expectedAddress || hop.kind != expectedKind {
                out.append("ttl \(hop.ttl): \(hop.addr ?? "*") \(hop.kind), expected \(expectedAddress) \(expectedKind)")
            }
        }
    }
    return out
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct UDPLabTests {
    @Test("-U: every kind's DNS, NTP and closed port as the truth says, routers and NAT included")
    func udpBatchMatchesTheTruth() throws {
        let lab = try Lab.get()
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "--targets", "-", "-p", "53,123,33434",
            "--format", "json", "-n", "-w", "1", "-m", "12", "--gap", "3"], stdin: everyKindList(), timeout: 240)
        #expect(r.status == 0, "\(r.stderr)")
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 600)
        var wrong: [String] = []
        var states: [String: Int] = [:]
        for trace in traces {
            states[trace.state ?? "null", default: 0] += 1
            guard let kind = lab.truth.kind(of: trace.target) else {
                wrong.append("\(trace.target): not a lab target")
                continue
            }
            for problem in udpProblems(trace, kind) { wrong.append("\(trace.target):\(trace.port) \(problem)") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(10))")
        // 112 open-kind and 16 silent-router targets and 40 behind the NAT answer on DNS and NTP; the
        // firewalled and black-holed ones say nothing.
        #expect(states["open"] == 336 && states["closed"] == 168 && states["open|filtered"] == 96, "\(states)")
        // Nothing refused: every reply was one of ours, including those from past the NAT.
        #expect(r.stderr.contains(" 0 rejected"), "\(r.stderr)")
        #expect(r.stdout.contains("\"protocol\":\"udp\"") && !r.stdout.contains("tcp_flags"))
    }

    @Test("-U agrees with nmap -sU on the open host's ports, and with traceroute -U on its path")
    func udpAgreesWithPeers() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "-n", "-q", "1", "-w", "1", "--targets", "-",
            "-p", "53,123,33434", "--format", "json"], stdin: open.example + "\n", timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        var ours: [Int: String] = [:]
        for trace in parseTraces(r.stdout) { ours[trace.port] = trace.state }
        let scan = runTool(["ip", "netns", "exec", lab.namespace, "nmap", "-n", "-Pn", "-sU", "-p", "53,123,33434",
            open.example], timeout: 120)
        #expect(scan.status == 0, "\(scan.stderr)")
        for port in [53, 123, 33434] {
            let row = scan.stdout.split(separator: "\n").first { $0.hasPrefix("\(port)/udp") }
            let nmapState = row?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
            #expect(nmapState.map(String.init) == ours[port], "\(port): nmap \(row ?? "nothing"), ours \(ours[port] ?? "-")")
        }
        let dns = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "-n", "-q", "1", "-w", "1",
            open.example, "53"], timeout: 60)
        #expect(dns.stdout.contains("on UDP port 53 (domain)"), "\(dns.stdout)")
        #expect(dns.stdout.contains(" 7  \(open.example) [open]"), "\(dns.stdout)")
        // traceroute -U to the same closed port (fixed, as ours): the same routers at the same TTLs and the
        // destination's port unreachable at the same TTL. (To 53 it never hears the destination: its
        // payload is no DNS query, and the lab's server, like many, ignores it.)
        let single = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "-n", "-q", "1", "-w", "1",
            open.example, "33434"], timeout: 60)
        #expect(single.stdout.contains(" 7  \(open.example) [closed]"), "\(single.stdout)")
        let peer = runTool(["ip", "netns", "exec", lab.namespace, "traceroute", "-U", "-p", "33434", "-n", "-q", "1",
            "-w", "1", open.example], timeout: 60)
        #expect(peer.status == 0, "\(peer.stderr)")
        func hopAddresses(_ text: String) -> [String] {
            text.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 2, Int(fields[0]) != nil else { return nil }
                return String(fields[1])
            }
        }
        // ECMP: traceroute's source port differs from ours, so TTL 4 may take the other branch.
        let ourHops = hopAddresses(single.stdout), peerHops = hopAddresses(peer.stdout)
        #expect(ourHops.count == 7 && peerHops.count == 7, "ours \(ourHops), traceroute \(peerHops)")
        for ttl in [1, 2, 3, 5, 6, 7] where ourHops.count == 7 && peerHops.count == 7 {
            #expect(ourHops[ttl - 1] == peerHops[ttl - 1], "ttl \(ttl)")
        }
    }

    @Test("--payload-hex: the bytes go out as given, a closed port still says so; a bad value is one clear line")
    func payloadHex() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "--payload-hex", "00ff10", "-n", "-q", "1",
            "-w", "1", "--gap", "2", "--targets", "-", "-p", "33434,53", "--format", "json"], stdin: open.example + "\n",
            timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        var states: [Int: String] = [:]
        for trace in parseTraces(r.stdout) { states[trace.port] = trace.state }
        // The lab's DNS server ignores three bytes that are no query: silence, open|filtered.
        #expect(states == [33434: "closed", 53: "open|filtered"], "\(states)")
        #expect(!r.stdout.contains("answer_unmatched"))
        // A DNS query of the user's own: the server answers, but nothing in the answer is fasttrace's, so
        // the trace stays open|filtered, marked answer_unmatched, and the summary counts the answers.
        let query = "12340100000100000000000007" + "6578616d706c65" + "00" + "00010001"
        let own = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "--payload-hex", query, "-n", "-q", "1",
            "-w", "1", "--gap", "2", "--targets", "-", "-p", "53", "--format", "json"], stdin: open.example + "\n",
            timeout: 60)
        #expect(own.stdout.contains("\"state\":\"open|filtered\",\"answer_unmatched\":true"), "\(own.stdout)")
        #expect(own.stderr.contains("UDP answers carrying nothing that names a probe"), "\(own.stderr)")
        let single = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "--payload-hex", query, "-n", "-q", "1",
            "-w", "1", "-m", "9", open.example, "53"], timeout: 60)
        #expect(single.stdout.contains("An answer came from \(open.example) port 53, but it names no probe"),
            "\(single.stdout)")
        for (arguments, message) in [(["--payload-hex", "0f0"], "odd number"), (["--payload-hex", "zz"], "not hex digits"),
            (["-A"], "sets TCP flags"), (["--protocol", "sctp"], "must be tcp, udp or icmp"), (["-T"], "one protocol"),
            (["-p", "http"], "no UDP service of that name"), (["--track-port"], "cannot be traced with them"),
            (["-l", "200", "--payload-hex", "00"], "the payload sets"), (["--payload-hex", "0a 0b"], "not hex digits")]
        {
            let bad = runTool([fasttraceBinary, "--netns", lab.namespace, "-U"] + arguments + [open.example], timeout: 30)
            #expect(bad.status == 2 && bad.stderr.contains(message) && bad.stderr.split(separator: "\n").count == 1,
                "\(arguments): \(bad.stderr)")
        }
    }

    @Test("An unreachable placed at a hop already printed is printed with it, so the reason a trace stopped shows")
    func placedUnreachableIsPrinted() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open")
        // r2's link toward r3 at MTU 1400: a 1500-byte probe with DF set is refused there (fragmentation
        // needed, !F) for every probe sent with TTL 3 or more, from r2, which sits at hop 2. That answer
        // often arrives after hop 2 has settled and been printed.
        let r2 = Lab.namespace("r2")
        _ = try run(["ip", "-n", r2, "link", "set", "dn", "mtu", "1400"])
        defer { _ = try? run(["ip", "-n", r2, "link", "set", "dn", "mtu", "1500"]) }
        for _ in 0..<6 {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "-F", "-l", "1500", "-q", "1", "-n",
                open.example, "33434"], timeout: 30)
            #expect(r.status == 1 && r.stderr.contains("Destination not reached"), "\(r.stderr)")
            #expect(r.stdout.contains(" 2  198.18.0.5  ") && r.stdout.contains("!F (sent with TTL 3)"), "\(r.stdout)")
        }
    }

    @Test("-U with ICMP rate limits on: no wrong state, routers right or marked, a silenced port unreachable shown for what it is")
    func udpUnderRateLimits() throws {
        let lab = try Lab.get()
        let r = try withRateLimits {
            runTool([fasttraceBinary, "--netns", lab.namespace, "-U", "--targets", "-", "-p", "53,33434", "--format",
                "json", "-n", "-w", "1", "-m", "12", "--gap", "3"], stdin: everyKindList(), timeout: 240)
        }
        #expect(r.status == 0, "\(r.stderr)")
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 400)
        var wrong: [String] = []
        var silenced = 0
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else { continue }
            let expected = kind.udpState(trace.port)
            // The hosts' port unreachables are ICMP, limited like the routers' errors (one host answers
            // for every address of its prefix, so hard): a closed port may go unheard. Then it is
            // open|filtered, and the destination's TTL must be marked as possibly rate-limited.
            if expected == "closed" && trace.state == "open|filtered" {
                silenced += 1
                let destinationHop = trace.hops.first { $0.ttl == kind.destination_ttl }
                if destinationHop?.kind != "unknown" && destinationHop?.kind != "likely-rate-limited"
                    && destinationHop?.kind != "rate-limited"
                {
                    wrong.append("\(trace.target):\(trace.port) closed port silent, ttl \(kind.destination_ttl!) "
                        + "shown as \(destinationHop?.kind ?? "absent")")
                }
                continue
            }
            if trace.state != expected { wrong.append("\(trace.target):\(trace.port) state \(trace.state ?? "null"), expected \(expected)") }
            // A port unreachable from a probe sent further out is placed where its quote says: the
            // destination's TTL is the truth's, never a later one (a new-user trial found 18 of 30 off).
            if trace.state == "open" || trace.state == "closed", trace.hops.count != kind.destination_ttl {
                wrong.append("\(trace.target):\(trace.port) \(trace.state!) at TTL \(trace.hops.count), expected \(kind.destination_ttl ?? 0)")
            }
            for hop in trace.hops where hop.ttl < (kind.destination_ttl ?? Int.max) {
                guard let allowed = allowedAddresses(trace, kind, ttl: hop.ttl), let addr = hop.addr else { continue }
                if !allowed.contains(addr) { wrong.append("\(trace.target) ttl \(hop.ttl): \(addr)") }
            }
        }
        print("rate-limited UDP run: \(silenced) closed ports silenced by the hosts' ICMP limits")
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(10))")
        // DNS answers are not ICMP: every open port is found whatever the limits.
        #expect(traces.filter { $0.port == 53 && $0.state == "open" }.count == 168)
        #expect(r.stderr.contains("rate-limited hop"), "\(r.stderr)")
    }
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct ICMPLabTests {
    @Test("-I: every kind reachable, filtered or unreachable as the truth says, routers right; the same path as traceroute -I")
    func icmpBatchMatchesTheTruth() throws {
        let lab = try Lab.get()
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-I", "--targets", "-", "--format", "json", "-n",
            "-w", "1", "-m", "12", "--gap", "3"], stdin: everyKindList(), timeout: 240)
        #expect(r.status == 0, "\(r.stderr)")
        let traces = r.stdout.split(separator: "\n").compactMap { line -> [String: Any]? in
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        #expect(traces.count == 200)
        var wrong: [String] = []
        for object in traces {
            let target = object["target"] as? String ?? "?"
            guard let kind = lab.truth.kind(of: target), let expected = kind.icmp else {
                wrong.append("\(target): no truth")
                continue
            }
            if object["protocol"] as? String != "icmp" || object["port"] != nil || object["tcp_flags"] != nil {
                wrong.append("\(target): keys \(object.keys.sorted())")
            }
            let hops = object["hops"] as? [[String: Any]] ?? []
            let state = object["state"] as? String, stop = object["stop"] as? String
            switch expected {
            case "reachable":
                if state != "reachable" || object["reached"] as? Bool != true || hops.count != kind.destination_ttl
                    || hops.last?["addr"] as? String != target || hops.last?["kind"] as? String != "echo-reply"
                {
                    wrong.append("\(target): \(state ?? "null") after \(hops.count) hops")
                }
            case "unreachable":
                // The NAT does not track ICMP: it has no route for the untranslated address and says so
                // (!N), as far as its kernel's route-error limit lets it (net.ipv4.route.error_cost, one
                // setting for every namespace, which the lab leaves alone): once that budget is spent,
                // TTL 7 is silent and must be marked as a rate limit, never a plain *.
                if stop == "unreachable" {
                    if state != "filtered" || hops.count != 7 || hops.last?["addr"] as? String != "198.18.0.61"
                        || hops.last?["code"] as? Int != 0
                    {
                        wrong.append("\(target): \(state ?? "null") at \(hops.count) \(hops.last ?? [:])")
                    }
                } else {
                    let seventh = hops.first { $0["ttl"] as? Int == 7 }
                    let mark = seventh?["kind"] as? String
                    if state != "filtered" || (mark != "rate-limited" && mark != "likely-rate-limited") {
                        wrong.append("\(target): \(state ?? "null") \(stop ?? "-"), ttl 7 \(mark ?? "absent")")
                    }
                }
            default:
                if state != "filtered" || object["reached"] as? Bool != false { wrong.append("\(target): \(state ?? "null")") }
            }
            // Routers below the destination (or the filter) as the truth has them.
            let routerTTLs = expected == "reachable" ? (kind.destination_ttl ?? 1) - 1 : min(kind.filtered_last_ttl ?? 6, 6)
            for hop in hops {
                guard let ttl = hop["ttl"] as? Int, ttl <= routerTTLs else { continue }
                let allowed = kind.hops[ttl - 1]
                let addr = hop["addr"] as? String
                if allowed.isEmpty ? addr != nil : !(addr.map(allowed.contains) ?? false) {
                    wrong.append("\(target) ttl \(ttl): \(addr ?? "*"), expected \(allowed)")
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(10))")
        #expect(r.stderr.contains(" 0 rejected"), "\(r.stderr)")
        // traceroute -I to the open host: the same routers (TTL 4 may take the other ECMP branch) and the
        // destination at the same TTL.
        let open = lab.truth.kind(named: "open")
        let ours = runTool([fasttraceBinary, "--netns", lab.namespace, "-I", "-n", "-q", "1", "-w", "1", open.example],
            timeout: 60)
        #expect(ours.stdout.contains("with ICMP echo") && ours.stdout.contains(" 7  \(open.example) [reachable]"),
            "\(ours.stdout)")
        let peer = runTool(["ip", "netns", "exec", lab.namespace, "traceroute", "-I", "-n", "-q", "1", "-w", "1",
            open.example], timeout: 60)
        let peerLines = peer.stdout.split(separator: "\n").filter { $0.first == " " }
        #expect(peerLines.count == 7 && peerLines.last?.contains(open.example) == true, "\(peer.stdout)")
        // A port makes no sense for ICMP: one clear line.
        let bad = runTool([fasttraceBinary, "--netns", lab.namespace, "-I", open.example, "443"], timeout: 30)
        #expect(bad.status == 2 && bad.stderr.contains("ICMP echo (-I) has no port"), "\(bad.stderr)")
    }

    @Test("-I with ICMP rate limits on: every reachable host reached at its TTL, every silent router hop marked")
    func icmpUnderRateLimits() throws {
        let lab = try Lab.get()
        let r = try withRateLimits {
            runTool([fasttraceBinary, "--netns", lab.namespace, "-I", "--targets", "-", "--format", "json", "-n",
                "-w", "1", "-m", "12", "--gap", "3"], stdin: everyKindList(), timeout: 240)
        }
        #expect(r.status == 0, "\(r.stderr)")
        var wrong: [String] = []
        var count = 0
        for line in r.stdout.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let target = object["target"] as? String, let kind = lab.truth.kind(of: target)
            else { continue }
            count += 1
            let hops = object["hops"] as? [[String: Any]] ?? []
            // Echo replies are not among the ICMP messages Linux limits: the destination is always heard.
            if kind.icmp == "reachable" && (object["state"] as? String != "reachable" || hops.count != kind.destination_ttl) {
                wrong.append("\(target): \(object["state"] ?? "null") after \(hops.count) hops")
            }
            if kind.icmp == "filtered" && object["state"] as? String != "filtered" { wrong.append("\(target): not filtered") }
            // As for TCP (`problemsUnderRateLimits`): a silent router's hop is marked rate-limited or likely
            // so, or, past the last TTL this trace heard anything from, `unknown` (a limit or the end).
            let deepestHeard = hops.last { $0["addr"] is String }?["ttl"] as? Int ?? 0
            for hop in hops {
                guard let ttl = hop["ttl"] as? Int, ttl <= 6 else { continue }
                let addr = hop["addr"] as? String, mark = hop["kind"] as? String
                if let addr, !kind.hops[ttl - 1].contains(addr) { wrong.append("\(target) ttl \(ttl): \(addr)") }
                if addr == nil && mark != "rate-limited" && mark != "likely-rate-limited"
                    && !(mark == "unknown" && ttl > deepestHeard)
                {
                    wrong.append("\(target) ttl \(ttl): silent router shown as \(mark ?? "-")")
                }
            }
        }
        #expect(count == 200)
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(10))")
    }
}
