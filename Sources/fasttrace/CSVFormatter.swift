// CSV output (`--format csv`): one flat table for spreadsheets and pandas. One row per hop; the trace's
// identity and outcome are repeated on every row of the trace, so rows can be filtered and grouped on
// their own. The columns are one list (`traceColumns`, `hopColumns`, `probeColumns`): a new column is one
// line there. The schema is documented in the README.

import FastTraceCore
import FastTraceWire

/// What one CSV row describes: a trace and one of its hops (nil for a trace that has none, which still
/// gets one row so that no trace is lost).
struct CSVRow {
    let trace: TraceResult
    let hop: HopResult?
    /// The TTL the destination answered at (SYN-ACK or RST), if it did.
    let destinationTTL: UInt8?
    /// Names and AS numbers of the trace's addresses.
    var annotator: HopAnnotator = .plain

    /// The annotation of the hop's `addr`, if it has one.
    var annotation: HopAnnotation? { hop?.firstResponder.map { annotator[$0] } }
}

/// A column: its name in the header row, and how to write its field for a row. A field writes nothing for
/// an empty value, bytes that need no quoting (numbers, addresses, enum names) as they are, and any other
/// text through `appendCSVField`.
struct CSVColumn: Sendable {
    let name: String
    let write: @Sendable (CSVRow, inout [UInt8]) -> Void

    init(_ name: String, _ write: @escaping @Sendable (CSVRow, inout [UInt8]) -> Void) {
        self.name = name
        self.write = write
    }
}

/// Writes traces as CSV rows (RFC 4180 quoting, LF line ends, a header row first).
struct CSVFormatter {
    /// Every column in order, for runs with `probes` probes per hop.
    let columns: [CSVColumn]

    /// With `names` (not -n) a `name` column follows `addr`, and with `asn` (--asn-db) `asn` and
    /// `as_name` columns, as JSON has those keys.
    init(probesPerHop probes: Int, names: Bool = false, asn: Bool = false) {
        var hop = Self.hopColumns
        let annotations = (names ? [Self.nameColumn] : []) + (asn ? Self.asnColumns : [])
        hop.insert(contentsOf: annotations, at: hop.firstIndex { $0.name == "addr" }! + 1)
        columns = Self.traceColumns + hop + Self.probeColumns(probes)
    }

    /// The trace's identity and outcome, the same on every row of a trace.
    static let traceColumns: [CSVColumn] = [
        CSVColumn("target") { row, out in out.appendAddress(row.trace.request.destination) },
        CSVColumn("target_name") { row, out in if let name = row.trace.request.name { out.appendCSVField(name) } },
        CSVColumn("port") { row, out in
            if row.trace.method.hasPorts { out.appendDecimal(UInt64(row.trace.request.port)) }
        },
        CSVColumn("protocol") { row, out in out.appendText(row.trace.method.protocolName) },
        CSVColumn("tcp_flags") { row, out in if let flags = row.trace.method.tcpFlags { out.appendText(flags.rawValue) } },
        CSVColumn("source") { row, out in out.appendAddress(row.trace.request.source) },
        CSVColumn("sport") { row, out in out.appendDecimal(UInt64(row.trace.sourcePort)) },
        CSVColumn("reached") { row, out in out.appendLiteral(row.trace.reached ? "true" : "false") },
        CSVColumn("state") { row, out in out.appendText(row.trace.state.rawValue) },
        CSVColumn("stop") { row, out in out.appendText(row.trace.stopReason.rawValue) },
        CSVColumn("dest_ttl") { row, out in if let ttl = row.destinationTTL { out.appendDecimal(UInt64(ttl)) } },
        CSVColumn("probes_sent") { row, out in out.appendDecimal(UInt64(max(0, row.trace.probesSent))) },
    ]

    /// The hop, as JSON's `hops[]` has it.
    static let hopColumns: [CSVColumn] = [
        CSVColumn("ttl") { row, out in if let hop = row.hop { out.appendDecimal(UInt64(hop.ttl)) } },
        CSVColumn("addr") { row, out in if let address = row.hop?.firstResponder { out.appendAddress(address) } },
        CSVColumn("kind") { row, out in if let hop = row.hop { out.appendText(hop.kind) } },
        CSVColumn("code") { row, out in
            if let (code, _) = row.hop?.outcome.unreachableCode { out.appendDecimal(UInt64(code)) }
        },
        CSVColumn("dnat") { row, out in if let to = row.hop?.translatedDestination { out.appendAddress(to) } },
        CSVColumn("addrs") { row, out in if let hop = row.hop { out.appendDistinctResponders(hop) } },
        // The MPLS label stack the hop's router reported (RFC 4950), as the text mark spells it (its commas
        // make it a quoted field).
        CSVColumn("mpls") { row, out in
            if let stack = row.hop?.probes.lazy.compactMap(\.mpls).first { out.appendCSVField(mplsText(stack)) }
        },
    ]

