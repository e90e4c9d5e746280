// `--plot FILE.svg` with the rounds' report: per target × port, the RTT distribution at each hop on a
// logarithmic axis (a box from the histogram's quartiles, the median, whiskers from the best RTT to the 95th percentile) above the
// loss at each hop (a bar, coloured by the report's mark), with the hop that adds persisting latency
// shaded and labelled, so where latency and loss start is seen at a glance. Plain SVG text, written once
// when the run ends; every mark carries the numbers it was drawn from (`data-…` attributes, a `<title>`).

import FastTraceCore
import FastTraceLinux
import FastTraceStats
import FastTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// What one hop of one target's report contributes to the picture (kept small: the reports themselves are
/// freed as they are written).
struct PlotHop: Equatable {
    typealias RTT = (best: UInt32, p25: UInt32, p50: UInt32, p75: UInt32, p95: UInt32, samples: Int)
    var ttl: UInt8
    var host: String
    /// RTT quantiles, µs: best, p25, p50, p75, p95, and the number of samples; nil without answers.
    var rtt: RTT?
    var lossPercent: Double?
    var mark: LossMark

    static func == (a: PlotHop, b: PlotHop) -> Bool {
        a.ttl == b.ttl && a.host == b.host && a.lossPercent == b.lossPercent && a.mark == b.mark
            && a.rtt.map { [$0.best, $0.p25, $0.p50, $0.p75, $0.p95, UInt32($0.samples)] }
                == b.rtt.map { [$0.best, $0.p25, $0.p50, $0.p75, $0.p95, UInt32($0.samples)] }
    }
}

/// One target × port's panel.
struct PlotTarget {
    var title: String
    var target: String
    var port: UInt16?
    var hops: [PlotHop]
    /// Hops that add persisting latency (the report's latency line), with what they add, µs.
    var rises: [(ttl: UInt8, addedMicros: UInt32)]
    /// Where the loss that persists starts, if it does.
    var lossStartTTL: UInt8?
}

/// Collects the report of every target × port as it is written; `svg()` draws them all.
/// Where `--plot` writes: the file, opened (created, truncated) before the run drops its capabilities.
struct PlotFile {
    let path: String
    let descriptor: Int32
}

final class PlotBook {
    let path: String
    /// The file opened at the start, or nil: opened at `write()` (tests).
    private let descriptor: Int32?
    private(set) var targets: [PlotTarget] = []

    init(path: String) {
        self.path = path
        descriptor = nil
    }

    init(file: PlotFile) {
        path = file.path
        descriptor = file.descriptor
    }

    /// Adds one report (its statistics over every round, as the text and JSON report give them).
    func add(_ stats: RoundStats, requested: Int, _ annotator: HopAnnotator = .plain) {
        let analysis = Interpretation(stats.hops, destinationTTL: stats.destinationTTLs?.lowerBound)
        var hops: [PlotHop] = []
        for hop in stats.hops where hop.sent > 0 || hop.inFlight > 0 {
            var rtt: PlotHop.RTT?
            if hop.rttCount > 0, let best = hop.best, let p25 = hop.histogram.value(atQuantile: 0.25),
                let p50 = hop.p50, let p75 = hop.histogram.value(atQuantile: 0.75), let p95 = hop.p95
            {
                rtt = (best, p25, p50, p75, p95, hop.rttCount)
            }
            let host = hop.mainResponder.map { ReportText.label($0.address, annotator) }
            hops.append(PlotHop(ttl: hop.ttl, host: host ?? "???", rtt: rtt, lossPercent: hop.lossPercent,
                mark: analysis.verdict(for: hop)?.loss ?? .none))
        }
        targets.append(PlotTarget(title: ReportText.title(stats, requested: requested),
            target: stats.request.destination.description,
            port: stats.method.hasPorts ? stats.request.port : nil, hops: hops,
            rises: analysis.latencyRises.map { ($0.ttl, $0.addedMicros) }, lossStartTTL: analysis.lossStart?.ttl))
    }

    // MARK: drawing

    /// Geometry, in SVG user units (pixels).
    enum Layout {
        static let left = 100.0, right = 20.0, column = 44.0, titleHeight = 30.0
        static let rttHeight = 180.0, gap = 34.0, lossHeight = 70.0, bottom = 40.0
        static var panelHeight: Double { titleHeight + rttHeight + gap + lossHeight + bottom }
    }

    /// The RTT axis of a panel, µs: logarithmic, from the power of ten at or below the least best RTT to the
    /// one at or above the largest 95th percentile (at least one decade), so a near hop's 0.1 ms and a far
    /// one's 20 ms both show their spread.
    static func rttScale(_ hops: [PlotHop]) -> (low: UInt32, high: UInt32) {
        let least = max(1, hops.compactMap { $0.rtt?.best }.min() ?? 100)
        let top = max(least, hops.compactMap { $0.rtt?.p95 }.max() ?? 1000)
        var low: UInt32 = 1
        while low <= least / 10 { low *= 10 }
        var high = low * 10
        while high < top && high <= UInt32.max / 10 { high *= 10 }
        return (low, high)
    }

