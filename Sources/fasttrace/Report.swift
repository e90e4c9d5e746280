// `-c N` / `--report`: the rounds of each target × port aggregated (FastTraceStats) and written once its
// last round is in: an mtr-report-like table in text, one object per target × port × protocol in JSON
// (docs/report.schema.json). Lives on the engine's thread, as all output does.

import FastTraceCore
import FastTraceStats
import FastTraceWire

/// Collects each target × port's rounds and writes its report when its last round finishes.
final class RoundsReporter {
    let roundsRequested: Int
    let format: OutputFormat
    let stage: OutputStage
    /// The run's first TTL (`-f`): where every target × port's rows start.
    let firstTTL: UInt8
    private var open: [Int: (stats: RoundStats, start: UInt64?)] = [:]
    /// `--plot`: every report also drawn, written when the run ends.
    let plot: PlotBook?
    /// Reports written.
    private(set) var written = 0

    init(rounds: Int, format: OutputFormat, stage: OutputStage, firstTTL: UInt8, plot: PlotBook? = nil) {
        self.plot = plot
        roundsRequested = rounds
        self.format = format
        self.stage = stage
        self.firstTTL = firstTTL
    }

    /// Adds a finished round; writes the target × port's report when it was its last.
    func add(_ trace: TraceResult, last: Bool) {
        let index = trace.request.index
        var entry = open[index] ?? (RoundStats(request: trace.request, method: trace.method, firstTTL: firstTTL),
            trace.startNanos.map { Out.wallNanos(monotonic: $0) })
        open[index] = nil
        entry.stats.add(trace)
        if last {
            write(entry.stats, start: entry.start)
        } else {
            open[index] = entry
        }
    }

    /// Writes every report still open (the run was interrupted between or during rounds), in input order.
    func finishAll() {
        for index in open.keys.sorted() { write(open[index]!.stats, start: open[index]!.start) }
        open.removeAll()
    }

    private func write(_ stats: RoundStats, start: UInt64?) {
        written += 1
        var addresses: [IPAddress] = []
        for hop in stats.hops { for r in hop.responders { addresses.append(r.address) } }
        let requested = roundsRequested
        if let plot {
            stage.submit(addresses: addresses) { annotator in plot.add(stats, requested: requested, annotator) }
        }
        switch format {
        case .json:
            stage.submit(addresses: addresses) { annotator in
                Out.append { ReportJSON.write(stats, requested: requested, start: start, annotator, into: &$0); $0.append(0x0A) }
            }
        default:
            stage.submit(addresses: addresses) { annotator in
                Out.line(ReportText.block(stats, requested: requested, annotator))
            }
        }
    }
}

/// The report as text: a title line, a table of hops, and lines naming where loss and latency start.
enum ReportText {
    static let columns = ["Loss%", "Snt", "Last", "Avg", "Best", "Wrst", "StDev", "p95", "Javg"]

