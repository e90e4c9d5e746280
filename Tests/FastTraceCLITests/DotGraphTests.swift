// The DOT graph: ECMP branches as separate edges, counts per edge, silent gaps and unreached targets,
// sorted output that does not depend on the order traces finish in, DOT string escaping, and Graphviz's
// own reading of it all.

import FastTraceCore
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

func routers(_ lasts: [UInt8?], then final: ProbeResult? = nil) -> [HopResult] {
    var hops = lasts.enumerated().map { i, last in
        HopResult(ttl: UInt8(i + 1), probes: Array(repeating: last.map { answered(router($0), 50) } ?? .silent, count: 3))
    }
    if let final { hops.append(HopResult(ttl: UInt8(hops.count + 1), probes: Array(repeating: final, count: 3))) }
    return hops
}

func graph(_ traces: [TraceResult]) -> String {
    let g = TraceGraph()
    for t in traces { g.add(t) }
    var bytes: [UInt8] = []
    g.write(into: &bytes)
    return String(decoding: bytes, as: UTF8.self)
}

/// The edge lines of a graph (`"a" -> "b" [...]`), without indentation.
func edgeLines(_ dot: String) -> [String] {
    dot.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.contains(" -> ") }
}

let t1 = IPv4Address(198, 51, 100, 1), t2 = IPv4Address(198, 51, 100, 2), t3 = IPv4Address(198, 51, 100, 3)
let t4 = IPv4Address(198, 51, 100, 4)
/// Two traces through r4a (.13), one through r4b (.17), one with a silent TTL 3, one never reached.
let batch = [
    trace(routers([1, 9, 13], then: answered(t1, 70, .synAck)), destination: t1),
    trace(routers([1, 9, 13], then: answered(t2, 70, .reset)), destination: t2),
    trace(routers([1, 9, 17], then: answered(t3, 70, .synAck)), destination: t3),
    trace(routers([1, 9, nil], then: answered(t3, 70, .synAck)), port: 80, destination: t3),
    trace(routers([1, 9, nil, nil]), destination: t4),
]

