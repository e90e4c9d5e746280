// Graphviz output (`--format dot`): the union of every trace of a run as one directed graph, written when
// the run ends. The graph keeps only distinct nodes and edges with counters, never the traces, so its
// memory follows the size of the network seen, not the number of traces. Output is sorted, so two runs
// that saw the same paths print the same text.

import FastTraceCore
import FastTraceWire

/// The union of traces: the sources (vantage points) as roots, every address that answered as a node, and
/// each observed link between consecutive answering hops of a trace as an edge, counted per trace.
///
/// - A trace's first answering hop is linked from its source; each later one from the one before.
/// - Silent TTLs in between make a dashed edge that says how many hops were silent (label
///   `3, 1 silent hop`: 3 traces), one per (from, to, number of silent hops).
/// - A router with two next hops (ECMP, two paths) gets two edges.
/// - A destination that answered is a box marked with its ports' states (`open 80, 443` / `closed 25`).
/// - A target that was not reached is a dashed box (`filtered 443`; `unreachable 443` when a router's
///   unreachable stopped it, `not sent 443` when the kernel refused its probes), linked from the last hop that answered
///   (or its source) by a dotted edge ending in a bar: where its traffic was last seen.
/// - Edge labels count the traces that crossed the edge; the pen gets wider with the count.
final class TraceGraph {
    /// How one edge was observed.
    enum Link: Hashable, Comparable {
        /// Consecutive answering hops with `silent` unanswered TTLs between them (0: adjacent TTLs).
        case hop(silent: Int)
        /// The last hop heard on the way to a target that was not reached.
        case lastSeen
    }

    struct EdgeKey: Hashable, Comparable {
        var from: IPAddress
        var to: IPAddress
        var link: Link

        static func < (a: EdgeKey, b: EdgeKey) -> Bool {
            a.from != b.from ? a.from < b.from : a.to != b.to ? a.to < b.to : a.link < b.link
        }
    }

    /// What a port of a target did, as the node label shows it.
    enum PortMark: String, Comparable {
        case open, closed, unfiltered, filtered, interrupted
        case openFiltered = "open|filtered"
        /// Stopped by a router's destination unreachable (JSON `stop` `unreachable`; state `filtered`).
        case unreachable
        /// The kernel refused to send its probes (JSON `stop` `not-sent`): nothing was asked of the network.
        case notSent = "not sent"
        /// An ICMP echo's destination answered: no port to name.
        case reachable

        static func < (a: PortMark, b: PortMark) -> Bool { a.order < b.order }
        private var order: Int {
            switch self {
            case .open: 0
            case .closed: 1
            case .unfiltered: 2
            case .filtered: 3
            case .openFiltered: 4
            case .unreachable: 5
            case .notSent: 6
            case .interrupted: 7
            case .reachable: 8
            }
        }
    }

    struct Node {
        /// A source address the probes carried.
        var isSource = false
        /// Answered a probe with an ICMP error (time exceeded, unreachable).
        var isRouter = false
        /// As a target: each traced port and what it did. Empty for routers and sources.
        var ports: [UInt16: PortMark] = [:]
        /// The name the user gave for this target, if any.
        var name: String?
        /// The address's reverse name (unless -n), if it has one.
        var reverseName: String?
        /// The AS the --asn-db table gives the address, and its name.
        var asn: UInt32?
        var asName: String?
    }

    private(set) var nodes: [IPAddress: Node] = [:]
    private(set) var edges: [EdgeKey: Int] = [:]
    private(set) var traces = 0

