// A busy host: while fasttrace traces a mixed IPv4 and IPv6 list, a lab router floods the vantage point with
// unrelated traffic of both families (scripts/lab-flood.py). The traces must still match the truth, and
// none of the flood may reach user space: the eBPF filter must drop it in the kernel. What reached user
// space is read from `--verbose`'s receive line (every packet read from the ring, the filter's own kept and
// dropped counts, and how many of those packets were replies to our probes). Root and the lab.

import Foundation
import Testing

/// What scripts/lab-flood.py says it sent.
struct FloodReport: Decodable {
    var sent: Int
    var control: Int
    var errors: Int
    var seconds: Double
    var shapes: [String: Int]
}

/// `--verbose`'s receive line, and the summary's ring drops.
struct ReceiveCounts {
    var ringPackets: Int
    var filterKept: Int
    var filterDropped: Int
    var ours: Int
    var other: Int
    var ringDrops: Int

    init?(stderr: String) {
        let pattern = /fasttrace: receive: (\d+) packets? read from the ring \(the filter kept (\d+) and dropped (\d+)\): (\d+) repl(?:y|ies) to our probes \(matched, duplicate or late\), (\d+) other/
        guard let m = stderr.firstMatch(of: pattern), let drops = stderr.firstMatch(of: /\ (\d+) ring drops?/) else { return nil }
        ringPackets = Int(m.1)!
        filterKept = Int(m.2)!
        filterDropped = Int(m.3)!
        ours = Int(m.4)!
        other = Int(m.5)!
        ringDrops = Int(drops.1)!
    }
}

/// The source port (for -I, the identifier) of every run here: the filter keeps replies to it alone, and the
/// flood's "other ports" are every other one.
let busySourcePort = 47311

/// The flood's configuration for a run of probe kind `kind` (tcp, udp, icmp): to the vantage's two
/// addresses from r1, spoofed from black-hole addresses no run traces (198.18.79.0/24, 2001:db8:400:ffff::/64,
/// so what the vantage answers dies in the hole), errors from r1 quoting other black-hole addresses.
func floodConfiguration(_ lab: Lab, kind: String, count: Int, rate: Int, control: Int = 0, iface: String) -> String {
    let config: [String: Any] = [
        "kind": kind, "sport": busySourcePort,
        "vantage4": lab.truth.vantage.address, "vantage6": lab.truth.vantage6,
        "src4": (1...250).map { "198.18.79.\($0)" }, "src6": (1...250).map { "2001:db8:400:ffff::\(String($0, radix: 16))" },
        "router4": lab.truth.kind(named: "open").hops[0][0], "router6": lab.truth.kind(named: "open").overIPv6!.hops[0][0],
        "quote4": (1...250).map { "198.18.78.\($0)" }, "quote6": (1...250).map { "2001:db8:400:fffe::\(String($0, radix: 16))" },
        "count": count, "rate": rate, "deadline": 60, "control": control, "iface": iface,
    ]
    let data = try! JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// One run of fasttrace over `list` with `method`'s options while r1 floods the vantage: the run's output,
/// the flood's report, and whether the run was still going when the flood ended (so the whole flood met
/// the filter).
func tracedUnderFlood(_ lab: Lab, method: [String], kind: String, list: String, rate: Int, floodCount: Int,
    control: Int = 0) throws -> (run: ToolResult, flood: FloodReport, outlasted: Bool)
{
    let scratch = Scratch()
    defer { scratch.cleanup() }
    scratch.write("list", list)
    let prefix = String(lab.namespace.dropLast("-vantage".count))
    let r1 = "\(prefix)-r1"
    // r1's interface toward the vantage, for the frames that are not IP.
    let route = runTool(["ip", "-n", r1, "-o", "route", "get", lab.truth.vantage.address]).stdout
    let iface = try #require(route.firstMatch(of: /\ dev (\S+)/).map { String($0.1) }, "\(route)")
    let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"),
        "--format", "json", "-n", "-q", "1", "-w", "1", "-m", "12", "--gap", "3", "--rate", String(rate),
        "--sport", String(busySourcePort), "--verbose"] + method,
        stdoutPath: scratch.file("out"), stderrPath: scratch.file("err")))
    defer { child.stop() }
    // The filter is attached once the send path is named (the transport is open).
    let deadline = Date().addingTimeInterval(20)
    while !scratch.read("err").contains("fasttrace: send path: ") && child.isRunning && Date() < deadline {
        usleep(20_000)
    }
    #expect(scratch.read("err").contains("fasttrace: send path: "), "\(scratch.read("err"))")
    let flood = runTool(["ip", "netns", "exec", r1, "python3", repoRoot + "/scripts/lab-flood.py",
        floodConfiguration(lab, kind: kind, count: floodCount, rate: 10_000, control: control, iface: iface)], timeout: 90)
    let outlasted = child.isRunning
    let status = child.wait(timeout: 240)
    let report = try #require(try? JSONDecoder().decode(FloodReport.self, from: Data(flood.stdout.utf8)),
        "flood: \(flood.status) \(flood.stdout) \(flood.stderr)")
    return (ToolResult(status: status, stdout: scratch.read("out"), stderr: scratch.read("err")), report, outlasted)
}

