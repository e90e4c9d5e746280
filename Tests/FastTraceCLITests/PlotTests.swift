// `--plot FILE.svg` (issue 12): the picture of the rounds' reports renders (rsvg-convert, from Debian's
// librsvg2-bin, to PNG, read back pixel by pixel), and its marks are the report's statistics: each box's
// quartiles, median and whiskers, each loss bar's height and colour, the hop that adds latency shaded.
// A file that cannot be written is one line.

import FastTraceCore
import FastTraceStats
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

private let plotTarget = IPv4Address(198, 51, 100, 9)

/// 30 rounds: hops 1-3 near (0.1-0.3 ms, jittery), hop 4 adds 20 ms that persists; every third round's
/// probes are lost from hop 3 on (path loss starting there).
private func plotStats() -> RoundStats {
    let request = TraceRequest(index: 0, destination: plotTarget, port: 443, source: IPv4Address(192, 0, 2, 1))
    var stats = RoundStats(request: request, method: .tcp(.syn))
    for round in 0..<30 {
        var hops: [HopResult] = []
        for ttl in UInt8(1)...5 {
            let lost = round % 3 == 0 && ttl >= 3
            if lost {
                hops.append(HopResult(ttl: ttl, probes: [.silent]))
                continue
            }
            let rtt = UInt32(ttl) * 100 + UInt32(round % 5) * 40 + (ttl >= 4 ? 20_000 : 0)
            let responder = ttl == 5 ? plotTarget : IPv4Address(198, 18, 0, 4 * ttl - 3)
            hops.append(HopResult(ttl: ttl, probes: [ProbeResult(responder: responder, rttMicros: rtt,
                outcome: ttl == 5 ? .synAck : .timeExceeded)]))
        }
        let reached = round % 3 != 0
        stats.add(TraceResult(request: request, hops: hops, reached: reached, state: reached ? .open : .filtered,
            stopReason: reached ? .destination : .maxTTL, sourcePort: 40000, probesSent: 5))
    }
    return stats
}

/// The attributes of every element of `svg` with `class="…"` `name`, in order.
private func elements(_ svg: String, class name: String) -> [[String: String]] {
    var found: [[String: String]] = []
    for line in svg.split(separator: "<") where line.contains("class=\"\(name)\"") {
        var attributes: [String: String] = [:]
        for match in line.matches(of: /([a-z0-9-]+)="([^"]*)"/) { attributes[String(match.1)] = String(match.2) }
        found.append(attributes)
    }
    return found
}

/// Reads a PNG (8-bit RGB or RGBA, as rsvg-convert writes) and prints `width height`, then the colour of
/// each pixel asked for on stdin (`x y` lines) as `rrggbb`. Python's zlib and the PNG filters, nothing else.
private let pngReader = #"""
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(data):
    length, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + length]; pos += 12 + length
    if kind == b'IHDR': width, height, depth, colour = struct.unpack('>IIBB', body[:10])
    if kind == b'IDAT': idat += body
assert depth == 8 and colour in (2, 6), (depth, colour)
bpp = 3 if colour == 2 else 4
raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
for y in range(height):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
print(width, height)
for request in sys.stdin.read().split('\n'):
    if request.strip():
        x, y = map(int, request.split()); px = rows[y][x * bpp:x * bpp + 3]
        print('%02x%02x%02x' % tuple(px))
