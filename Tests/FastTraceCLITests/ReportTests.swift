// The rounds report (-c N): its JSON against docs/report.schema.json (the keys the writer's source has
// are exactly the schema's, reports with every kind of hop validate with Python's jsonschema, a key the
// schema lacks fails), the README names the schema's keys, and the text table's columns and marks.

import FastTraceCore
import FastTraceStats
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

private let vantageAddress = IPv4Address(192, 0, 2, 1)
private let reportTarget = IPv4Address(198, 51, 100, 7)
private func hopAddress(_ last: UInt8) -> IPv4Address { IPv4Address(198, 18, 0, last) }

/// A round: routers 1, 5, `third`, 13 then the destination; `lost` TTLs silent (rate-limited when `limited`).
private func reportRound(third: UInt8 = 9, lost: Set<UInt8> = [], limited: Set<UInt8> = [], rtt: UInt32 = 100,
    interrupted: Bool = false, method: ProbeMethod = .tcp(.syn), mpls: MPLSStack? = nil) -> TraceResult
{
    let routers = [hopAddress(1), hopAddress(5), hopAddress(third), hopAddress(13)]
    var hops: [HopResult] = []
    for ttl in UInt8(1)...5 {
        if interrupted && ttl == 5 {
            hops.append(HopResult(ttl: ttl, probes: [ProbeResult(silence: .interrupted)]))
            continue
        }
        if lost.contains(ttl) {
            hops.append(HopResult(ttl: ttl, probes: [ProbeResult(silence: limited.contains(ttl) ? .rateLimited : .timedOut)]))
            continue
        }
        let isDestination = ttl == 5
        hops.append(HopResult(ttl: ttl, probes: [ProbeResult(responder: isDestination ? reportTarget : routers[Int(ttl) - 1],
            rttMicros: rtt * UInt32(ttl), outcome: isDestination ? (method == .icmpEcho ? .echoReply : .synAck)
                : .timeExceeded)]))
        // An LSR at hop 3 reports its label stack (RFC 4950).
        if ttl == 3 { hops[hops.count - 1].probes[0].mpls = mpls }
    }
    let reached = !interrupted && !lost.contains(5)
    return TraceResult(request: TraceRequest(index: 0, destination: reportTarget, port: 443, source: vantageAddress,
        name: "svc.example"), hops: hops, reached: reached,
        state: interrupted ? .unknown : reached ? (method == .icmpEcho ? .reachable : .open) : .filtered,
        stopReason: interrupted ? .interrupted : reached ? .destination : .maxTTL, sourcePort: 40000, probesSent: 5,
        method: method)
}

/// A three-entry stack: label 24001 (TC 0, TTL 1), label 16 (bottom, TTL 1), one more not kept.
let reportMPLS = MPLSStack(depth: 3, top: 24001 << 12 | 1, second: 16 << 12 | 1 << 8 | 1)

/// Reports that between them write every key: loss starting and rising, a limited hop, two paths, a silent
/// hop, names, an interrupted round, a never-answering target.
private func reportFixtures() -> [(RoundStats, Int, HopAnnotator, UInt64?)] {
    var lossy = RoundStats(request: reportRound().request, method: .tcp(.syn))
    for i in 0..<60 {
        // Path loss from hop 3 on (a third of the rounds); hop 2's router drops nine answers in ten (its rate
        // limit); the route changes after round 30 (hop 3 is another router).
        var lost: Set<UInt8> = i % 3 == 0 ? [3, 4, 5] : []
        if i % 10 != 0 { lost.insert(2) }
        lossy.add(reportRound(third: i < 30 ? 9 : 17, lost: lost, limited: [2], rtt: 100 + UInt32(i % 4) * 3000))
    }
    lossy.add(reportRound(interrupted: true))
    var silent = RoundStats(request: reportRound().request, method: .tcp(.ack))
    for _ in 0..<3 { silent.add(reportRound(lost: [1, 2, 3, 4, 5])) }
    var one = RoundStats(request: reportRound().request, method: .tcp(.synECN))
    one.add(reportRound(mpls: reportMPLS))
    let named = HopAnnotator(showsNames: true, asnTable: nil, v4Names: [(hopAddress(1), "gw.example")])
    // ICMP echo: no port (the key is left out), state reachable.
    var echo = RoundStats(request: reportRound().request, method: .icmpEcho)
    for _ in 0..<2 { echo.add(reportRound(method: .icmpEcho)) }
    return [(lossy, 100, named, 1_796_603_462_123_456_789), (silent, 3, .plain, nil), (one, 1, .plain, 1),
        (echo, 2, .plain, 2)]
}