    static func block(_ stats: RoundStats, requested: Int, _ annotator: HopAnnotator = .plain) -> String {
        let title = title(stats, requested: requested)
        let analysis = Interpretation(stats.hops, destinationTTL: stats.destinationTTLs?.lowerBound)
        var rows: [[String]] = []
        var extra: [Int: [String]] = [:]
        for hop in stats.hops where hop.sent > 0 || hop.inFlight > 0 {
            let verdict = analysis.verdict(for: hop)
            var host = "???"
            if let main = hop.mainResponder {
                host = label(main.address, annotator) + (main.mpls.map(mplsMark) ?? "")
                if main.isDestination, let state = stats.mainState, state != .unknown { host += " [\(state.rawValue)]" }
            }
            var cells = [String(hop.ttl), host]
            cells.append(hop.lossPercent.map(formatPercent) ?? "-")
            cells.append(String(hop.sent))
            if hop.rttCount > 0 {
                cells += [hop.last, hop.average.map(micros), hop.best, hop.worst, hop.standardDeviation.map(micros),
                    hop.p95, hop.jitterAverage.map(micros)].map { $0.map(formatMillisText) ?? "-" }
            } else {
                cells += Array(repeating: "", count: 7)
            }
            cells.append(markText(verdict))
            rows.append(cells)
            let others = hop.responders.filter { $0.address != hop.mainResponder?.address }
            if !others.isEmpty || hop.otherResponders > 0 {
                var lines = others.map {
                    "\(label($0.address, annotator))\($0.mpls.map(mplsMark) ?? "") (\($0.count) of \(hop.answered))"
                }
                if hop.otherResponders > 0 { lines.append("\(hop.otherResponders) answers from other addresses") }
                extra[rows.count - 1] = lines
            }
        }
        let hostWidth = max(16, rows.map { $0[1].count }.max() ?? 0)
        var lines = [title]
        var header = " TTL  " + pad("Host", hostWidth, left: true)
        for (i, name) in columns.enumerated() { header += " " + pad(name, i == 1 ? 4 : 7) }
        lines.append(header)
        for (r, cells) in rows.enumerated() {
            var line = pad(cells[0], 4) + "  " + pad(cells[1], hostWidth, left: true)
            for (i, cell) in cells[2..<11].enumerated() { line += " " + pad(cell, i == 1 ? 4 : 7) }
            if !cells[11].isEmpty { line += "  " + cells[11] }
            lines.append(trimRight(line))
            for more in extra[r] ?? [] { lines.append("      " + more) }
        }
        lines.append("Loss: " + analysis.lossNote)
        lines.append("Latency: " + analysis.latencyNote)
        if stats.paths.count > 1 || stats.otherPathRounds > 0 {
            lines.append("Paths: \(stats.paths.count)\(stats.otherPathRounds > 0 ? " (and \(counted(stats.otherPathRounds, "round")) on others)" : ""), statistics kept apart:")
            for (i, path) in stats.paths.enumerated() {
                let hops = path.responders.map { $0.map { label($0, annotator) } ?? "*" }.joined(separator: " ")
                lines.append("  path \(i + 1) (\(counted(path.rounds, "round")), id \(path.id)): \(hops)")
                let own = Interpretation(path.hops, destinationTTL: path.hops.first { $0.hasDestination }?.ttl)
                lines.append("    Loss: " + own.lossNote)
                lines.append("    Latency: " + own.latencyNote)
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The report's title line (the plot's panel titles too): target, rounds, states, destination TTL.
    static func title(_ stats: RoundStats, requested: Int) -> String {
        let request = stats.request
        let target = request.name.map { "\($0) (\(request.destination))" } ?? request.destination.description
        let probes = stats.method == .tcp(.syn) ? "" : " (\(stats.method))"
        // ICMP echo has no port.
        let port = stats.method.hasPorts ? " port \(request.port)" : ""
        var title = "\(target)\(port)\(probes): \(counted(stats.rounds, "round"))"
        if stats.rounds < requested || stats.interruptedRounds > 0 {
            title += " of \(requested) (interrupted)"
        }
        // `filtered` rounds a router's unreachable stopped are named so (JSON `stops` has them too).
        let unreachable = stats.stops.first { $0.reason == .unreachable }?.rounds ?? 0
        let notSent = stats.stops.first { $0.reason == .notSent }?.rounds ?? 0
        var states = stats.states.filter { $0.state != .unknown }
            .map { "\($0.state.rawValue) \($0.rounds)" + ($0.state == .filtered && unreachable > 0
                ? " (\(unreachable) stopped by a router's unreachable)" : "") }.joined(separator: ", ")
        if notSent > 0 { states += (states.isEmpty ? "" : ", ") + "not sent \(notSent) (the kernel refused the probes)" }
        if !states.isEmpty { title += ", \(states)" }
        if let ttls = stats.destinationTTLs {
            // Rounds that met it only further out: under loss, their probe at its distance went unanswered
            // (with -q 1 one lost probe does it); or the path was longer then. Not a range of distances.
            let later = stats.destinationTTLRounds.filter { $0.key > ttls.lowerBound }.values.reduce(0, +)
            let further = ttls.lowerBound + 1 == ttls.upperBound ? "\(ttls.upperBound)" : "\(ttls.lowerBound + 1)-\(ttls.upperBound)"
            title += ttls.lowerBound == ttls.upperBound ? ", destination at TTL \(ttls.lowerBound)"
                : ", destination at TTL \(ttls.lowerBound) (\(counted(later, "round")) met it first at TTL \(further): "
                    + "nearer probes unanswered, or a longer path)"
        } else {
            title += ", destination not reached"
        }
        return title
    }

    static func markText(_ verdict: HopVerdict?) -> String {
        guard let verdict else { return "" }
        // Not a hop of the path: what rounds that missed the destination at its distance met further out.
        if verdict.pastDestination { return "past the destination (rounds whose nearer probes went unanswered)" }
        var marks: [String] = []
        switch verdict.loss {
        case .none: break
        case .limited: marks.append(verdict.rateLimitCaught ? "limited (rate limit caught)" : "limited")
        case .path: marks.append("path loss")
        case .uncertain:
            marks.append(verdict.rateLimitCaught ? "loss? (rate limit caught, or loss on the path)"
                : verdict.likelyRateLimited ? "loss? (likely rate-limited, or loss on the path)" : "loss? (too few rounds)")
        case .noReply:
            marks.append(verdict.rateLimitCaught ? "no reply (rate-limited)"
                : verdict.likelyRateLimited ? "no reply (likely rate-limited)" : "no reply")
        }
        if verdict.slowAnswers { marks.append("slow answers") }
        return marks.joined(separator: ", ")
    }

    static func label(_ address: IPAddress, _ annotator: HopAnnotator) -> String {
        let annotation = annotator[address]
        var text = annotator.showsNames
            ? "\(annotation.name.map { escapingControlCharacters($0) } ?? address.description) (\(address))" : address.description
        if annotator.showsASN { text += annotation.asn.map { " [AS\($0)]" } ?? " [AS???]" }
        return text
    }

    static func micros(_ value: Double) -> UInt32 { UInt32(min(Double(UInt32.max), max(0, value.rounded()))) }

    static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + fill : fill + text
    }

    static func trimRight(_ text: String) -> String {
        var text = text
        while text.last == " " { text.removeLast() }
        return text
    }
}

/// The report as one JSON object per target × port × protocol. Every key is in docs/report.schema.json; a
/// unit test checks the keys written here against it.
enum ReportJSON {
    /// The `schema` key: the version of this layout.
    static let schemaVersion: UInt64 = 2