    /// Adds one trace's nodes and edges; the names and AS numbers of its hops from `annotator`.
    func add(_ trace: TraceResult, _ annotator: HopAnnotator = .plain) {
        traces += 1
        let request = trace.request
        nodes[request.source, default: Node()].isSource = true
        var previous = request.source
        var silent = 0
        for hop in trace.hops {
            // The destination's own answer stands for its hop. A hop whose attempts met several routers
            // (no Paris, a route change) is drawn through the first: the edges stay one path per trace.
            let address: IPAddress
            if hop.outcome.isFromDestination {
                address = request.destination
                // What the answer means depends on what was sent: an ACK probe's RST is unfiltered.
                let mark: PortMark = switch trace.method.portState(for: hop.outcome) {
                case .open: .open
                case .closed: .closed
                case .openFiltered: .openFiltered
                case .reachable: .reachable
                default: .unfiltered
                }
                nodes[address, default: Node()].ports[request.port] = mark
            } else if let responder = hop.firstResponder {
                address = responder
                nodes[address, default: Node()].isRouter = true
            } else {
                silent += 1
                continue
            }
            // A name that timed out for one trace may be in for a later one; the AS never changes.
            if (annotator.showsNames && nodes[address]?.reverseName == nil) || (annotator.showsASN && nodes[address]?.asn == nil) {
                let annotation = annotator[address]
                if let name = annotation.name { nodes[address]?.reverseName = name }
                if let asn = annotation.asn {
                    nodes[address]?.asn = asn
                    nodes[address]?.asName = annotation.asName
                }
            }
            if address != previous || silent > 0 {
                edges[EdgeKey(from: previous, to: address, link: .hop(silent: silent)), default: 0] += 1
            }
            previous = address
            silent = 0
        }
        if !trace.reached {
            let target = request.destination
            // What the network said, as JSON's `stop` says it: a router's unreachable is named as such.
            nodes[target, default: Node()].ports[request.port] = switch trace.stopReason {
            case .interrupted: .interrupted
            case .unreachable: .unreachable
            case .notSent: .notSent
            default: trace.state == .openFiltered ? .openFiltered : .filtered
            }
            if previous != target {
                edges[EdgeKey(from: previous, to: target, link: .lastSeen), default: 0] += 1
            }
        }
        // Every trace gave its target a port mark above (reached or not), so the node is there.
        if let name = request.name, nodes[request.destination]?.name == nil {
            nodes[request.destination]?.name = name
        }
    }

    /// The graph in the DOT language, newline-terminated lines, sorted: source nodes, then the others by
    /// address; edges from the sources, then the others by (from, to, kind).
    func write(into out: inout [UInt8]) {
        out.appendLiteral("digraph fasttrace {\n")
        out.appendLiteral("  rankdir=LR;\n")
        out.appendLiteral("  fontname=\"Helvetica\";\n")
        out.appendLiteral("  node [shape=ellipse, fontname=\"Helvetica\", fontsize=11];\n")
        out.appendLiteral("  edge [fontname=\"Helvetica\", fontsize=9];\n")
        out.appendLiteral("  label=")
        out.appendDOTString(
            "fasttrace: \(traces) trace\(traces == 1 ? "" : "s"), \(nodes.count) nodes, \(edges.count) edges")
        out.appendLiteral(";\n  labelloc=t;\n")
        let ordered = nodes.sorted { a, b in
            a.value.isSource != b.value.isSource ? a.value.isSource : a.key < b.key
        }
        for (address, node) in ordered {
            out.appendLiteral("  ")
            out.appendDOTString(address.description)
            out.appendLiteral(" [")
            writeAttributes(of: node, at: address, into: &out)
            out.appendLiteral("];\n")
        }
        // Edges from the sources first, then by (from, to, kind).
        let sortedEdges = edges.sorted { a, b in
            let aFromSource = nodes[a.key.from]?.isSource == true, bFromSource = nodes[b.key.from]?.isSource == true
            return aFromSource != bFromSource ? aFromSource : a.key < b.key
        }
        for (key, count) in sortedEdges {
            out.appendLiteral("  ")
            out.appendDOTString(key.from.description)
            out.appendLiteral(" -> ")
            out.appendDOTString(key.to.description)
            out.appendLiteral(" [label=")
            var label = "\(count)"
            switch key.link {
            case .hop(let silent) where silent > 0: label += ", \(silent) silent hop\(silent == 1 ? "" : "s")"
            default: break
            }
            out.appendDOTString(label)
            out.appendLiteral(", penwidth=")
            out.appendDecimal(UInt64(Self.penWidth(count)))
            switch key.link {
            case .hop(silent: 0): break
            case .hop: out.appendLiteral(", style=dashed")
            case .lastSeen: out.appendLiteral(", style=dotted, arrowhead=tee, color=gray40")
            }
            out.appendLiteral("];\n")
        }
        out.appendLiteral("}\n")
    }