@Suite struct DotGraphTests {
    @Test("ECMP branches are two edges; labels count traces; silent hops make a dashed edge; the unreached end dotted")
    func edges() {
        #expect(edgeLines(graph(batch)) == [
            "\"192.0.2.1\" -> \"198.18.0.1\" [label=\"5\", penwidth=3];",
            "\"198.18.0.1\" -> \"198.18.0.9\" [label=\"5\", penwidth=3];",
            "\"198.18.0.9\" -> \"198.18.0.13\" [label=\"2\", penwidth=2];",
            "\"198.18.0.9\" -> \"198.18.0.17\" [label=\"1\", penwidth=1];",
            "\"198.18.0.9\" -> \"198.51.100.3\" [label=\"1, 1 silent hop\", penwidth=1, style=dashed];",
            "\"198.18.0.9\" -> \"198.51.100.4\" [label=\"1\", penwidth=1, style=dotted, arrowhead=tee, color=gray40];",
            "\"198.18.0.13\" -> \"198.51.100.1\" [label=\"1\", penwidth=1];",
            "\"198.18.0.13\" -> \"198.51.100.2\" [label=\"1\", penwidth=1];",
            "\"198.18.0.17\" -> \"198.51.100.3\" [label=\"1\", penwidth=1];",
        ])
    }

    @Test("Destinations are marked with their ports' states; the source is the root")
    func nodes() {
        let dot = graph(batch)
        let lines = dot.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let nodeLines = lines.filter { $0.hasPrefix("\"") && !$0.contains(" -> ") }
        #expect(nodeLines.first == "\"192.0.2.1\" [label=\"192.0.2.1\\nsource\", shape=box, style=\"rounded,filled\", fillcolor=lightblue];")
        #expect(nodeLines.contains("\"198.18.0.13\" [label=\"198.18.0.13\"];"))
        #expect(nodeLines.contains("\"198.51.100.2\" [label=\"198.51.100.2\\nclosed 443\", shape=box, style=filled, fillcolor=lightsalmon];"))
        #expect(nodeLines.contains("\"198.51.100.3\" [label=\"198.51.100.3\\nopen 80, 443\", shape=box, style=filled, fillcolor=palegreen];"))
        #expect(nodeLines.contains("\"198.51.100.4\" [label=\"198.51.100.4\\nfiltered 443\", shape=box, style=dashed, color=gray40];"))
        #expect(nodeLines.count == 9)
        #expect(lines.contains("label=\"fasttrace: 5 traces, 9 nodes, 9 edges\";"))
    }

    @Test("An ACK probe's RST marks its port unfiltered, never closed (the trial drew every -A port closed)")
    func ackProbes() {
        var reset = trace(routers([1, 9, 13], then: answered(t1, 70, .reset)), destination: t1)
        reset.method = .tcp(.ack)
        reset.state = .unfiltered
        var silent = trace(routers([1, 9, nil, nil]), port: 8443, destination: t1)
        silent.method = .tcp(.ack)
        let nodeLines = graph([reset, silent]).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(nodeLines.contains(
            "\"198.51.100.1\" [label=\"198.51.100.1\\nunfiltered 443\\nfiltered 8443\", shape=box, style=filled, fillcolor=lightyellow];"),
            "\(nodeLines)")
    }

    @Test("The same traces in any order give the same text")
    func deterministic() {
        let forward = graph(batch)
        #expect(graph(batch.reversed()) == forward)
        #expect(graph([batch[3], batch[0], batch[4], batch[2], batch[1]]) == forward)
    }

    @Test("Memory follows distinct nodes and edges, not traces")
    func bounded() {
        let g = TraceGraph()
        for _ in 0..<1000 { for t in batch { g.add(t) } }
        #expect(g.nodes.count == 9 && g.edges.count == 9 && g.traces == 5000)
        #expect(edgeLines({ var b: [UInt8] = []; g.write(into: &b); return String(decoding: b, as: UTF8.self) }()).first
            == "\"192.0.2.1\" -> \"198.18.0.1\" [label=\"5000\", penwidth=8];")
    }

    @Test("Pen width grows by one per doubling of the count, up to 8")
    func penWidth() {
        #expect([1, 2, 3, 4, 7, 8, 100, 1_000_000].map(TraceGraph.penWidth) == [1, 2, 2, 3, 3, 4, 7, 8])
    }

    @Test("DOT strings: quotes and backslashes escaped, a line break as \\n, control bytes spelled out")
    func escaping() {
        #expect(dotString("198.18.0.1") == "\"198.18.0.1\"")
        #expect(dotString("a \"b\" c") == "\"a \\\"b\\\" c\"")
        #expect(dotString("back\\slash") == "\"back\\\\slash\"")
        #expect(dotString("trailing\\") == "\"trailing\\\\\"")
        #expect(dotString("two\nlines") == "\"two\\nlines\"")
        #expect(dotString("bell\u{07}") == "\"bell\\\\x07\"")
        #expect(dotString("naïve") == "\"naïve\"")
    }

    @Test("Graphviz reads the graph: every node and edge, a target's odd name as given", .enabled(if: toolPath("dot") != nil, "needs graphviz"))
    func graphvizReadsIt() throws {
        let name = "odd \"name\" \\ with, {braces}; -> and\u{07}"
        let named = trace(routers([1, 9, 17], then: answered(t1, 70, .synAck)), name: name, destination: t1)
        let text = graph(batch + [named])
        let svg = try runTool(["dot", "-Tsvg"], input: text)
        #expect(svg.status == 0 && svg.stdout.contains("</svg>"), "\(svg.stderr)")
        let json = try runTool(["dot", "-Tjson0"], input: text)
        try #require(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let nodes = try #require(object["objects"] as? [[String: Any]])
        let edges = try #require(object["edges"] as? [[String: Any]])
        #expect(nodes.count == 9 && edges.count == 10)
        let names = nodes.compactMap { $0["name"] as? String }
        #expect(Set(names) == ["192.0.2.1", "198.18.0.1", "198.18.0.9", "198.18.0.13", "198.18.0.17",
            "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"])
        let label = nodes.first { $0["name"] as? String == "198.51.100.1" }?["label"] as? String
        #expect(label == "odd \"name\" \\\\ with, {braces}; -> and\\\\x07\\n198.51.100.1\\nopen 443", "\(label ?? "-")")
    }
}