    static func line(_ stats: RoundStats, requested: Int, start: UInt64? = nil, _ annotator: HopAnnotator = .plain,
        shard: Shard? = nil) -> String
    {
        var bytes: [UInt8] = []
        write(stats, requested: requested, start: start, annotator, shard: shard, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ stats: RoundStats, requested: Int, start: UInt64?, _ annotator: HopAnnotator,
        shard: Shard? = JSONFormatter.shard, into out: inout [UInt8])
    {
        let request = stats.request
        out.appendLiteral("{\"schema\":")
        out.appendDecimal(schemaVersion)
        out.appendLiteral(",\"type\":\"report\"")
        out.appendShard(shard)
        out.appendTargetKeys(request, method: stats.method)
        out.appendStart(start)
        out.appendLiteral(",\"rounds_requested\":")
        out.appendDecimal(UInt64(requested))
        out.appendLiteral(",\"rounds\":")
        out.appendDecimal(UInt64(stats.rounds))
        out.appendLiteral(",\"interrupted\":")
        out.appendLiteral(stats.rounds < requested || stats.interruptedRounds > 0 ? "true" : "false")
        out.appendLiteral(",\"reached_rounds\":")
        out.appendDecimal(UInt64(stats.reachedRounds))
        out.appendLiteral(",\"states\":")
        appendRoundCounts(stats.states.map { ($0.state == .unknown ? nil : $0.state.rawValue, $0.rounds) },
            opening: "{\"state\":", into: &out)
        out.appendLiteral(",\"stops\":")
        appendRoundCounts(stats.stops.map { ($0.reason.rawValue, $0.rounds) }, opening: "{\"stop\":", into: &out)
        out.appendLiteral(",\"dest_ttl_min\":")
        appendOptional(stats.destinationTTLs.map { UInt64($0.lowerBound) }, into: &out)
        out.appendLiteral(",\"dest_ttl_max\":")
        appendOptional(stats.destinationTTLs.map { UInt64($0.upperBound) }, into: &out)
        let analysis = Interpretation(stats.hops, destinationTTL: stats.destinationTTLs?.lowerBound)
        out.appendLiteral(",\"hops\":")
        writeHops(stats.hops, analysis, annotator, into: &out)
        writeAnalysis(analysis, into: &out)
        out.appendLiteral(",\"paths\":[")
        for (i, path) in stats.paths.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.appendLiteral("{\"id\":\"")
            out.appendText(path.id)
            out.appendLiteral("\",\"rounds\":")
            out.appendDecimal(UInt64(path.rounds))
            out.appendLiteral(",\"addrs\":[")
            for (j, responder) in path.responders.enumerated() {
                if j > 0 { out.append(0x2C) }
                if let responder { out.appendQuoted(responder.description) } else { out.appendLiteral("null") }
            }
            out.appendLiteral("],\"hops\":")
            let own = Interpretation(path.hops, destinationTTL: path.hops.first { $0.hasDestination }?.ttl)
            writeHops(path.hops, own, annotator, into: &out)
            writeAnalysis(own, into: &out)
            out.appendLiteral("}")
        }
        out.appendLiteral("],\"other_path_rounds\":")
        out.appendDecimal(UInt64(stats.otherPathRounds))
        out.appendLiteral("}")
    }