    /// Where `micros` falls on a panel's RTT axis, 0 (bottom: `low`) to 1 (top: `high`).
    static func rttFraction(_ micros: UInt32, _ scale: (low: UInt32, high: UInt32)) -> Double {
        let v = min(max(Double(micros), Double(scale.low)), Double(scale.high))
        return (log10(v) - log10(Double(scale.low))) / (log10(Double(scale.high)) - log10(Double(scale.low)))
    }

    /// The whole picture as SVG text.
    func svg() -> String {
        let widest = targets.map(\.hops.count).max() ?? 0
        let width = Layout.left + Double(max(widest, 4)) * Layout.column + Layout.right
        let height = max(1, Double(targets.count)) * Layout.panelHeight + 10
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(width))\" height=\"\(n(height))\" "
            + "viewBox=\"0 0 \(n(width)) \(n(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<title>fasttrace rounds: RTT per hop (box p25-p75, line p50, whiskers best-p95) and loss per hop</title>\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        if targets.isEmpty {
            out += "<text x=\"10\" y=\"20\">no report: no round finished</text>\n"
        }
        for (k, target) in targets.enumerated() {
            panel(target, top: 10 + Double(k) * Layout.panelHeight, into: &out)
        }
        out += "</svg>\n"
        return out
    }

    private func panel(_ target: PlotTarget, top: Double, into out: inout String) {
        let scale = Self.rttScale(target.hops)
        let rttTop = top + Layout.titleHeight, rttBottom = rttTop + Layout.rttHeight
        let lossTop = rttBottom + Layout.gap, lossBottom = lossTop + Layout.lossHeight
        let right = Layout.left + Double(max(target.hops.count, 4)) * Layout.column
        func y(_ micros: UInt32) -> Double { rttBottom - Self.rttFraction(micros, scale) * Layout.rttHeight }
        out += "<g class=\"target\" data-target=\"\(escape(target.target))\""
            + (target.port.map { " data-port=\"\($0)\"" } ?? "") + " data-rtt-low-ms=\"\(ms(scale.low))\" data-rtt-high-ms=\"\(ms(scale.high))\">\n"
        out += "<text x=\"10\" y=\"\(n(top + 16))\" font-weight=\"bold\">\(escape(target.title))</text>\n"
        // Axes, grid and labels: RTT in ms at each power of ten, loss in % (0, 50, 100).
        var decade = scale.low
        var decades: [UInt32] = []
        while decade <= scale.high {
            decades.append(decade)
            if decade > UInt32.max / 10 { break }
            decade *= 10
        }
        for micros in decades {
            let label = ms(micros)
            let yy = y(micros)
            out += "<line x1=\"\(n(Layout.left))\" y1=\"\(n(yy))\" x2=\"\(n(right))\" y2=\"\(n(yy))\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(n(Layout.left - 4))\" y=\"\(n(yy + 4))\" text-anchor=\"end\">\(label) ms</text>\n"
        }
        for (fraction, label) in [(0.0, "0"), (0.5, "50"), (1.0, "100")] {
            let yy = lossBottom - fraction * Layout.lossHeight
            out += "<line x1=\"\(n(Layout.left))\" y1=\"\(n(yy))\" x2=\"\(n(right))\" y2=\"\(n(yy))\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(n(Layout.left - 4))\" y=\"\(n(yy + 4))\" text-anchor=\"end\">\(label) %</text>\n"
        }
        out += "<text x=\"10\" y=\"\(n(rttTop + Layout.rttHeight / 2))\" fill=\"#555\">RTT</text>"
        out += "<text x=\"10\" y=\"\(n(lossTop + Layout.lossHeight / 2))\" fill=\"#555\">loss</text>\n"
        for (i, hop) in target.hops.enumerated() {
            let x0 = Layout.left + Double(i) * Layout.column, center = x0 + Layout.column / 2
            let rise = target.rises.first { $0.ttl == hop.ttl }
            // The hop that adds latency that persists: its column shaded, what it adds written above it.
            if let rise {
                out += "<rect class=\"rise\" data-ttl=\"\(hop.ttl)\" data-added-ms=\"\(ms(rise.addedMicros))\" "
                    + "x=\"\(n(x0 + 1))\" y=\"\(n(rttTop))\" width=\"\(n(Layout.column - 2))\" height=\"\(n(Layout.rttHeight))\" "
                    + "fill=\"#fde0dc\"/>"
                out += "<text x=\"\(n(center))\" y=\"\(n(rttTop - 2))\" text-anchor=\"middle\" fill=\"#c0392b\">"
                    + "+\(ms(rise.addedMicros))</text>\n"
            }
            if let rtt = hop.rtt {
                let title = "TTL \(hop.ttl) \(hop.host): \(rtt.samples) RTTs, best \(ms(rtt.best)), p25 \(ms(rtt.p25)), "
                    + "p50 \(ms(rtt.p50)), p75 \(ms(rtt.p75)), p95 \(ms(rtt.p95)) ms"
                out += "<g class=\"rtt\" data-ttl=\"\(hop.ttl)\" data-best-ms=\"\(ms(rtt.best))\" data-p25-ms=\"\(ms(rtt.p25))\" "
                    + "data-p50-ms=\"\(ms(rtt.p50))\" data-p75-ms=\"\(ms(rtt.p75))\" data-p95-ms=\"\(ms(rtt.p95))\" "
                    + "data-samples=\"\(rtt.samples)\"><title>\(escape(title))</title>"
                out += "<line class=\"whisker\" x1=\"\(n(center))\" y1=\"\(n(y(rtt.best)))\" x2=\"\(n(center))\" "
                    + "y2=\"\(n(y(rtt.p95)))\" stroke=\"#333\"/>"
                let boxTop = y(rtt.p75), boxBottom = y(rtt.p25)
                out += "<rect class=\"box\" x=\"\(n(center - 12))\" y=\"\(n(boxTop))\" width=\"24\" "
                    + "height=\"\(n(max(boxBottom - boxTop, 1)))\" fill=\"#8fb8de\" stroke=\"#2c5d8a\"/>"
                out += "<line class=\"median\" x1=\"\(n(center - 12))\" y1=\"\(n(y(rtt.p50)))\" x2=\"\(n(center + 12))\" "
                    + "y2=\"\(n(y(rtt.p50)))\" stroke=\"#000\" stroke-width=\"2\"/></g>\n"
            }
            if let loss = hop.lossPercent {
                // At least a hairline, so a hop measured without loss shows that it was measured.
                let height = max(loss / 100 * Layout.lossHeight, 1)
                let title = escape("TTL \(hop.ttl) \(hop.host): \(formatPercent(loss)) loss (\(hop.mark.rawValue))")
                out += "<rect class=\"loss\" data-ttl=\"\(hop.ttl)\" data-loss-pct=\"\(formatPercentNumber(loss))\" "
                    + "data-mark=\"\(hop.mark.rawValue)\" x=\"\(n(center - 12))\" y=\"\(n(lossBottom - height))\" width=\"24\" "
                    + "height=\"\(n(height))\" fill=\"\(Self.colour(hop.mark))\"><title>\(title)</title></rect>"
                if loss > 0 {
                    out += "<text x=\"\(n(center))\" y=\"\(n(lossBottom - height - 2))\" text-anchor=\"middle\" "
                        + "font-size=\"9\">\(formatPercentNumber(loss))</text>"
                }
                out += "\n"
            }
            // The TTL under both panels; where the persisting loss starts, marked.
            out += "<text x=\"\(n(center))\" y=\"\(n(lossBottom + 14))\" text-anchor=\"middle\">\(hop.ttl)</text>"
            if target.lossStartTTL == hop.ttl {
                out += "<text class=\"loss-start\" data-ttl=\"\(hop.ttl)\" x=\"\(n(center))\" y=\"\(n(lossBottom + 28))\" "
                    + "text-anchor=\"middle\" fill=\"#c0392b\" font-size=\"9\">loss starts</text>"
            }
            out += "\n"
        }
        out += "<text x=\"\(n((Layout.left + right) / 2))\" y=\"\(n(lossBottom + 36))\" text-anchor=\"middle\" "
            + "fill=\"#555\">TTL</text>\n</g>\n"
    }

    /// The loss bar's colour for the report's mark.
    static func colour(_ mark: LossMark) -> String {
        switch mark {
        case .path: "#d62728"
        case .limited: "#ff9f40"
        case .uncertain: "#bcbd22"
        case .noReply: "#9a9a9a"
        case .none: "#2ca02c"
        }
    }

    /// Writes the picture to `path` (created or truncated). Nil when written, else the one line that says why not.
    func write() -> String? {
        let bytes = Array(svg().utf8)
        let fd = descriptor ?? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "--plot \(path): cannot write: \(SystemError.errnoText(errno))" }
        // The file opened at the start is emptied only now, when the picture is written.
        if descriptor != nil && ftruncate(fd, 0) != 0 && errno != EINVAL {
            let code = errno
            _ = close(fd)
            return "--plot \(path): cannot write: \(SystemError.errnoText(code))"
        }
        if let code = Out.writeAll(fd, bytes) {
            _ = close(fd)
            return "--plot \(path): cannot write: \(SystemError.errnoText(code))"
        }
        // A full disk or a network file system may say so only at close.
        if close(fd) != 0 { return "--plot \(path): cannot write: \(SystemError.errnoText(errno))" }
        return nil
    }
}

/// A coordinate with one decimal, `12.5`, `180` (no exponent, no trailing `.0`).
private func n(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(abs(tenths % 10))"
}

/// µs as ms with three decimals, as the report prints them.
private func ms(_ micros: UInt32) -> String { formatMillisText(micros) }

/// A percentage as a number with one decimal (`12.5`).
private func formatPercentNumber(_ percent: Double) -> String { n(percent) }

/// Text for SVG: `&`, `<`, `>` and `"` as entities, control characters dropped.
func escape(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case let c where c.value < 0x20 || c.value == 0x7F: continue
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out
}
