// CSV output: RFC 4180 quoting of odd text, the header and column list, one row per hop with every kind
// of answer and silence, and Python's csv module reading it all back as written.

import FastTraceCore
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

let source = IPv4Address(192, 0, 2, 1)
let target = IPv4Address(198, 51, 100, 10)
func router(_ last: UInt8) -> IPv4Address { IPv4Address(198, 18, 0, last) }

func answered(_ from: IPv4Address, _ micros: UInt32, _ outcome: Response = .timeExceeded,
    dnat: IPv4Address? = nil) -> ProbeResult
{
    ProbeResult(responder: from, rttMicros: micros, outcome: outcome, translatedDestination: dnat)
}

func trace(_ hops: [HopResult], name: String? = nil, port: UInt16 = 443, destination: IPv4Address = target,
    stop: StopReason? = nil) -> TraceResult
{
    // As the engine assembles it: an interrupted trace the destination never answered has no state.
    var state = stop == .interrupted ? PortState.unknown : PortState.filtered
    for probe in hops.flatMap(\.probes) {
        if probe.outcome == .synAck { state = .open }
        if probe.outcome == .reset && (state == .filtered || state == .unknown) { state = .closed }
    }
    let reached = state == .open || state == .closed
    return TraceResult(
        request: TraceRequest(index: 0, destination: destination, port: port, source: source, name: name),
        hops: hops, reached: reached, state: state,
        stopReason: stop ?? (reached ? .destination : .gapLimit), sourcePort: 40000,
        probesSent: hops.count * 3)
}

/// A trace with every kind of hop: answered, rate-limited silence, attempts meeting different routers with
/// a silent third, a DNAT quote, an unknown silence, then the destination's SYN-ACK. Its name needs quoting.
let oddName = "web, \"edge\"\nbox"
let everyKind = trace([
    HopResult(ttl: 1, probes: [answered(router(1), 101), answered(router(1), 97), answered(router(1), 46)]),
    HopResult(ttl: 2, probes: [ProbeResult(silence: .rateLimited), .silent, ProbeResult(silence: .rateLimited)]),
    HopResult(ttl: 3, probes: [answered(router(13), 54), answered(router(17), 1200), ProbeResult(silence: .rateLimited)]),
    HopResult(ttl: 4, probes: [answered(router(65), 73, dnat: IPv4Address(198, 18, 96, 10))] + Array(repeating: answered(router(65), 75, dnat: IPv4Address(198, 18, 96, 10)), count: 2)),
    HopResult(ttl: 5, probes: Array(repeating: ProbeResult(silence: .unknown), count: 3)),
    HopResult(ttl: 6, probes: [answered(target, 75, .synAck), answered(target, 12_345, .synAck), .silent]),
], name: oddName)

/// Stopped by an administratively prohibited unreachable (code 13) at TTL 2.
let prohibited = trace([
    HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
    HopResult(ttl: 2, probes: Array(repeating: answered(router(41), 60, .unreachable(code: 13)), count: 3)),
], port: 80, stop: .unreachable)

/// Interrupted while waiting at TTL 2.
let interrupted = trace([
    HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
    HopResult(ttl: 2, probes: Array(repeating: ProbeResult(silence: .interrupted), count: 3)),
], port: 25, stop: .interrupted)

/// Interrupted before any probe went out: no hops at all.
let empty = trace([], port: 8080, stop: .interrupted)