    /// `,"loss":{…},"latency":{…}`.
    static func writeAnalysis(_ analysis: Interpretation, into out: inout [UInt8]) {
        out.appendLiteral(",\"loss\":{\"end_ttl\":")
        appendOptional(analysis.endTTL.map { UInt64($0) }, into: &out)
        out.appendLiteral(",\"end_is_destination\":")
        out.appendLiteral(analysis.endIsDestination ? "true" : "false")
        out.appendLiteral(",\"start_ttl\":")
        appendOptional(analysis.lossStart.map { UInt64($0.ttl) }, into: &out)
        out.appendLiteral(",\"start_ttl_latest\":")
        appendOptional(analysis.lossStart.map { UInt64($0.latestTTL) }, into: &out)
        out.appendLiteral(",\"loss_pct\":")
        if let start = analysis.lossStart { out.appendText(percentNumber(start.lossPercent)) } else { out.appendLiteral("0") }
        out.appendLiteral(",\"increases\":[")
        for (i, increase) in analysis.lossIncreases.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.appendLiteral("{\"ttl\":")
            out.appendDecimal(UInt64(increase.ttl))
            out.appendLiteral(",\"loss_pct\":")
            out.appendText(percentNumber(increase.lossPercent))
            out.appendLiteral("}")
        }
        out.appendLiteral("],\"limited_ttls\":[")
        var first = true
        for hop in analysis.hops where hop.loss == .limited {
            if !first { out.append(0x2C) }
            first = false
            out.appendDecimal(UInt64(hop.ttl))
        }
        out.appendLiteral("],\"note\":")
        out.appendQuoted(analysis.lossNote)
        out.appendLiteral("},\"latency\":{\"rises\":[")
        for (i, rise) in analysis.latencyRises.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.appendLiteral("{\"ttl\":")
            out.appendDecimal(UInt64(rise.ttl))
            out.appendLiteral(",\"added_ms\":")
            out.appendMillis(rise.addedMicros)
            out.appendLiteral("}")
        }
        out.appendLiteral("],\"note\":")
        out.appendQuoted(analysis.latencyNote)
        out.appendLiteral("}")
    }

    static func writeHops(_ hops: [HopStats], _ analysis: Interpretation, _ annotator: HopAnnotator,
        into out: inout [UInt8])
    {
        out.append(0x5B)
        var first = true
        for hop in hops where hop.sent > 0 || hop.inFlight > 0 {
            if !first { out.append(0x2C) }
            first = false
            let verdict = analysis.verdict(for: hop)
            out.appendLiteral("{\"ttl\":")
            out.appendDecimal(UInt64(hop.ttl))
            out.appendLiteral(",\"addr\":")
            if let main = hop.mainResponder { out.appendQuoted(main.address.description) } else { out.appendLiteral("null") }
            if annotator.showsNames {
                out.appendLiteral(",\"name\":")
                if let address = hop.mainResponder?.address, let name = annotator[address].name { out.appendQuoted(name) }
                else { out.appendLiteral("null") }
            }
            // The label stack its main responder last reported (RFC 4950), as a trace line writes it.
            if let stack = hop.mainResponder?.mpls { out.appendMPLS(stack) }
            out.appendLiteral(",\"sent\":")
            out.appendDecimal(UInt64(hop.sent))
            out.appendLiteral(",\"answered\":")
            out.appendDecimal(UInt64(hop.answered))
            out.appendLiteral(",\"in_flight\":")
            out.appendDecimal(UInt64(hop.inFlight))
            out.appendLiteral(",\"loss_pct\":")
            if let loss = hop.lossPercent { out.appendText(percentNumber(loss)) } else { out.appendLiteral("null") }
            out.appendLiteral(",\"rate_limited\":")
            out.appendDecimal(UInt64(hop.rateLimitedSilences))
            out.appendLiteral(",\"likely_rate_limited\":")
            out.appendDecimal(UInt64(hop.likelyRateLimitedSilences))
            out.appendLiteral(",\"mark\":\"")
            out.appendText((verdict?.loss ?? .none).rawValue)
            out.appendLiteral("\",\"rate_limit_caught\":")
            out.appendLiteral(verdict?.rateLimitCaught == true ? "true" : "false")
            out.appendLiteral(",\"slow_answers\":")
            out.appendLiteral(verdict?.slowAnswers == true ? "true" : "false")
            out.appendLiteral(",\"past_destination\":")
            out.appendLiteral(verdict?.pastDestination == true ? "true" : "false")
            out.appendLiteral(",\"rtt\":")
            if hop.rttCount > 0 {
                out.appendLiteral("{\"samples\":")
                out.appendDecimal(UInt64(hop.rttCount))
                let values: [(StaticString, UInt32?)] = [
                    ("\"last_ms\":", hop.last), ("\"best_ms\":", hop.best),
                    ("\"avg_ms\":", hop.average.map(ReportText.micros)), ("\"worst_ms\":", hop.worst),
                    ("\"stddev_ms\":", hop.standardDeviation.map(ReportText.micros)),
                    ("\"p50_ms\":", hop.p50), ("\"p95_ms\":", hop.p95), ("\"p99_ms\":", hop.p99),
                    ("\"javg_ms\":", hop.jitterAverage.map(ReportText.micros)),
                    ("\"jmax_ms\":", hop.rttCount > 1 ? hop.jitterMax : nil),
                ]
                for (key, value) in values {
                    out.append(0x2C)
                    out.appendLiteral(key)
                    if let value { out.appendMillis(value) } else { out.appendLiteral("null") }
                }
                out.appendLiteral("}")
            } else {
                out.appendLiteral("null")
            }
            out.appendLiteral(",\"responders\":[")
            for (i, responder) in hop.responders.enumerated() {
                if i > 0 { out.append(0x2C) }
                out.appendLiteral("{\"addr\":")
                out.appendQuoted(responder.address.description)
                out.appendLiteral(",\"count\":")
                out.appendDecimal(UInt64(responder.count))
                out.appendLiteral(",\"destination\":")
                out.appendLiteral(responder.isDestination ? "true" : "false")
                out.appendLiteral("}")
            }
            out.appendLiteral("],\"other_responders\":")
            out.appendDecimal(UInt64(hop.otherResponders))
            out.appendLiteral("}")
        }
        out.append(0x5D)
    }

    /// `[{"state":"open","rounds":3},…]` (`opening` names the key; a nil value is `null`): rounds by what
    /// they found, for `states` and `stops`.
    static func appendRoundCounts(_ entries: [(value: String?, rounds: Int)], opening: StaticString,
        into out: inout [UInt8])
    {
        out.append(0x5B)
        for (i, entry) in entries.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.appendLiteral(opening)
            if let value = entry.value { out.appendQuoted(value) } else { out.appendLiteral("null") }
            out.appendLiteral(",\"rounds\":")
            out.appendDecimal(UInt64(entry.rounds))
            out.append(0x7D)
        }
        out.append(0x5D)
    }

    static func appendOptional(_ value: UInt64?, into out: inout [UInt8]) {
        if let value { out.appendDecimal(value) } else { out.appendLiteral("null") }
    }

    /// A percentage as a JSON number with one decimal (`12.5`).
    static func percentNumber(_ percent: Double) -> String {
        let text = formatPercent(percent)
        return String(text.dropLast())
    }
}