/// What is wrong with an ICMP echo trace (a JSON object) against the truth, for kinds without a NAT.
func echoProblems(_ object: [String: Any], _ kind: LabTruth.Kind) -> [String] {
    var out: [String] = []
    let target = object["target"] as? String ?? "?"
    let hops = object["hops"] as? [[String: Any]] ?? []
    let expected = kind.icmp ?? "?"
    if object["state"] as? String != expected { out.append("state \(object["state"] ?? "null"), expected \(expected)") }
    if expected == "reachable" {
        if hops.count != kind.destination_ttl || hops.last?["addr"] as? String != target
            || hops.last?["kind"] as? String != "echo-reply"
        {
            out.append("\(hops.count) hops, last \(hops.last ?? [:])")
        }
    }
    let routerTTLs = expected == "reachable" ? (kind.destination_ttl ?? 1) - 1 : min(kind.filtered_last_ttl ?? 6, 6)
    for hop in hops {
        guard let ttl = hop["ttl"] as? Int, ttl <= routerTTLs else { continue }
        let allowed = kind.hops[ttl - 1]
        let addr = hop["addr"] as? String
        if allowed.isEmpty ? addr != nil : !(addr.map(allowed.contains) ?? false) {
            out.append("ttl \(ttl): \(addr ?? "*"), expected \(allowed)")
        }
    }
    return out
}

/// `n` IPv4 and `n` IPv6 targets of the mixed kinds, interleaved so the families share batches and slots.
func mixedBothFamilies(_ n: Int) -> String {
    let v4 = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", String(n)]).stdout.split(separator: "\n")
    let v6 = targets6("mixed", n).split(separator: "\n")
    return zip(v4, v6).map { "\($0)\n\($1)\n" }.joined()
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct BusyHostLabTests {
    /// 50,000 flood packets per run: bounded in count (and the sender's 60 s deadline).
    static let floodCount = 50_000

    @Test("A flood of unrelated IPv4 and IPv6 traffic stays in the kernel: TCP SYN, UDP 53 and ICMP echo runs all right",
        arguments: ["tcp", "udp", "icmp"])
    func floodStaysInTheKernel(kind: String) throws {
        let lab = try Lab.get()
        let list = mixedBothFamilies(100)
        let method: [String] = switch kind {
        case "tcp": ["-p", "443"]
        case "udp": ["-U", "-p", "53"]
        default: ["-I"]
        }
        // About 1,800 probes at 100/s: the run lasts well past the flood's few seconds.
        let (r, flood, outlasted) = try tracedUnderFlood(lab, method: method, kind: kind, list: list, rate: 100,
            floodCount: Self.floodCount)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(flood.sent == Self.floodCount && flood.errors == 0, "\(flood)")
        #expect(outlasted, "the run ended before the flood did: lower --rate or the flood's size")

        // Every trace as the truth says.
        var wrong: [String] = []
        var count = 0
        if kind == "icmp" {
            for object in traceObjects(r.stdout) {
                count += 1
                let target = object["target"] as? String ?? "?"
                guard let truth = lab.truth.kind(of: target) else { wrong.append("\(target): not a lab target"); continue }
                for p in echoProblems(object, truth) { wrong.append("\(target) (\(truth.kind)) \(p)") }
            }
        } else {
            for trace in parseTraces(r.stdout) {
                count += 1
                guard let truth = lab.truth.kind(of: trace.target) else { wrong.append("\(trace.target): not a lab target"); continue }
                let p = kind == "udp" ? udpProblems(trace, truth) : problems(trace, truth, probes: 1)
                for p in p { wrong.append("\(trace.target):\(trace.port) (\(truth.kind)) \(p)") }
            }
        }
        #expect(count == 200, "\(count) traces")
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(8))")

        // What reached user space: replies to our probes, and nothing else.
        let counts = try #require(ReceiveCounts(stderr: r.stderr), "\(r.stderr)")
        #expect(counts.other == 0, "\(counts.other) packets other than replies to our probes reached user space: \(r.stderr)")
        #expect(counts.ringPackets == counts.ours + counts.other && counts.ringDrops == 0, "\(r.stderr)")
        #expect(counts.filterKept >= counts.ringPackets, "\(r.stderr)")
        // The flood met the filter: it dropped every flood packet (and the host's own outgoing packets besides).
        #expect(counts.filterDropped >= flood.sent, "the filter saw \(counts.filterDropped) of \(flood.sent)")
        #expect(r.stderr.contains(" 0 rejected"), "\(r.stderr)")
    }

    @Test("The count sees what gets through: shapes the filter keeps by design (RST, SYN-ACK, errors quoting our port) are all counted")
    func countSeesWhatGetsThrough() throws {
        // The test above asserts that 0 flood packets reached user space; this one shows that the same
        // count is not blind: 400 packets the filter passes by design (RSTs and SYN-ACKs to the run's port
        // from addresses it never traced, time exceeded quoting its port toward addresses it never
        // probed), mixed into a flood, are every one of them read from the ring and counted as other
        // traffic, none taken for a reply, and the traces stay right.
        let lab = try Lab.get()
        let (r, flood, outlasted) = try tracedUnderFlood(lab, method: ["-p", "443"], kind: "tcp",
            list: mixedBothFamilies(20), rate: 100, floodCount: 5_000, control: 400)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(outlasted && flood.control == 400 && flood.errors == 0, "\(flood)")
        let traces = parseTraces(r.stdout)
        #expect(traces.count == 40)
        var wrong: [String] = []
        for trace in traces {
            guard let truth = lab.truth.kind(of: trace.target) else { continue }
            for p in problems(trace, truth, probes: 1) { wrong.append("\(trace.target) (\(truth.kind)) \(p)") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first: \(wrong.prefix(8))")
        let counts = try #require(ReceiveCounts(stderr: r.stderr), "\(r.stderr)")
        #expect(counts.other == 400, "\(r.stderr)")
        #expect(counts.ringPackets == counts.ours + counts.other && counts.ringDrops == 0, "\(r.stderr)")
        #expect(counts.filterDropped >= flood.sent, "the filter saw \(counts.filterDropped) of \(flood.sent)")
    }
}