    /// 1 for one trace, one more for each doubling, at most 8.
    static func penWidth(_ count: Int) -> Int {
        var width = 1
        var n = count
        while n > 1 && width < 8 {
            n /= 2
            width += 1
        }
        return width
    }

    private func writeAttributes(of node: Node, at address: IPAddress, into out: inout [UInt8]) {
        var lines: [String] = []
        if let name = node.name ?? node.reverseName { lines.append(name) }
        lines.append(address.description)
        if let asn = node.asn { lines.append("AS\(asn)" + (node.asName.map { " \($0)" } ?? "")) }
        if node.isSource { lines.append("source") }
        // Ports grouped by what they did, in port order: "open 80, 443", "closed 25".
        var byMark: [PortMark: [UInt16]] = [:]
        for (port, mark) in node.ports { byMark[mark, default: []].append(port) }
        for (mark, ports) in byMark.sorted(by: { $0.key < $1.key }) {
            let sorted = ports.sorted()
            let shown = sorted.prefix(8).map(String.init).joined(separator: ", ")
            // ICMP echo has no port (its traces carry port 0): the mark alone.
            lines.append(sorted == [0] ? mark.rawValue
                : "\(mark.rawValue) \(shown)\(sorted.count > 8 ? " (+\(sorted.count - 8) more)" : "")")
        }
        out.appendLiteral("label=")
        out.appendDOTLabel(lines)
        if node.isSource {
            out.appendLiteral(", shape=box, style=\"rounded,filled\", fillcolor=lightblue")
        } else if byMark[.open] != nil || byMark[.reachable] != nil {
            out.appendLiteral(", shape=box, style=filled, fillcolor=palegreen")
        } else if byMark[.closed] != nil {
            out.appendLiteral(", shape=box, style=filled, fillcolor=lightsalmon")
        } else if byMark[.unfiltered] != nil {
            out.appendLiteral(", shape=box, style=filled, fillcolor=lightyellow")
        } else if !node.ports.isEmpty {
            out.appendLiteral(node.isRouter ? ", shape=box, style=dashed" : ", shape=box, style=dashed, color=gray40")
        }
    }
}

extension [UInt8] {
    /// `text` as a DOT quoted string: `"` and `\` escaped with a backslash, a line break as `\n` (a line
    /// break in a label), other control characters written out as `\xNN` (so they show and mean nothing).
    mutating func appendDOTString(_ text: String) { appendDOTLabel([text]) }

    /// A DOT quoted string of `lines` (each escaped as `appendDOTString` does), joined by `\n`.
    mutating func appendDOTLabel(_ lines: [String]) {
        append(0x22)
        for (i, line) in lines.enumerated() {
            if i > 0 { append(contentsOf: [0x5C, 0x6E]) }
            for byte in line.utf8 {
                switch byte {
                case 0x22, 0x5C:
                    append(0x5C)
                    append(byte)
                case 0x0A: append(contentsOf: [0x5C, 0x6E])
                case 0..<0x20, 0x7F:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    append(contentsOf: [0x5C, 0x5C, 0x78, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                default: append(byte)
                }
            }
        }
        append(0x22)
    }
}

/// `text` as a DOT quoted string (for tests and callers that want a String).
func dotString(_ text: String) -> String {
    var bytes: [UInt8] = []
    bytes.appendDOTString(text)
    return String(decoding: bytes, as: UTF8.self)
}