    /// The reverse name of the hop's `addr` (JSON's `hops[].name`): empty when it has none.
    static let nameColumn = CSVColumn("name") { row, out in
        if let name = row.annotation?.name { out.appendCSVField(name) }
    }

    /// The AS of the hop's `addr` and its name from the --asn-db table: empty when unknown.
    static let asnColumns: [CSVColumn] = [
        CSVColumn("asn") { row, out in if let asn = row.annotation?.asn { out.appendDecimal(UInt64(asn)) } },
        CSVColumn("as_name") { row, out in if let name = row.annotation?.asName { out.appendCSVField(name) } },
    ]

    /// One RTT column per probe (`rtt1_ms`…), then one reply column per probe (`reply1`…).
    static func probeColumns(_ probes: Int) -> [CSVColumn] {
        let rtts = (0..<probes).map { i in
            CSVColumn("rtt\(i + 1)_ms") { row, out in
                if let hop = row.hop, i < hop.probes.count, let rtt = hop.probes[i].rttMicros { out.appendMillis(rtt) }
            }
        }
        let replies = (0..<probes).map { i in
            CSVColumn("reply\(i + 1)") { row, out in
                if let hop = row.hop, i < hop.probes.count { out.appendText(hop.probes[i].replyKind) }
            }
        }
        return rtts + replies
    }

    /// The header row, newline included.
    func writeHeader(into out: inout [UInt8]) {
        for (i, column) in columns.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.appendCSVField(column.name)
        }
        out.append(0x0A)
    }

    /// One row per hop of `trace` (one row with empty hop fields if it has no hops), newlines included;
    /// names and AS numbers from `annotator`.
    func write(_ trace: TraceResult, _ annotator: HopAnnotator = .plain, into out: inout [UInt8]) {
        let destinationTTL = trace.destinationTTL
        if trace.hops.isEmpty {
            writeRow(CSVRow(trace: trace, hop: nil, destinationTTL: destinationTTL, annotator: annotator), into: &out)
        }
        for hop in trace.hops {
            writeRow(CSVRow(trace: trace, hop: hop, destinationTTL: destinationTTL, annotator: annotator), into: &out)
        }
    }

    private func writeRow(_ row: CSVRow, into out: inout [UInt8]) {
        for (i, column) in columns.enumerated() {
            if i > 0 { out.append(0x2C) }
            column.write(row, &out)
        }
        out.append(0x0A)
    }
}

extension ProbeResult {
    /// What answered this probe (`time-exceeded`, `unreachable`, `syn-ack`, `rst`), or why nothing did
    /// (`none`, `rate-limited`, `unknown`, `interrupted`): the words JSON's `kind` uses.
    var replyKind: String {
        if outcome != .none { return outcome.description }
        return (silence ?? .timedOut).rawValue
    }
}

extension [UInt8] {
    /// A CSV field as RFC 4180 has it: as is, or, when it holds a comma, a double quote, CR or LF, in double
    /// quotes with each double quote doubled. Other control characters (ESC and the like, which only a
    /// hostile hosts file or resolver could put in a name) are written out (`\x1b`), as in every other
    /// format, so that `cat out.csv` cannot drive the terminal.
    mutating func appendCSVField(_ raw: String) {
        let text = escapingControlCharacters(raw, keeping: ["\r", "\n"])
        let needsQuotes = text.utf8.contains { $0 == 0x2C || $0 == 0x22 || $0 == 0x0D || $0 == 0x0A }
        guard needsQuotes else {
            append(contentsOf: text.utf8)
            return
        }
        append(0x22)
        for byte in text.utf8 {
            if byte == 0x22 { append(0x22) }
            append(byte)
        }
        append(0x22)
    }

    /// Every address that answered at `hop`, space-separated in order of first answer, when attempts met
    /// different routers (as JSON's `addrs`); nothing when they all met one.
    fileprivate mutating func appendDistinctResponders(_ hop: HopResult) {
        guard let first = hop.firstResponder, hop.probes.contains(where: { $0.responder.map { $0 != first } ?? false })
        else { return }
        var distinct: [IPAddress] = []
        for probe in hop.probes { if let r = probe.responder, !distinct.contains(r) { distinct.append(r) } }
        for (i, address) in distinct.enumerated() {
            if i > 0 { append(0x20) }
            appendAddress(address)
        }
    }
}

/// A CSV field as text (for tests and callers that want a String).
func csvField(_ text: String) -> String {
    var bytes: [UInt8] = []
    bytes.appendCSVField(text)
    return String(decoding: bytes, as: UTF8.self)
}
