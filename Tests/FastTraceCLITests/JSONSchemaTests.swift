// The published JSON Schema (docs/trace.schema.json) against the JSON formatter (issue 13, item 17): the
// keys the formatter can write are exactly the schema's, at each level, and the README's JSON table
// names every one; traces with every kind of hop and key validate with Python's jsonschema; `start` is
// RFC 3339 UTC with microseconds; `dest_ttl` is CSV's.

import FastTraceCore
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

/// The repository's root (this file is Tests/FastTraceCLITests/JSONSchemaTests.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The schema file, parsed.
func loadSchema() throws -> [String: Any] {
    let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("docs/trace.schema.json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// The keys the schema allows on a trace object, on a hop object and on a hop's MPLS label entry.
func schemaKeys(_ schema: [String: Any]) throws -> (trace: Set<String>, hop: Set<String>, mpls: Set<String>) {
    let traceProperties = try #require(schema["properties"] as? [String: Any])
    let defs = try #require(schema["$defs"] as? [String: Any])
    let hop = try #require(defs["hop"] as? [String: Any])
    let hopProperties = try #require(hop["properties"] as? [String: Any])
    let mpls = try #require(hopProperties["mpls"] as? [String: Any])
    let entry = try #require((mpls["items"] as? [String: Any])?["properties"] as? [String: Any])
    return (Set(traceProperties.keys), Set(hopProperties.keys), Set(entry.keys))
}

/// Traces that between them make the formatter write every key it has: a target name, every hop kind,
/// `rate_limited`, `likely_rate_limited`, `sent_ttl`, `code`, `dnat`, `addrs`, names and AS numbers, a
/// null state and a null start; each with the annotator and start it is written with.
let schemaFixtures: [(TraceResult, HopAnnotator, UInt64?)] = [
    (everyKind, .plain, 1_796_603_462_123_456_789),
    (inferredTrace, .plain, 1_796_603_463_000_001_000),
    (prohibited, HopAnnotator(showsNames: true, asnTable: nil, names: []), 1),
    (interrupted, .plain, 1_796_603_464_999_999_999),
    (empty, .plain, nil),
    (annotated, annotator, 951_782_400_000_000_000),
    (udpClosed, .plain, 1_796_603_465_000_000_000),
    (udpOpen, .plain, 1_796_603_466_000_000_000),
    (udpSilent, .plain, 1_796_603_467_000_000_000),
    (icmpReached, .plain, 1_796_603_468_000_000_000),
    (mplsTrace, .plain, 1_796_603_469_000_000_000),
    (udpUnmatched, .plain, 1_796_603_470_000_000_000),
]

/// A UDP trace whose port answered with nothing naming its probe: open, TTL unknown.
let udpUnmatched: TraceResult = {
    var t = udp(trace([
        HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
        HopResult(ttl: 2, probes: [.silent, .silent, .silent]),
    ], port: 7), state: .openFiltered)
    t.answerUnmatched = true
    t.stopReason = .gapLimit
    return t
}()

/// A trace through an MPLS network: one hop's stack of three entries (two kept), one of one.
let mplsTrace: TraceResult = {
    var three = answered(router(5), 80)
    three.mpls = MPLSStack(depth: 3, top: MPLSLabelEntry(label: 24001, tc: 0, bottom: false, ttl: 1).raw,
        second: MPLSLabelEntry(label: 16, tc: 5, bottom: false, ttl: 1).raw)
    var one = answered(router(9), 90)
    one.mpls = MPLSStack(depth: 1, top: MPLSLabelEntry(label: 1048575, tc: 7, bottom: true, ttl: 255).raw)
    return trace([
        HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
        HopResult(ttl: 2, probes: [three, three, .silent]),
        HopResult(ttl: 3, probes: [one, one, one]),
        HopResult(ttl: 4, probes: Array(repeating: answered(target, 100, .synAck), count: 3)),
    ])
}()

/// An ICMP echo trace (`-I`): no port, no tcp_flags; the destination's echo reply.
let icmpReached: TraceResult = {
    var t = trace([
        HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
        HopResult(ttl: 2, probes: Array(repeating: answered(target, 70, .echoReply), count: 3)),
    ], port: 0)
    t.method = .icmpEcho
    t.state = .reachable
    t.reached = true
    t.stopReason = .destination
    return t
}()

/// UDP traces (`-U`): a closed port (the destination's port unreachable), an open one (the service's
/// answer) and one nothing answered (open|filtered); no `tcp_flags`.
let udpClosed = udp(trace([
    HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
    HopResult(ttl: 2, probes: Array(repeating: answered(target, 60, .portUnreachable), count: 3)),
], port: 33434), state: .closed)
let udpOpen = udp(trace([
    HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
    HopResult(ttl: 2, probes: [answered(target, 600, .udpReply), .silent, answered(target, 300, .udpReply)]),
], port: 53), state: .open)
let udpSilent = udp(trace([
    HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
    HopResult(ttl: 2, probes: [.silent, .silent, .silent]),
], port: 123), state: .openFiltered)

func udp(_ t: TraceResult, state: PortState) -> TraceResult {
    var t = t
    t.method = .udp(.byPort)
    t.state = state
    t.reached = state != .openFiltered
    t.stopReason = t.reached ? .destination : .gapLimit
    return t
}

@Suite struct JSONSchemaTests {
    @Test("Every key the JSON formatter's source writes is in the schema, and the schema has no other")
    func sourceKeysAreTheSchemasKeys() throws {
        let source = try String(contentsOf: repositoryRoot.appendingPathComponent("Sources/fasttrace/Output.swift"),
            encoding: .utf8)
        let start = try #require(source.range(of: "enum JSONFormatter"))
        let end = try #require(source.range(of: "static func quote", range: start.upperBound..<source.endIndex))
        let body = source[start.lowerBound..<end.lowerBound]
        // A key in the source is a literal `\"key\":`. The target's keys, `start` and the MPLS stack are
        // written by the helpers a report shares (the end of Report.swift, from `appendShard` on).
        let report = try String(contentsOf: repositoryRoot.appendingPathComponent("Sources/fasttrace/Report.swift"),
            encoding: .utf8)
        let mpls = try #require(report.range(of: "mutating func appendShard"))
        var written: Set<String> = []
        for match in body.matches(of: /\\"([a-z_]+)\\":/) { written.insert(String(match.1)) }
        for match in report[mpls.lowerBound...].matches(of: /\\"([a-z_]+)\\":/) { written.insert(String(match.1)) }
        let keys = try schemaKeys(try loadSchema())
        #expect(written.count > 20)
        let schema = keys.trace.union(keys.hop).union(keys.mpls)
        let missing = written.subtracting(schema).sorted(), unused = schema.subtracting(written).sorted()
        #expect(written == schema, "in the formatter, not the schema: \(missing); in the schema, not written: \(unused)")
    }

    @Test("Traces with every key: the keys written at each level are exactly the schema's; required ones always there")
    func writtenKeysAreTheSchemasKeys() throws {
        let schema = try loadSchema()
        let keys = try schemaKeys(schema)
        let required = Set(try #require(schema["required"] as? [String]))
        var traceKeys: Set<String> = []
        var hopKeys: Set<String> = []
        for (i, (result, annotator, start)) in schemaFixtures.enumerated() {
            // One of them from a vantage given --vantage lab-a and --shard 2/3.
            let line = JSONFormatter.line(result, start: start, annotator, shard: i == 0 ? Shard(index: 2, count: 3) : nil,
                vantage: i == 0 ? "lab-a" : nil)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(required.isSubset(of: Set(object.keys)), "missing \(required.subtracting(object.keys))")
            #expect(object["schema"] as? Int == Int(JSONFormatter.schemaVersion))
            traceKeys.formUnion(object.keys)
            for hop in try #require(object["hops"] as? [[String: Any]]) { hopKeys.formUnion(hop.keys) }
        }
        #expect(traceKeys == keys.trace, "written \(traceKeys.sorted()), schema \(keys.trace.sorted())")
        #expect(hopKeys == keys.hop, "written \(hopKeys.sorted()), schema \(keys.hop.sorted())")
        let version = try #require((schema["properties"] as? [String: Any])?["schema"] as? [String: Any])
        #expect(version["const"] as? Int == Int(JSONFormatter.schemaVersion))
    }

    @Test("Those traces validate against the schema with Python's jsonschema (Draft 2020-12)")
    func validatesWithJSONSchema() throws {
        let lines = schemaFixtures.enumerated().map {
            JSONFormatter.line($0.element.0, start: $0.element.2, $0.element.1,
                shard: $0.offset == 0 ? Shard(index: 2, count: 3) : nil, vantage: $0.offset == 0 ? "lab-a" : nil)
        }.joined(separator: "\n") + "\n"
        let output = try runTool(["python3", "-c", schemaValidator,
            repositoryRoot.appendingPathComponent("docs/trace.schema.json").path], input: lines)
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout == "valid \(schemaFixtures.count)\n")
        // And a line with a key the schema does not have fails: the check can fail.
        let version = "{\"schema\":\(JSONFormatter.schemaVersion),"
        let extra = JSONFormatter.line(everyKind, start: nil, .plain).replacingOccurrences(of: version,
            with: version + "\"extra\":0,")
        let refused = try runTool(["python3", "-c", schemaValidator,
            repositoryRoot.appendingPathComponent("docs/trace.schema.json").path], input: extra + "\n")
        #expect(refused.status == 1 && refused.stdout.contains("extra"))
        // tcp_flags belongs to TCP traces: missing on one, or present on a UDP trace, is not valid.
        for line in [JSONFormatter.line(everyKind, start: nil, .plain).replacingOccurrences(of: "\"tcp_flags\":\"syn\",",
            with: ""), JSONFormatter.line(udpOpen, start: nil, .plain).replacingOccurrences(of: "\"family\":\"ipv4\",",
            with: "\"family\":\"ipv4\",\"tcp_flags\":\"syn\","),
            // And port belongs to TCP and UDP: on an ICMP trace it is not valid, nor missing on a UDP one.
            JSONFormatter.line(icmpReached, start: nil, .plain).replacingOccurrences(of: "\"protocol\":\"icmp\",",
                with: "\"port\":0,\"protocol\":\"icmp\","),
            JSONFormatter.line(udpOpen, start: nil, .plain).replacingOccurrences(of: "\"port\":53,", with: ""),
            // And each protocol has its own states: open|filtered is UDP's, reachable ICMP's, unfiltered TCP's.
            JSONFormatter.line(everyKind, start: nil, .plain).replacingOccurrences(of: "\"state\":\"open\"",
                with: "\"state\":\"open|filtered\""),
            JSONFormatter.line(udpOpen, start: nil, .plain).replacingOccurrences(of: "\"state\":\"open\"",
                with: "\"state\":\"unfiltered\""),
            JSONFormatter.line(icmpReached, start: nil, .plain).replacingOccurrences(of: "\"state\":\"reachable\"",
                with: "\"state\":\"open\"")]
        {
            let wrong = try runTool(["python3", "-c", schemaValidator,
                repositoryRoot.appendingPathComponent("docs/trace.schema.json").path], input: line + "\n")
            #expect(wrong.status == 1, "\(line)")
        }
    }

    @Test("The README's JSON table names every key of the schema, and the schema file and version")
    func readmeNamesEveryKey() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "**JSON lines**"))
        let after = readme[section.lowerBound...]
        let tableEnd = try #require(after.range(of: "### Hop names and AS numbers"))
        let text = after[..<tableEnd.lowerBound]
        // First cells of the table's rows: `` `target` ``, `` `port`, `protocol` ``, `` `hops[].ttl` ``.
        var named: Set<String> = []
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.dropFirst(2).prefix { $0 != "|" }
            for match in cell.matches(of: /`(?:hops\[\]\.)?([a-z_]+)`/) { named.insert(String(match.1)) }
        }
        let keys = try schemaKeys(try loadSchema())
        let schema = keys.trace.union(keys.hop)
        let lacks = schema.subtracting(named).sorted(), extra = named.subtracting(schema).sorted()
        #expect(named == schema, "README table lacks \(lacks), has extra \(extra)")
        #expect(text.contains("docs/trace.schema.json") && text.contains("\"schema\":\(JSONFormatter.schemaVersion)"))
    }

    @Test("start is RFC 3339 UTC with microseconds, the same date Foundation gives, or null")
    func startTimestamps() throws {
        func stamp(_ nanos: UInt64) -> String {
            var bytes: [UInt8] = []
            bytes.appendTimestamp(nanos)
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(stamp(0) == "1970-01-01T00:00:00.000000Z")
        #expect(stamp(951_782_400_000_000_000) == "2000-02-29T00:00:00.000000Z")
        #expect(stamp(4_107_542_399_999_999_999) == "2100-02-28T23:59:59.999999Z")
        #expect(stamp(1_796_603_462_123_456_789) == "2026-12-07T00:31:02.123456Z")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let seconds = UInt64.random(in: 0..<18_000_000_000, using: &generator)  // to 2540 (UInt64 ns)
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(seconds))) + ".000042Z"
            #expect(stamp(seconds * 1_000_000_000 + 42_000) == expected)
        }
        let line = JSONFormatter.line(empty, start: nil)
        #expect(line.contains("\"start\":null"))
    }

    @Test("dest_ttl is where the destination answered, as CSV has it; null when it did not")
    func destinationTTL() throws {
        for (result, expected) in [(everyKind, 6), (prohibited, nil), (interrupted, nil), (placedAt(8), 8)]
            as [(TraceResult, Int?)]
        {
            let object = try #require(try JSONSerialization.jsonObject(
                with: Data(JSONFormatter.line(result, start: 1).utf8)) as? [String: Any])
            if let expected {
                #expect(object["dest_ttl"] as? Int == expected)
            } else {
                #expect(object["dest_ttl"] is NSNull)
            }
            #expect(result.destinationTTL.map(Int.init) == expected)
        }
        // CSV's column comes from the same `destinationTTL`.
        let header = csv([prohibited]).split(separator: "\n")[0].split(separator: ",")
        let column = try #require(header.firstIndex(of: "dest_ttl"))
        let row = csv([placedAt(8)]).split(separator: "\n")[1].split(separator: ",", omittingEmptySubsequences: false)
        #expect(row[column] == "8")
    }
}

/// A trace whose destination answered at `ttl` (RST), after silent TTLs.
func placedAt(_ ttl: UInt8) -> TraceResult {
    trace((1..<ttl).map { HopResult(ttl: $0, probes: [.silent]) }
        + [HopResult(ttl: ttl, probes: [answered(target, 90, .reset)])])
}

/// Validates each line of stdin against the schema named in argv[1] (Draft 2020-12); prints the first
/// error and exits 1, or `valid N`.
let schemaValidator = """
    import json, sys
    import jsonschema
    schema = json.load(open(sys.argv[1]))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    n = 0
    for i, line in enumerate(sys.stdin, 1):
        for error in validator.iter_errors(json.loads(line)):
            print(f"line {i}: {list(error.absolute_path)}: {error.message}")
            sys.exit(1)
        n += 1
    print(f"valid {n}")
    """