"""#

@Suite struct PlotTests {
    @Test("each hop's box, median and whiskers are its RTT quartiles, p50, best and p95; each loss bar its loss and mark")
    func marksAreTheStatistics() throws {
        let stats = plotStats()
        let book = PlotBook(path: "/nonexistent")
        book.add(stats, requested: 30)
        let svg = book.svg()
        let analysis = Interpretation(stats.hops, destinationTTL: stats.destinationTTLs?.lowerBound)
        let boxes = elements(svg, class: "rtt")
        #expect(boxes.count == 5)
        // A log axis from the decade below the best RTT (0.1 ms) to the one above the largest p95 (100 ms).
        let panel = try #require(elements(svg, class: "target").first)
        #expect(panel["data-rtt-low-ms"] == "0.100" && panel["data-rtt-high-ms"] == "100.000", "\(panel)")
        let rttBottom = 10 + PlotBook.Layout.titleHeight + PlotBook.Layout.rttHeight
        func y(_ micros: UInt32) -> Double { rttBottom - (log10(Double(micros)) - 2) / 3 * PlotBook.Layout.rttHeight }
        for hop in stats.hops {
            let box = try #require(boxes.first { $0["data-ttl"] == "\(hop.ttl)" })
            let quartiles = (hop.histogram.value(atQuantile: 0.25)!, hop.histogram.value(atQuantile: 0.75)!)
            #expect(box["data-best-ms"] == formatMillisText(hop.best!) && box["data-p50-ms"] == formatMillisText(hop.p50!)
                && box["data-p95-ms"] == formatMillisText(hop.p95!) && box["data-p25-ms"] == formatMillisText(quartiles.0)
                && box["data-p75-ms"] == formatMillisText(quartiles.1) && box["data-samples"] == "\(hop.rttCount)", "\(box)")
            // The drawn geometry is those numbers on the panel's scale (to the 0.1 unit written).
            let rect = try #require(elements(svg, class: "box").first { abs(Double($0["y"]!)! - y(quartiles.1)) < 0.06 },
                "TTL \(hop.ttl): no box from y(p75) = \(y(quartiles.1))")
            #expect(abs(Double(rect["y"]!)! + Double(rect["height"]!)! - max(y(quartiles.0), y(quartiles.1) + 1)) < 0.11)
            let loss = try #require(elements(svg, class: "loss").first { $0["data-ttl"] == "\(hop.ttl)" })
            let verdict = try #require(analysis.hops.first { $0.ttl == hop.ttl })
            #expect(loss["data-loss-pct"] == String(format: "%.1f", hop.lossPercent!).replacingOccurrences(of: ".0", with: "")
                && loss["data-mark"] == verdict.loss.rawValue && loss["fill"] == PlotBook.colour(verdict.loss), "\(loss)")
        }
        // Loss from hop 3 on is path loss (a third of the rounds), and hop 4 adds the 20 ms that persists.
        #expect(elements(svg, class: "loss").map { $0["data-mark"] ?? "" } == ["none", "none", "path", "path", "path"])
        let rise = try #require(elements(svg, class: "rise").first)
        #expect(rise["data-ttl"] == "4" && rise["data-added-ms"] == formatMillisText(analysis.latencyRises[0].addedMicros))
        #expect(elements(svg, class: "loss-start").first?["data-ttl"] == "3")
    }

    @Test("the SVG renders (rsvg-convert to PNG) at its size, with the boxes, loss bars and shading where drawn")
    func renders() throws {
        let stats = plotStats()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-plot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let svgPath = dir.appendingPathComponent("plot.svg").path, pngPath = dir.appendingPathComponent("plot.png").path
        let book = PlotBook(path: svgPath)
        book.add(stats, requested: 30)
        book.add(stats, requested: 30)  // a second panel below the first
        #expect(book.write() == nil)
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        let rsvg = try #require(toolPath("rsvg-convert"), "rsvg-convert (librsvg2-bin, scripts/install-deps.sh)")
        let converted = try runTool([rsvg, "-o", pngPath, svgPath], input: "")
        #expect(converted.status == 0, "\(converted.stderr)")
        // Probe points: the middle of hop 1's box (its quartiles straddle it), hop 4's shading above its box,
        // hop 3's path-loss bar, and the white margin; in the second panel too.
        let width = try #require(svg.firstMatch(of: /width="([0-9.]+)"/).flatMap { Double($0.1) })
        let height = try #require(svg.firstMatch(of: /height="([0-9.]+)"/).flatMap { Double($0.1) })
        let boxes = elements(svg, class: "box"), bars = elements(svg, class: "loss"), rises = elements(svg, class: "rise")
        func middle(_ e: [String: String]) -> (Int, Int) {
            (Int(Double(e["x"]!)! + Double(e["width"]!)! / 2), Int(Double(e["y"]!)! + Double(e["height"]!)! / 2))
        }
        // A box's fill halfway between the median line and the box's edge farther from it.
        let medians = elements(svg, class: "median")
        func inBox(_ i: Int) -> (Int, Int) {
            let top = Double(boxes[i]["y"]!)!, bottom = top + Double(boxes[i]["height"]!)!
            let median = Double(medians[i]["y1"]!)!
            return (middle(boxes[i]).0, Int(median - top > bottom - median ? (top + median) / 2 : (median + bottom) / 2))
        }
        let points = [inBox(0), (middle(rises[0]).0, Int(Double(rises[0]["y"]!)! + 3)), middle(bars[2]), (3, 3),
            inBox(5), middle(bars[7])]
        let read = try runTool(["python3", "-c", pngReader, pngPath],
            input: points.map { "\($0.0) \($0.1)" }.joined(separator: "\n"))
        let lines = read.stdout.split(separator: "\n").map(String.init)
        #expect(read.status == 0 && lines.count == 7, "\(read.stdout)\(read.stderr)")
        #expect(lines.first == "\(Int(width)) \(Int(height))")
        #expect(Array(lines.dropFirst()) == ["8fb8de", "fde0dc", "d62728", "ffffff", "8fb8de", "d62728"],
            "\(lines) at \(points): \(boxes[0])")
    }

    @Test("a file that cannot be written is one line naming it and why (a full disk: /dev/full)")
    func writeErrors() {
        let book = PlotBook(path: "/dev/full")
        book.add(plotStats(), requested: 30)
        #expect(book.write() == "--plot /dev/full: cannot write: No space left on device (ENOSPC)")
        let missing = PlotBook(path: "/nonexistent-dir/plot.svg")
        #expect(missing.write() == "--plot /nonexistent-dir/plot.svg: cannot write: No such file or directory (ENOENT)")
    }

    @Test("--plot goes with the rounds' report, and needs a name")
    func plotNeedsRounds() throws {
        func failure(_ arguments: [String]) -> String? {
            do { try FastTrace.parse(arguments).checkPlot() } catch let error as UsageFailure { return error.message } catch {
                return "\(error)"
            }
            return nil
        }
        #expect(failure(["--plot", "x.svg", "198.51.100.7", "443"]) == "--plot: draws the rounds' report: give -c N or --report")
        #expect(failure(["--plot", "", "-c", "3", "198.51.100.7", "443"]) == "--plot: needs a file name (FILE.svg)")
        #expect(failure(["--plot", "x.svg", "-c", "3", "198.51.100.7", "443"]) == nil)
        #expect(failure(["--plot", "x.svg", "--report", "--targets", "-", "-p", "443"]) == nil)
    }
}