/// The CSV for `traces` with a header, as fasttrace writes it.
func csv(_ traces: [TraceResult], probes: Int = 3) -> String {
    let formatter = CSVFormatter(probesPerHop: probes)
    var bytes: [UInt8] = []
    formatter.writeHeader(into: &bytes)
    for t in traces { formatter.write(t, into: &bytes) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Reads CSV on stdin with Python's csv module (RFC 4180 dialect: the default), checks every row has
/// the header's number of fields, and prints the rows as a JSON list of objects.
let pythonReader = """
    import csv, json, sys
    rows = list(csv.reader(sys.stdin, strict=True))
    header, body = rows[0], rows[1:]
    bad = [i for i, r in enumerate(body) if len(r) != len(header)]
    if bad: sys.exit("rows with the wrong number of fields: %r" % bad)
    print(json.dumps([dict(zip(header, r)) for r in body]))
    """

@Suite struct CSVFormatterTests {
    @Test("RFC 4180: a field with a comma, a double quote, CR or LF is quoted, quotes doubled; others as is")
    func quoting() {
        #expect(csvField("198.18.0.1") == "198.18.0.1")
        #expect(csvField("") == "")
        #expect(csvField("host name") == "host name")
        #expect(csvField("naïve.example") == "naïve.example")
        #expect(csvField("a,b") == "\"a,b\"")
        #expect(csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(csvField("\"") == "\"\"\"\"")
        #expect(csvField("line\nbreak") == "\"line\nbreak\"")
        #expect(csvField("cr\rhere") == "\"cr\rhere\"")
        #expect(csvField(oddName) == "\"web, \"\"edge\"\"\nbox\"")
        // Terminal controls other than CR and LF are written out, as in every other format.
        #expect(csvField("evil\u{1b}]0;pwned\u{07}\u{9b}2J") == "evil\\x1b]0;pwned\\x07\\u{9b}2J")
        #expect(csvField("tab\there") == "tab\there")
    }

    @Test("The header names every column once, with one RTT and one reply column per probe")
    func header() {
        let trace = ["target", "target_name", "port", "protocol", "tcp_flags", "source", "sport", "reached", "state", "stop",
            "dest_ttl", "probes_sent"]
        let hop = ["ttl", "addr", "kind", "code", "dnat", "addrs", "mpls"]
        #expect(csv([], probes: 3) == (trace + hop + ["rtt1_ms", "rtt2_ms", "rtt3_ms", "reply1", "reply2", "reply3"])
            .joined(separator: ",") + "\n")
        #expect(csv([], probes: 1) == (trace + hop + ["rtt1_ms", "reply1"]).joined(separator: ",") + "\n")
        #expect(CSVFormatter(probesPerHop: 8).columns.count == trace.count + hop.count + 16)
    }

    @Test("One row per hop, the trace's fields on each; silence kinds, codes, DNAT and several routers kept")
    func rows() {
        let lines = csv([prohibited, empty]).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 5, "header, 2 hops, 1 row for the hop-less trace, then the final newline")
        #expect(lines[1] == "198.51.100.10,,80,tcp,syn,192.0.2.1,40000,false,filtered,unreachable,,6,"
            + "1,198.18.0.1,time-exceeded,,,,,0.050,0.050,0.050,time-exceeded,time-exceeded,time-exceeded")
        #expect(lines[2] == "198.51.100.10,,80,tcp,syn,192.0.2.1,40000,false,filtered,unreachable,,6,"
            + "2,198.18.0.41,unreachable,13,,,,0.060,0.060,0.060,unreachable,unreachable,unreachable")
        #expect(lines[3] == "198.51.100.10,,8080,tcp,syn,192.0.2.1,40000,false,unknown,interrupted,,0,,,,,,,,,,,,,")
        #expect(lines[4] == "")
    }

    @Test("Python's csv module reads back every field as written, odd target name included", .enabled(if: toolPath("python3") != nil, "needs python3"))
    func pythonReadsItBack() throws {
        let text = csv([everyKind, prohibited, interrupted, empty])
        let r = try runTool(["python3", "-c", pythonReader], input: text)
        try #require(r.status == 0, "\(r.stderr)\n\(text)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: String]])
        #expect(rows.count == 6 + 2 + 2 + 1)
        let first = rows.prefix(6)
        #expect(first.allSatisfy {
            $0["target"] == "198.51.100.10" && $0["target_name"] == oddName && $0["port"] == "443"
                && $0["reached"] == "true" && $0["state"] == "open" && $0["stop"] == "destination"
                && $0["dest_ttl"] == "6" && $0["sport"] == "40000" && $0["source"] == "192.0.2.1"
        })
        #expect(first.map { $0["ttl"]! } == ["1", "2", "3", "4", "5", "6"])
        #expect(first.map { $0["addr"]! } == ["198.18.0.1", "", "198.18.0.13", "198.18.0.65", "", "198.51.100.10"])
        #expect(first.map { $0["kind"]! } == ["time-exceeded", "rate-limited", "time-exceeded", "time-exceeded", "unknown", "syn-ack"])
        #expect(first.map { $0["addrs"]! } == ["", "", "198.18.0.13 198.18.0.17", "", "", ""])
        #expect(first.map { $0["dnat"]! } == ["", "", "", "198.18.96.10", "", ""])
        #expect(first.map { [$0["rtt1_ms"]!, $0["rtt2_ms"]!, $0["rtt3_ms"]!] } == [
            ["0.101", "0.097", "0.046"], ["", "", ""], ["0.054", "1.200", ""], ["0.073", "0.075", "0.075"],
            ["", "", ""], ["0.075", "12.345", ""],
        ])
        #expect(first.map { [$0["reply1"]!, $0["reply2"]!, $0["reply3"]!] } == [
            ["time-exceeded", "time-exceeded", "time-exceeded"], ["rate-limited", "none", "rate-limited"],
            ["time-exceeded", "time-exceeded", "rate-limited"], ["time-exceeded", "time-exceeded", "time-exceeded"],
            ["unknown", "unknown", "unknown"], ["syn-ack", "syn-ack", "none"],
        ])
        // Interrupted at TTL 2: the probes not waited for say so.
        #expect(rows[8]["stop"] == "interrupted" && rows[9]["kind"] == "interrupted")
        #expect([rows[9]["reply1"], rows[9]["reply2"], rows[9]["reply3"]] == ["interrupted", "interrupted", "interrupted"])
        // The trace with no hops still has its row, hop fields empty.
        #expect(rows[10]["port"] == "8080" && rows[10]["ttl"] == "" && rows[10]["stop"] == "interrupted")
    }
}