extension [UInt8] {
    /// `,"shard":"2/3"` with `--shard` (which share of the list this vantage traced), else nothing.
    mutating func appendShard(_ shard: Shard?) {
        guard let shard else { return }
        appendLiteral(",\"shard\":\"")
        appendText(shard.description)
        append(0x22)
    }

    /// What a trace line and a report both open with, each key after a comma: `"target"`, `"name"` (when
    /// the user gave one), `"port"` (left out for ICMP echo, which has none), `"protocol"`, `"family"`,
    /// `"tcp_flags"` (TCP only) and `"source"`.
    mutating func appendTargetKeys(_ request: TraceRequest, method: ProbeMethod) {
        appendLiteral(",\"target\":\"")
        appendAddress(request.destination)
        append(0x22)
        if let name = request.name {
            appendLiteral(",\"name\":")
            appendQuoted(name)
        }
        if method.hasPorts {
            appendLiteral(",\"port\":")
            appendDecimal(UInt64(request.port))
        }
        appendLiteral(",\"protocol\":\"")
        appendText(method.protocolName)
        appendLiteral("\",\"family\":\"")
        appendText(request.family.description)
        if let flags = method.tcpFlags {
            appendLiteral("\",\"tcp_flags\":\"")
            appendText(flags.rawValue)
        }
        appendLiteral("\",\"source\":\"")
        appendAddress(request.source)
        append(0x22)
    }

