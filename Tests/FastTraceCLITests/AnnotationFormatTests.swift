// Hop names and AS numbers in every format, from one HopAnnotator: text `name (addr) [ASn]` and
// `[AS???]`, JSON `name`/`asn`/`as_name` (null when unknown, absent when off), CSV `name`/`asn`/`as_name`
// columns after `addr` (only when on, quoted when needed), DOT node labels. And the output stage: what
// needs no lookup is written at once, in order.

import FastTraceAnnotations
import FastTraceCore
import FastTraceLinux
import FastTraceWire
import Foundation
import Synchronization
import Testing

@testable import fasttrace

/// Routers .1 and .9 in AS 64500 (named, with a comma), the target in AS 64501 (no name), .13 in none.
let annotationTable: ASNTable = {
    var builder = ASNTableBuilder()
    builder.feed("198.18.0.0\t198.18.0.12\t64500\tZZ\tLAB, \"CORE\"\n198.51.100.0/24 64501\n")
    _ = builder.endFile()
    return builder.build()
}()

/// r1 and the target have names; .9 and .13 have none.
let annotator = HopAnnotator(showsNames: true, asnTable: annotationTable,
    v4Names: [(router(1), "r1.lab.example"), (target, "web.lab.example")])

let annotated = trace([
    HopResult(ttl: 1, probes: Array(repeating: answered(router(1), 50), count: 3)),
    HopResult(ttl: 2, probes: [answered(router(9), 60), .silent, answered(router(13), 70)]),
    HopResult(ttl: 3, probes: Array(repeating: .silent, count: 3)),
    HopResult(ttl: 4, probes: Array(repeating: answered(target, 80, .synAck), count: 3)),
])

/// Counts lookups a stand-in resolver was asked for.
final class LookupCount: Sendable {
    let value = Mutex(0)
}

@Suite struct AnnotationFormatTests {
    @Test("The annotator: the name found, the table's AS and AS name, nil where unknown")
    func lookups() {
        #expect(annotator[router(1)] == HopAnnotation(name: "r1.lab.example", asn: 64500, asName: "LAB, \"CORE\""))
        #expect(annotator[router(9)] == HopAnnotation(name: nil, asn: 64500, asName: "LAB, \"CORE\""))
        #expect(annotator[router(13)] == HopAnnotation())
        #expect(annotator[target] == HopAnnotation(name: "web.lab.example", asn: 64501, asName: nil))
        #expect(HopAnnotator.plain[router(1)] == HopAnnotation())
    }

    @Test("Text: name (addr) [ASn], addr (addr) without a name, [AS???] outside the table; -n keeps addr [ASn]")
    func text() {
        let formatter = TextFormatter()
        let lines = formatter.block(annotated, annotator).split(separator: "\n").map(String.init)
        #expect(lines[1] == " 1  r1.lab.example (198.18.0.1) [AS64500]  0.050 ms  0.050 ms  0.050 ms")
        #expect(lines[2] == " 2  198.18.0.9 (198.18.0.9) [AS64500]  0.060 ms * 198.18.0.13 (198.18.0.13) [AS???]  0.070 ms")
        #expect(lines[3] == " 3  * * *")
        #expect(lines[4] == " 4  web.lab.example (198.51.100.10) [AS64501] [open]  0.080 ms  0.080 ms  0.080 ms")
        let numeric = HopAnnotator(showsNames: false, asnTable: annotationTable, names: [])
        #expect(formatter.hopLine(annotated.hops[0], numeric) == " 1  198.18.0.1 [AS64500]  0.050 ms  0.050 ms  0.050 ms")
        #expect(formatter.hopLine(annotated.hops[0], .plain) == " 1  198.18.0.1  0.050 ms  0.050 ms  0.050 ms")
    }

    @Test("JSON: name, asn and as_name per hop, null when unknown, escaped; absent when off")
    func json() throws {
        let line = JSONFormatter.line(annotated, annotator)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let hops = try #require(object["hops"] as? [[String: Any]])
        #expect(hops[0]["name"] as? String == "r1.lab.example")
        #expect(hops[0]["asn"] as? Int == 64500)
        #expect(hops[0]["as_name"] as? String == "LAB, \"CORE\"")
        #expect(hops[1]["name"] is NSNull && hops[1]["asn"] as? Int == 64500)  // .9, the hop's first address
        #expect(hops[2]["name"] is NSNull && hops[2]["asn"] is NSNull && hops[2]["as_name"] is NSNull)  // silent
        #expect(hops[3]["name"] as? String == "web.lab.example" && hops[3]["asn"] as? Int == 64501)
        #expect(hops[3]["as_name"] is NSNull)
        #expect(line.contains("\"as_name\":\"LAB, \\\"CORE\\\"\""))
        let plain = JSONFormatter.line(annotated, .plain)
        #expect(!plain.contains("\"name\"") && !plain.contains("\"asn\"") && !plain.contains("\"as_name\""))
        let namesOnly = JSONFormatter.line(annotated, HopAnnotator(showsNames: true, asnTable: nil, names: []))
        #expect(namesOnly.contains("\"addr\":\"198.18.0.1\",\"name\":null,\"rtt_ms\""))
        #expect(!namesOnly.contains("\"asn\""))
    }

