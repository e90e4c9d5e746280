// What fasttrace writes to a terminal beyond its results: the batch progress line on stderr, kept off
// the result lines, and messages with control characters made visible, so a hostile target file (or
// name) cannot drive the terminal with escape sequences.

import FastTraceLinux

/// `text` with every control character written out: C0 controls and DEL as `\x1b`, C1 controls (which
/// some terminals obey as well: U+009B is CSI) and invisible characters (format characters, separators
/// other than the plain space) as `\u{9b}`. Tab stays as it is, and so do `kept` ones.
func escapingControlCharacters(_ text: String, keeping kept: Set<Unicode.Scalar> = []) -> String {
    let escapes = { (scalar: Unicode.Scalar) in isControl(scalar) && !kept.contains(scalar) }
    guard text.unicodeScalars.contains(where: escapes) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        guard escapes(scalar) else {
            out.unicodeScalars.append(scalar)
            continue
        }
        let hex = String(scalar.value, radix: 16)
        out += scalar.value < 0x80
            ? "\\x" + (hex.count < 2 ? "0" : "") + hex
            : "\\u{" + hex + "}"
    }
    return out
}

/// A control character, or one that shows as nothing or as a plain space although it is not one (a
/// zero-width space, a direction override, a no-break space, a BOM, a line separator): in a quoted
/// input, `'198.18.0.1\u{200b}'` says why the line was refused where `'198.18.0.1'` would not.
private func isControl(_ scalar: Unicode.Scalar) -> Bool {
    if (scalar.value < 0x20 && scalar != "\t") || (0x7F...0x9F).contains(scalar.value) { return true }
    guard scalar.value >= 0xA0 else { return false }
    switch scalar.properties.generalCategory {
    case .format, .lineSeparator, .paragraphSeparator, .spaceSeparator: return true
    default: return false
    }
}

/// The progress line on stderr (batch mode on a terminal). Results are written to stdout, which is
/// often the same terminal: before they go out the progress line is wiped, and it is drawn again
/// after them, so no result line ever starts in the middle of it.
struct ProgressLine {
    /// The line as last drawn (without the leading `\r`); empty when nothing is shown.
    private(set) var shown = ""

    /// The text that draws `line` over the one shown: to the start of the line, the new text, and
    /// spaces over whatever of the old one it does not cover.
    mutating func draw(_ line: String) -> String {
        let pad = max(0, shown.count - line.count)
        shown = line
        return "\r" + line + String(repeating: " ", count: pad)
    }

    /// The text that wipes the line shown (nothing if none): the cursor ends at its start.
    func clear() -> String {
        shown.isEmpty ? "" : "\r" + String(repeating: " ", count: shown.count) + "\r"
    }

    /// The text that draws the line again after results went out below it.
    var redraw: String { shown.isEmpty ? "" : "\r" + shown }

    /// Forgets the line (after `clear()` for good).
    mutating func reset() { shown = "" }
}

/// The current probe rate for the progress line: probes sent over about the last second. The engine
/// reports every quarter second; over so short a window a batch waiting on timeouts swings between
/// bursts and 0 probes/s, while an average since the start hides what is happening now.
struct RecentRate {
    /// How far back the rate looks.
    var windowNanos: UInt64 = 1_000_000_000
    /// (time, probes sent so far), oldest first, spanning at most one window before the newest.
    private var samples: [(nanos: UInt64, probes: UInt64)] = []

    init(windowNanos: UInt64 = 1_000_000_000) { self.windowNanos = windowNanos }

    /// Records `probes` sent in all at `nanos` (monotonic) and returns the rate since the oldest
    /// sample still in the window (0 for the first sample).
    mutating func update(probes: UInt64, at nanos: UInt64) -> Double {
        samples.append((nanos, probes))
        // Keep one sample at or before the window's start, so the rate spans the whole window.
        while samples.count > 2 && nanos &- samples[1].nanos >= windowNanos { samples.removeFirst() }
        guard let first = samples.first, nanos > first.nanos else { return 0 }
        return Double(probes &- first.probes) / (Double(nanos - first.nanos) / 1e9)
    }
}

/// The batch progress line: traces done out of the list's total when it is known (exactly, or as
/// counted ahead: see `TargetStream.Total`), what is in flight, and the send rate over the last second.
/// Without a total it says why: a regular file still being counted, or a pipe still being read.
func progressText(finished: Int, total: TargetStream.Total, inFlight: Int, probes: UInt64, perSecond: Int) -> String {
    let done = switch total {
    case .exact(let n), .expected(let n): "\(grouped(finished))/\(grouped(n)) traces"
    case .counting: "\(grouped(finished)) traces done, list still being counted"
    case .unknown: "\(grouped(finished)) traces done, list still being read"
    }
    return "[fasttrace] \(done), \(grouped(inFlight)) in flight, \(grouped(Int(probes))) probes, \(grouped(perSecond)) probes/s"
}

/// `n` with a comma between thousands: `20,000`.
func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, digit) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(digit)
    }
    return (n < 0 ? "-" : "") + out
}