    /// `,"start":"2026-12-07T00:31:04.015282Z"` (wall clock, ns since 1970), or `,"start":null`.
    mutating func appendStart(_ start: UInt64?) {
        appendLiteral(",\"start\":")
        if let start {
            append(0x22)
            appendTimestamp(start)
            append(0x22)
        } else {
            appendLiteral("null")
        }
    }

    /// `,"mpls":[{"label":…,"tc":…,"s":…,"ttl":…}…]` for the entries kept (top first), and
    /// `,"mpls_depth":N` when the stack was deeper: a trace's hop and a report's hop write it alike.
    mutating func appendMPLS(_ stack: MPLSStack) {
        appendLiteral(",\"mpls\":[")
        for (k, entry) in stack.entries.enumerated() {
            appendLiteral(k > 0 ? ",{\"label\":" : "{\"label\":")
            appendDecimal(UInt64(entry.label))
            appendLiteral(",\"tc\":")
            appendDecimal(UInt64(entry.tc))
            appendLiteral(",\"s\":")
            appendDecimal(entry.bottom ? 1 : 0)
            appendLiteral(",\"ttl\":")
            appendDecimal(UInt64(entry.ttl))
            appendLiteral("}")
        }
        appendLiteral("]")
        if stack.depth > 2 {
            appendLiteral(",\"mpls_depth\":")
            appendDecimal(UInt64(stack.depth))
        }
    }
}