    @Test("CSV: name after addr unless -n, asn and as_name with --asn-db, quoted as RFC 4180 says",
        .enabled(if: toolPath("python3") != nil, "needs python3"))
    func csvColumns() throws {
        let formatter = CSVFormatter(probesPerHop: 3, names: true, asn: true)
        let names = formatter.columns.map(\.name)
        let addr = try #require(names.firstIndex(of: "addr"))
        #expect(Array(names[addr...(addr + 4)]) == ["addr", "name", "asn", "as_name", "kind"])
        #expect(!CSVFormatter(probesPerHop: 3, names: false, asn: true).columns.map(\.name).contains("name"))
        #expect(CSVFormatter(probesPerHop: 3, names: true).columns.map(\.name).filter { $0.hasPrefix("as") } == [])
        var bytes: [UInt8] = []
        formatter.writeHeader(into: &bytes)
        formatter.write(annotated, annotator, into: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        let r = try runTool(["python3", "-c", pythonReader], input: text)
        try #require(r.status == 0, "\(r.stderr)\n\(text)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: String]])
        #expect(rows.map { $0["name"]! } == ["r1.lab.example", "", "", "web.lab.example"])
        #expect(rows.map { $0["asn"]! } == ["64500", "64500", "", "64501"])
        #expect(rows.map { $0["as_name"]! } == ["LAB, \"CORE\"", "LAB, \"CORE\"", "", ""])
    }

    @Test("DOT: a node's label has its reverse name and AS; the name the user gave wins")
    func dotLabels() {
        let g = TraceGraph()
        g.add(annotated, annotator)
        var bytes: [UInt8] = []
        g.write(into: &bytes)
        let dot = String(decoding: bytes, as: UTF8.self)
        #expect(dot.contains(#""198.18.0.1" [label="r1.lab.example\n198.18.0.1\nAS64500 LAB, \"CORE\""#), "\(dot)")
        #expect(dot.contains(#""198.18.0.9" [label="198.18.0.9\nAS64500 LAB, \"CORE\""#), "\(dot)")
        #expect(dot.contains(#""198.51.100.10" [label="web.lab.example\n198.51.100.10\nAS64501\nopen 443""#), "\(dot)")
        let named = TraceGraph()
        named.add(trace(annotated.hops, name: "given.example"), annotator)
        bytes = []
        named.write(into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self).contains(#"[label="given.example\n198.51.100.10\nAS64501"#))
    }

    @Test("The output stage: output that needs no lookup is written at once; waiting output keeps its order")
    func stageOrder() {
        // -n: no resolver, written at once.
        let numeric = OutputStage(resolver: nil, asnTable: annotationTable)
        var written: [String] = []
        numeric.submit(addresses: [router(1)]) { a in written.append("a \(a.showsNames) \(a.showsASN)") }
        #expect(written == ["a false true"] && numeric.waitingCount == 0)

        // A resolver whose lookups take 200 ms: the first piece waits for its name, the second (no
        // address to look up) waits behind it, then both go out in order with the name.
        let resolver = NameResolver(waitNanos: 2_000_000_000) { address in
            usleep(200_000)
            return address == router(1) ? "r1.lab.example" : nil
        }
        defer { resolver.stop() }
        let stage = OutputStage(resolver: resolver, asnTable: nil)
        var order: [String] = []
        stage.submit(addresses: [router(1), router(1)]) { a in order.append("first \(a[router(1)].name ?? "-")") }
        stage.submit(addresses: EmptyCollection()) { _ in order.append("second") }
        #expect(order.isEmpty && stage.waitingCount == 2)
        let started = Date()
        stage.finish(cancelled: { false }, tick: {})
        #expect(order == ["first r1.lab.example", "second"])
        #expect(Date().timeIntervalSince(started) < 1.5)
        // Cached now: written at once.
        stage.submit(addresses: [router(1)]) { a in order.append("third \(a[router(1)].name ?? "-")") }
        #expect(order.last == "third r1.lab.example")

        // A name that is not in by the deadline: written without it when the wait is over.
        let slow = NameResolver(waitNanos: 100_000_000) { _ in
            usleep(1_000_000)
            return "late.example"
        }
        defer { slow.stop() }
        let late = OutputStage(resolver: slow, asnTable: nil)
        var lateOrder: [String] = []
        late.submit(addresses: [router(9)]) { a in lateOrder.append(a[router(9)].name ?? "none") }
        let t0 = Date()
        late.finish(cancelled: { false }, tick: {})
        let waited = Date().timeIntervalSince(t0)
        #expect(lateOrder == ["none"] && waited >= 0.05 && waited < 0.6, "\(waited) s")

        // Addresses the stage is told not to look up (RFC 1918 without -N): no lookup, written at once.
        let counted = LookupCount()
        let counting = NameResolver(waitNanos: 1_000_000_000) { _ in
            counted.value.withLock { $0 += 1 }
            return "x.example"
        }
        defer { counting.stop() }
        let privateOnly = OutputStage(resolver: counting, asnTable: nil) { looksUpName(of: $0, includePrivate: false) }
        var privateNames: [String] = []
        privateOnly.submit(addresses: [IPv4Address(10, 1, 2, 3), IPv4Address(192, 168, 0, 1)]) { a in
            privateNames.append(a[IPv4Address(10, 1, 2, 3)].name ?? "none")
        }
        #expect(privateNames == ["none"] && counting.counters.started == 0)

        // An interrupt writes what waits at once, with the names known so far.
        let interrupted = OutputStage(resolver: slow, asnTable: nil)
        var cut: [String] = []
        interrupted.submit(addresses: [router(17)]) { a in cut.append(a[router(17)].name ?? "none") }
        let t1 = Date()
        interrupted.finish(cancelled: { true }, tick: {})
        #expect(cut == ["none"] && Date().timeIntervalSince(t1) < 0.05)
    }
}