/// Every property name the schema defines, at every level.
private func allSchemaKeys(_ schema: Any) -> Set<String> {
    var keys: Set<String> = []
    if let object = schema as? [String: Any] {
        if let properties = object["properties"] as? [String: Any] { keys.formUnion(properties.keys) }
        for value in object.values { keys.formUnion(allSchemaKeys(value)) }
    } else if let array = schema as? [Any] {
        for value in array { keys.formUnion(allSchemaKeys(value)) }
    }
    return keys
}

/// Every key in a JSON value, at every level.
private func allKeys(_ value: Any) -> Set<String> {
    var keys: Set<String> = []
    if let object = value as? [String: Any] {
        keys.formUnion(object.keys)
        for v in object.values { keys.formUnion(allKeys(v)) }
    } else if let array = value as? [Any] {
        for v in array { keys.formUnion(allKeys(v)) }
    }
    return keys
}

private let reportSchemaPath = repositoryRoot.appendingPathComponent("docs/report.schema.json").path

@Suite struct ReportTests {
    @Test("Every key the report writer's source writes is in docs/report.schema.json, and the schema has no other")
    func sourceKeysAreTheSchemasKeys() throws {
        let source = try String(contentsOf: repositoryRoot.appendingPathComponent("Sources/fasttrace/Report.swift"),
            encoding: .utf8)
        let start = try #require(source.range(of: "enum ReportJSON"))
        var written: Set<String> = []
        for match in source[start.lowerBound...].matches(of: /\\"([a-z0-9_]+)\\":/) { written.insert(String(match.1)) }
        let schema = allSchemaKeys(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportSchemaPath))))
        #expect(written.count > 40)
        #expect(written == schema, "not in the schema: \(written.subtracting(schema).sorted()); never written: \(schema.subtracting(written).sorted())")
    }

    @Test("Reports with every kind of hop write every schema key and validate with jsonschema; an extra key fails")
    func reportsValidate() throws {
        let schema = allSchemaKeys(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportSchemaPath))))
        var lines: [String] = []
        var seen: Set<String> = []
        for (i, (stats, requested, annotator, start)) in reportFixtures().enumerated() {
            // One of them from a vantage given --shard 2/3.
            let line = ReportJSON.line(stats, requested: requested, start: start, annotator,
                shard: i == 1 ? Shard(index: 2, count: 3) : nil)
            lines.append(line)
            seen.formUnion(allKeys(try JSONSerialization.jsonObject(with: Data(line.utf8))))
        }
        #expect(seen == schema, "never written by the fixtures: \(schema.subtracting(seen).sorted())")
        let output = try runTool(["python3", "-c", schemaValidator, reportSchemaPath], input: lines.joined(separator: "\n") + "\n")
        #expect(output.status == 0 && output.stdout == "valid 4\n", "\(output.stdout)\(output.stderr)")
        let extra = lines[0].replacingOccurrences(of: "{\"schema\":2,", with: "{\"schema\":2,\"extra\":0,")
        let refused = try runTool(["python3", "-c", schemaValidator, reportSchemaPath], input: extra + "\n")
        #expect(refused.status == 1 && refused.stdout.contains("extra"))
    }

    @Test("The JSON says what the rounds showed: loss from hop 3, hop 2 limited, two paths, interrupted")
    func reportContent() throws {
        let (stats, requested, annotator, start) = reportFixtures()[0]
        let object = try #require(try JSONSerialization.jsonObject(
            with: Data(ReportJSON.line(stats, requested: requested, start: start, annotator).utf8)) as? [String: Any])
        #expect(object["rounds"] as? Int == 61 && object["rounds_requested"] as? Int == 100)
        #expect(object["interrupted"] as? Bool == true)
        #expect(object["name"] as? String == "svc.example")
        let loss = try #require(object["loss"] as? [String: Any])
        // Hop 2's own loss (90 %) hides whether the path loss starts there or at hop 3: both are said.
        #expect(loss["start_ttl"] as? Int == 2 && loss["start_ttl_latest"] as? Int == 3, "\(loss)")
        #expect(loss["limited_ttls"] as? [Int] == [2])
        let hops = try #require(object["hops"] as? [[String: Any]])
        #expect(hops[1]["mark"] as? String == "limited" && hops[1]["rate_limit_caught"] as? Bool == true)
        #expect(hops[0]["name"] as? String == "gw.example")
        #expect(hops[4]["in_flight"] as? Int == 1)
        #expect((hops[2]["responders"] as? [[String: Any]])?.count == 2)
        #expect((object["paths"] as? [[String: Any]])?.count == 2)
        let latency = try #require(object["latency"] as? [String: Any])
        #expect(latency["note"] as? String != nil)
    }

    @Test("ICMP echo: the report names no port, and its state is reachable")
    func echoReport() throws {
        let (stats, requested, _, _) = reportFixtures()[3]
        let object = try #require(try JSONSerialization.jsonObject(
            with: Data(ReportJSON.line(stats, requested: requested).utf8)) as? [String: Any])
        #expect(object["port"] == nil && object["tcp_flags"] == nil && object["protocol"] as? String == "icmp")
        #expect((object["states"] as? [[String: Any]])?.first?["state"] as? String == "reachable")
        #expect(ReportText.block(stats, requested: requested).hasPrefix("svc.example (198.51.100.7) (icmp): 2 rounds, reachable 2"))
    }

    @Test("Rounds that met the destination only further out: the title says how many, never a range of distances (a trial's 'destination at TTL 7-10' under loss)")
    func lateDestinationRoundsInTheTitle() throws {
        var stats = RoundStats(request: reportRound().request, method: .tcp(.syn))
        for _ in 0..<4 { stats.add(reportRound()) }
        // The probe at TTL 5 lost, the one at 6 answered by the destination.
        var late = reportRound(lost: [5])
        late.hops.append(HopResult(ttl: 6, probes: [ProbeResult(responder: reportTarget, rttMicros: 600, outcome: .synAck)]))
        late.reached = true
        late.state = .open
        late.stopReason = .destination
        stats.add(late)
        let title = ReportText.title(stats, requested: 5)
        #expect(title == "svc.example (198.51.100.7) port 443: 5 rounds, open 5, destination at TTL 5 (1 round met it first at "
            + "TTL 6: nearer probes unanswered, or a longer path)", "\(title)")
        // The path stays the one the whole rounds saw: it ends at TTL 5.
        #expect(stats.paths.count == 1 && stats.paths[0].responders.count == 5, "\(stats.paths.map(\.responders))")
    }

    @Test("The text report: title, mtr's columns, marks, and the loss, latency and path lines")
    func textReport() throws {
        let (stats, requested, _, _) = reportFixtures()[0]
        let text = ReportText.block(stats, requested: requested)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "svc.example (198.51.100.7) port 443: 61 rounds of 100 (interrupted), filtered 20, open 40, destination at TTL 5")
        #expect(lines[1].hasPrefix(" TTL  Host") && lines[1].hasSuffix("Loss%  Snt    Last     Avg    Best    Wrst   StDev     p95    Javg"))
        #expect(lines[3].contains("198.18.0.5") && lines[3].hasSuffix("limited (rate limit caught)"), "\(lines[3])")
        #expect(lines.contains { $0.hasPrefix("   5  198.51.100.7 [open]") && $0.hasSuffix("path loss") }, "\(text)")
        #expect(lines.contains { $0.hasPrefix("      198.18.0.17 (") }, "\(text)")
        #expect(lines.contains { $0.hasPrefix("Loss: ") && $0.contains("starts between hop 2 and hop 3 (too few rounds to place it exactly) and persists") }, "\(text)")
        #expect(lines.contains { $0.hasPrefix("Latency: ") })
        #expect(lines.contains { $0.hasPrefix("Paths: 2") })
        #expect(lines.contains { $0.hasPrefix("  path 2 (20 rounds, id ") }, "\(text)")
    }

    @Test("The README's rounds section names every key of the report schema and the schema file")
    func readmeNamesEveryKey() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "### Rounds and the report"))
        let after = readme[start.upperBound...]
        let end = after.range(of: "\n### ")?.lowerBound ?? after.endIndex
        let section = after[..<end]
        let schema = allSchemaKeys(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportSchemaPath))))
        var named: Set<String> = []
        for match in section.matches(of: /`([a-z0-9_]+)`/) { named.insert(String(match.1)) }
        #expect(schema.subtracting(named).isEmpty, "README lacks \(schema.subtracting(named).sorted())")
        #expect(section.contains("docs/report.schema.json"))
    }
}


@Suite struct ReportMarkTests {
    @Test("A silence only likely rate-limited is never said to be rate-limited: the lab's silent router reads `no reply (likely rate-limited)`, as a trace line's [likely rate-limited]")
    func likelyIsNotCaught() {
        let caught = HopVerdict(ttl: 3, loss: .noReply, rateLimitCaught: true, slowAnswers: false)
        var likely = HopVerdict(ttl: 7, loss: .noReply, rateLimitCaught: false, slowAnswers: false)
        likely.likelyRateLimited = true
        #expect(ReportText.markText(caught) == "no reply (rate-limited)")
        #expect(ReportText.markText(likely) == "no reply (likely rate-limited)")
        likely.loss = .uncertain
        #expect(ReportText.markText(likely) == "loss? (likely rate-limited, or loss on the path)")
        let plain = HopVerdict(ttl: 7, loss: .noReply, rateLimitCaught: false, slowAnswers: false)
        #expect(ReportText.markText(plain) == "no reply")
        // A lossless row past the destination says so.
        let past = HopVerdict(ttl: 8, loss: .none, rateLimitCaught: false, slowAnswers: false, pastDestination: true)
        #expect(ReportText.markText(past).hasPrefix("past the destination"))
    }
}
