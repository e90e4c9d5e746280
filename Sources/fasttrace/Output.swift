// Output formats: tcptraceroute-style text (single target, hop lines printed as hops settle), a text
// block per trace in batch mode, and JSON lines (one object per finished trace, streamed).

import FastTraceCore
import FastTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// Writes results to stdout in batches and messages to stderr directly. Only the thread running the
/// engine (the main thread) writes.
///
/// Results collect in one buffer that goes out with one `write` when it is big (`flushBytes`), when
/// it is older than `flushIntervalNanos` (`flushIfDue`, polled every scheduler turn), and at the end.
/// A failed write of results (ENOSPC, EPIPE, EIO, …) is never ignored: it is kept in `writeError`,
/// nothing more is written to stdout, and the CLI stops the run and exits 1 naming the problem.
enum Out {
    nonisolated(unsafe) private static var buffer: [UInt8] = []
    /// When the buffer last went out (CLOCK_MONOTONIC ns).
    nonisolated(unsafe) private static var lastFlush: UInt64 = 0
    /// The errno of the first failed write to stdout, if any.
    nonisolated(unsafe) private(set) static var writeError: Int32?

    /// Buffered results go out once they reach this size…
    static let flushBytes = 1 << 16
    /// …or once the oldest of them has waited this long.
    static let flushIntervalNanos: UInt64 = 100_000_000

    /// Appends a line of results (written by the next flush).
    static func line(_ text: String) {
        guard writeError == nil else { return }
        if buffer.isEmpty { lastFlush = monotonicNanos() }
        buffer.append(contentsOf: text.utf8)
        buffer.append(0x0A)
        if buffer.count >= flushBytes { flush() }
    }

    /// Appends one trace as a JSON line, formatted straight into the buffer; `start` is its wall-clock
    /// start (`wallNanos(monotonic:)` of its `startNanos`).
    static func json(_ result: TraceResult, start: UInt64?, _ annotator: HopAnnotator = .plain) {
        guard writeError == nil else { return }
        if buffer.isEmpty { lastFlush = monotonicNanos() }
        JSONFormatter.write(result, start: start, annotator, into: &buffer)
        buffer.append(0x0A)
        if buffer.count >= flushBytes { flush() }
    }

    /// Appends what `body` writes (whole lines, newlines included): CSV rows, the DOT graph.
    static func append(_ body: (inout [UInt8]) -> Void) {
        guard writeError == nil else { return }
        if buffer.isEmpty { lastFlush = monotonicNanos() }
        body(&buffer)
        if buffer.count >= flushBytes { flush() }
    }

    /// Writes out whatever is buffered now (wiping the progress line first and drawing it again after,
    /// when one is shown: stdout and stderr are often the same terminal).
    static func flush() {
        defer { buffer.removeAll(keepingCapacity: true) }
        guard writeError == nil, !buffer.isEmpty else { return }
        raw(progress.clear(), fd: 2)
        if let failure = writeAll(1, buffer) { writeError = failure }
        raw(progress.redraw, fd: 2)
    }

    /// The batch progress line on stderr (only drawn on a terminal).
    nonisolated(unsafe) private static var progress = ProgressLine()

    /// Draws `line` as the progress line, over the one shown.
    static func showProgress(_ line: String) { raw(progress.draw(line), fd: 2) }

    /// Wipes the progress line for good.
    static func endProgress() {
        raw(progress.clear(), fd: 2)
        progress.reset()
    }

    /// Flushes if the buffered lines have waited `flushIntervalNanos`. Cheap enough for every turn.
    static func flushIfDue() {
        guard !buffer.isEmpty, monotonicNanos() &- lastFlush >= flushIntervalNanos else { return }
        flush()
    }

    /// Flushes, then throws if any write of results failed.
    static func finish() throws(OutputFailure) {
        flush()
        if let writeError { throw OutputFailure(errno: writeError) }
    }

    /// A message on stderr, on a line of its own (below the progress line, which is drawn again
    /// after it). Control characters in it (from a target file, a name, an argument) are written out
    /// as `\x1b`, never sent to the terminal. A failure to write it cannot be reported anywhere, so it
    /// is not.
    static func error(_ text: String) {
        raw(progress.clear() + escapingControlCharacters(text) + "\n" + progress.redraw, fd: 2)
    }

    /// Unbuffered text on `fd` (stderr: the progress line); write errors are dropped (see `error`).
    static func raw(_ text: String, fd: Int32) {
        guard !text.isEmpty else { return }
        _ = writeAll(fd, Array(text.utf8))
    }

    /// Writes all of `bytes`; returns the errno of a failure, or nil. Retries EINTR; waits for room when
    /// the descriptor is non-blocking.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                offset += n
                continue
            }
            if n == 0 { return EIO }  // no progress on a non-empty write: the device is not taking data
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&pfd, 1, -1) < 0 && errno != EINTR { return errno }
            default: return code
            }
        }
        return nil
    }

    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The wall-clock time (CLOCK_REALTIME, ns since 1970) of a CLOCK_MONOTONIC time `monotonic`, with the
    /// clocks' offset as it is now: called when a trace finishes, so a step of the wall clock during a
    /// long run moves only the traces that start after it.
    static func wallNanos(monotonic: UInt64) -> UInt64 {
        var real = timespec(), mono = timespec()
        clock_gettime(CLOCK_MONOTONIC, &mono)
        clock_gettime(CLOCK_REALTIME, &real)
        let offset = (Int64(real.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000
            + Int64(real.tv_nsec) - Int64(mono.tv_nsec)
        return UInt64(max(0, Int64(bitPattern: monotonic) &+ offset))
    }
}

/// Writing results failed: the run stops and fasttrace exits 1 with `fasttrace: writing results: …`.
struct OutputFailure: Error {
    let errno: Int32
    var message: String { "writing results: " + (strerror(errno).map { String(cString: $0) } ?? "errno \(errno)") }
}

/// Text in tcptraceroute's style. Names and AS numbers come from the `HopAnnotator` each call gets.
struct TextFormatter {
    /// Print tcptraceroute's `Detected DNAT to …` line where a hop's quote first names a new
    /// destination (`--dnat`).
    var showDNAT = false
    /// What the run sends: what a destination's answer means for the port (`[open]`, `[unfiltered]`).
    var method: ProbeMethod = .tcp(.syn)

    /// The lines for one hop: the DNAT notice if `showDNAT` and the translation changed since
    /// `lastTranslation` (which is updated), then the hop line.
    func hopLines(_ hop: HopResult, _ annotator: HopAnnotator, lastTranslation: inout IPAddress?) -> [String] {
        var lines: [String] = []
        if let translated = hop.translatedDestination, translated != lastTranslation {
            if showDNAT { lines.append("      Detected DNAT to \(translated)") }
            lastTranslation = translated
        }
        lines.append(hopLine(hop, annotator))
        return lines
    }

    /// The hop line: ` 1  name (addr)  0.123 ms  0.101 ms  *` (with --asn-db `name (addr) [AS64500]`,
    /// `[AS???]` where the table has no AS), `[open]`/`[closed]` (`[unfiltered]` for ACK probes) after the
    /// destination, `!H`-style marks after unreachable answers, a new address printed where an attempt
    /// met a different router. A probe the run was interrupted before waiting for prints `?`; a hop
    /// whose router the run caught rate-limiting ends in `[rate-limited]`, one where rate limiting is
    /// likely but the router unknown in `[likely rate-limited]`; an unreachable placed here by its
    /// quoted TTL from a deeper probe says `(sent with TTL N)`.
    func hopLine(_ hop: HopResult, _ annotator: HopAnnotator = .plain) -> String {
        var line = hop.ttl < 10 ? " \(hop.ttl) " : "\(hop.ttl) "
        var lastAddress: IPAddress?
        for probe in hop.probes {
            guard let responder = probe.responder, let rtt = probe.rttMicros else {
                line += probe.silence == .interrupted ? " ?" : " *"
                continue
            }
            if responder != lastAddress {
                line += " " + label(responder, annotator)
                // traceroute's mark for the MPLS label stack the router reported (RFC 4950).
                if let stack = probe.mpls { line += mplsMark(stack) }
                if let state = method.portState(for: probe.outcome) {
                    // tcptraceroute's mark for a destination that accepted ECN.
                    line += probe.outcome == .synAckECN ? " [\(state.rawValue), ecn]" : " [\(state.rawValue)]"
                }
                lastAddress = responder
            }
            line += "  " + formatMillis(rtt) + " ms"
            if let (code, family) = probe.outcome.unreachableCode { line += " " + unreachableMark(code, family: family) }
            if let sent = probe.sentTTL { line += " (sent with TTL \(sent))" }
        }
        // The same predicates the summary counts by, so the two cannot disagree.
        if hop.isMarkedRateLimited {
            line += "  [rate-limited]"
        } else if hop.isMarkedLikelyRateLimited {
            line += "  [likely rate-limited]"
        } else if hop.outcome == .none && hop.probes.contains(where: { $0.silence == .unknown }) {
            line += "  [rate-limited or end of path]"
        }
        // Its `*` are ours, not the network's: the kernel refused to send (see `sendRefusalHint`).
        if hop.probes.contains(where: { $0.silence == .notSent }) { line += "  [not sent: refused by the kernel]" }
        return line
    }

    /// `name (addr)` (tcptraceroute prints `addr (addr)` for an address without a name), or `addr`
    /// with -n; then ` [AS64500]` or ` [AS???]` with --asn-db, as mtr -z and traceroute -A show it.
    private func label(_ address: IPAddress, _ annotator: HopAnnotator) -> String {
        let annotation = annotator[address]
        var text = annotator.showsNames
            ? "\(annotation.name.map { escapingControlCharacters($0) } ?? address.description) (\(address))"
            : address.description
        if annotator.showsASN { text += annotation.asn.map { " [AS\($0)]" } ?? " [AS???]" }
        return text
    }

    /// A batch-mode block: a title line, then the hop lines.
    func block(_ result: TraceResult, _ annotator: HopAnnotator = .plain) -> String {
        let target = result.request.name.map { "\($0) (\(result.request.destination))" }
            ?? result.request.destination.description
        let how: String
        switch result.stopReason {
        case .destination: how = "reached at TTL \(result.hops.last?.ttl ?? 0)"
        case .unreachable: how = "unreachable at TTL \(result.hops.last?.ttl ?? 0)"
        case .gapLimit: how = "stopped after \(result.hops.count) TTLs: silent gap"
        case .maxTTL: how = "not reached within TTL \(result.hops.last?.ttl ?? 0)"
        case .interrupted: how = "interrupted after \(result.hops.count) TTLs (partial)"
        case .notSent: how = "not sent from TTL \(result.hops.last?.ttl ?? 0): the kernel refused the probes"
        }
        // An interrupted trace the destination never answered has no state to name (not `filtered`), nor
        // has one whose probes the kernel refused.
        let state = result.state == .unknown ? ""
            : result.answerUnmatched ? "open|filtered (an answer came from the port, but it names no probe, so it cannot be checked), "
            : result.state.rawValue + ", "
        let probes = result.method == .tcp(.syn) ? "" : " (\(result.method))"
        let port = result.method.hasPorts ? " port \(result.request.port)" : ""
        var lines = ["\(target)\(port)\(probes): \(state)\(how)"]
        var lastTranslation: IPAddress?
        for hop in result.hops { lines += hopLines(hop, annotator, lastTranslation: &lastTranslation) }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// traceroute's mark for the MPLS label stack a router reported (RFC 4950), with its leading space:
/// ` <MPLS:L=24001,E=0,S=1,T=1>`, `/+N more` for entries past the two kept. Traces and reports print it.
func mplsMark(_ stack: MPLSStack) -> String { " <MPLS:" + mplsText(stack) + ">" }

/// The stack as the mark spells it inside `<MPLS:…>`: `L=24001,E=0,S=1,T=1`, entries joined by `/`, and
/// `/+N more` for entries past the two kept (CSV's `mpls` column).
func mplsText(_ stack: MPLSStack) -> String {
    stack.entries.map(\.description).joined(separator: "/") + (stack.depth > 2 ? "/+\(stack.depth - 2) more" : "")
}

/// The mark tcptraceroute prints after an ICMP destination unreachable, by code (RFC 792, RFC 1812):
/// its letters exactly, `!<N>` for codes it has none for. ICMPv6 codes (RFC 4443) get traceroute's IPv6
/// marks: `!N` no route, `!X` administratively prohibited, `!S` beyond the source's scope, `!H` address
/// unreachable, `!p` port unreachable from a router, `!<N>` for the rest.
func unreachableMark(_ code: UInt8, family: IPFamily = .v4) -> String {
    if family == .v6 {
        switch code {
        case 0: return "!N"
        case 1: return "!X"
        case 2: return "!S"
        case 3: return "!H"
        case 4: return "!p"
        default: return "!<\(code)>"
        }
    }
    return switch code {
    case 0: "!N"  // network unreachable
    case 1: "!H"  // host unreachable
    case 2: "!P"  // protocol unreachable
    case 3: "!p"  // port unreachable (from a router: unusual for TCP)
    case 4: "!F"  // fragmentation needed and DF set
    case 5: "!S"  // source route failed
    case 6, 7: "!U"  // destination network / host unknown
    case 8: "!I"  // source host isolated
    case 9, 13: "!A"  // network administratively prohibited; communication administratively prohibited
    case 10: "!C"  // host administratively prohibited
    case 11, 12: "!T"  // network / host unreachable for TOS
    default: "!<\(code)>"  // 14 host precedence violation, 15 precedence cutoff, and unassigned codes
    }
}

/// Milliseconds with three decimals from microseconds (`0.051`).
func formatMillis(_ micros: UInt32) -> String {
    let whole = micros / 1000
    let frac = micros % 1000
    let fracText = String(frac)
    return "\(whole)." + String(repeating: "0", count: 3 - fracText.count) + fracText
}

/// JSON lines. Every key is described by `docs/trace.schema.json` (JSON Schema) and the README; a unit
/// test checks that the keys written here are exactly the schema's. `schemaVersion` goes up with any
/// change to the keys or what they mean.
///
/// A trace is written as UTF-8 straight into the output buffer: no String is built, so a trace costs
/// no allocation beyond the buffer's growth (building it as a String, piece by piece, cost about 50
/// mallocs and most of the CLI's own CPU time per trace).
enum JSONFormatter {
    /// The `schema` key of every trace object: the version of this layout.
    static let schemaVersion: UInt64 = 3
    /// The run's `--shard`, written into every trace and report line (`"shard":"2/3"`); nil without it. Set
    /// once, before the run starts.
    nonisolated(unsafe) static var shard: Shard?
    /// `--vantage`, when given: written as `vantage` in every trace object (set once, before the run).
    nonisolated(unsafe) static var vantage: String?

    /// One trace as a line (without the newline), for callers that want a String.
    static func line(_ result: TraceResult, start: UInt64? = nil, _ annotator: HopAnnotator = .plain,
        shard: Shard? = nil, vantage: String? = JSONFormatter.vantage) -> String
    {
        var bytes: [UInt8] = []
        write(result, start: start, annotator, shard: shard, vantage: vantage, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends one trace's object (without the newline) to `out`. `start` is when its first probe was
    /// sent, wall clock, ns since 1970 (null when none was). Hops carry `name` unless -n, and
    /// `asn`/`as_name` with --asn-db (null when unknown), for the hop's `addr`.
    static func write(_ result: TraceResult, start: UInt64?, _ annotator: HopAnnotator, shard: Shard? = JSONFormatter.shard,
        vantage: String? = JSONFormatter.vantage, into out: inout [UInt8])
    {
        out.appendLiteral("{\"schema\":")
        out.appendDecimal(schemaVersion)
        if let vantage {
            out.appendLiteral(",\"vantage\":")
            out.append(contentsOf: quote(vantage).utf8)
        }
        out.appendShard(shard)
        out.appendTargetKeys(result.request, method: result.method)
        out.appendLiteral(",\"sport\":")
        out.appendDecimal(UInt64(result.sourcePort))
        out.appendStart(start)
        out.appendLiteral(result.reached ? ",\"reached\":true,\"state\":" : ",\"reached\":false,\"state\":")
        // null: the trace was interrupted before the destination said anything about the port.
        if result.state == .unknown {
            out.appendLiteral("null")
        } else {
            out.appendLiteral("\"")
            out.appendText(result.state.rawValue)
            out.appendLiteral("\"")
        }
        if result.answerUnmatched { out.appendLiteral(",\"answer_unmatched\":true") }
        out.appendLiteral(",\"stop\":\"")
        out.appendText(result.stopReason.rawValue)
        out.appendLiteral("\",\"dest_ttl\":")
        if let ttl = result.destinationTTL { out.appendDecimal(UInt64(ttl)) } else { out.appendLiteral("null") }
        out.appendLiteral(",\"probes_sent\":")
        out.appendDecimal(UInt64(max(0, result.probesSent)))
        out.appendLiteral(",\"hops\":[")
        for (i, hop) in result.hops.enumerated() {
            if i > 0 { out.appendLiteral(",") }
            out.appendLiteral("{\"ttl\":")
            out.appendDecimal(UInt64(hop.ttl))
            out.appendLiteral(",\"addr\":")
            if let first = hop.firstResponder {
                out.appendLiteral("\"")
                out.appendAddress(first)
                out.appendLiteral("\"")
            } else {
                out.appendLiteral("null")
            }
            if annotator.showsNames || annotator.showsASN {
                let annotation = hop.firstResponder.map { annotator[$0] } ?? HopAnnotation()
                if annotator.showsNames {
                    out.appendLiteral(",\"name\":")
                    if let name = annotation.name { out.appendQuoted(name) } else { out.appendLiteral("null") }
                }
                if annotator.showsASN {
                    out.appendLiteral(",\"asn\":")
                    if let asn = annotation.asn { out.appendDecimal(UInt64(asn)) } else { out.appendLiteral("null") }
                    out.appendLiteral(",\"as_name\":")
                    if let asName = annotation.asName { out.appendQuoted(asName) } else { out.appendLiteral("null") }
                }
            }
            out.appendLiteral(",\"rtt_ms\":[")
            for (j, probe) in hop.probes.enumerated() {
                if j > 0 { out.appendLiteral(",") }
                if let rtt = probe.rttMicros { out.appendMillis(rtt) } else { out.appendLiteral("null") }
            }
            out.appendLiteral("],\"kind\":\"")
            out.appendText(hop.kind)
            out.appendLiteral("\"")
            let outcome = hop.outcome
            let limited = hop.probes.count { $0.silence == .rateLimited }
            if limited > 0 && outcome != .none {
                out.appendLiteral(",\"rate_limited\":")
                out.appendDecimal(UInt64(limited))
            }
            let likely = hop.probes.count { $0.silence == .likelyRateLimited }
            if likely > 0 && outcome != .none {
                out.appendLiteral(",\"likely_rate_limited\":")
                out.appendDecimal(UInt64(likely))
            }
            if let sent = hop.probes.lazy.compactMap(\.sentTTL).first {
                out.appendLiteral(",\"sent_ttl\":")
                out.appendDecimal(UInt64(sent))
            }
            if let (code, _) = outcome.unreachableCode {
                out.appendLiteral(",\"code\":")
                out.appendDecimal(UInt64(code))
            }
            if let translated = hop.translatedDestination {
                out.appendLiteral(",\"dnat\":\"")
                out.appendAddress(translated)
                out.appendLiteral("\"")
            }
            // The MPLS label stack the hop's ICMP extensions reported (RFC 4950), top first; its depth when
            // deeper than the two entries kept.
            if let stack = hop.probes.lazy.compactMap(\.mpls).first { out.appendMPLS(stack) }
            // Every address when attempts met different routers (rare: ECMP without Paris, a route
            // change): only then is the list of distinct addresses built.
            if let first = hop.firstResponder, hop.probes.contains(where: { $0.responder.map { $0 != first } ?? false }) {
                var distinct: [IPAddress] = []
                for p in hop.probes { if let r = p.responder, !distinct.contains(r) { distinct.append(r) } }
                out.appendLiteral(",\"addrs\":[")
                for (k, address) in distinct.enumerated() {
                    out.appendLiteral(k > 0 ? ",\"" : "\"")
                    out.appendAddress(address)
                    out.appendLiteral("\"")
                }
                out.appendLiteral("]")
            }
            out.appendLiteral("}")
        }
        out.appendLiteral("]}")
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case let c where c.value < 0x20: out += unicodeEscape(c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Appending JSON pieces to a byte buffer as UTF-8.
extension [UInt8] {
    /// Literal text (keys, punctuation), copied as is.
    mutating func appendLiteral(_ literal: StaticString) {
        literal.withUTF8Buffer { append(contentsOf: $0) }
    }

    /// Text known to need no escaping (enum raw values: ASCII letters and `-`).
    mutating func appendText(_ string: String) {
        var string = string
        string.withUTF8 { append(contentsOf: $0) }
    }

    /// A JSON string: quotes, backslashes and control characters escaped, the rest as UTF-8.
    mutating func appendQuoted(_ string: String) {
        append(0x22)
        for byte in string.utf8 {
            switch byte {
            case 0x22: appendLiteral("\\\"")
            case 0x5C: appendLiteral("\\\\")
            case 0x0A: appendLiteral("\\n")
            case 0..<0x20, 0x7F:
                appendLiteral("\\u00")
                append(hexDigit(byte >> 4))
                append(hexDigit(byte & 0xF))
            default: append(byte)
            }
        }
        append(0x22)
    }

    private func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10 }

    /// An unsigned integer in decimal.
    mutating func appendDecimal(_ value: UInt64) {
        var divisor: UInt64 = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while true {
            append(0x30 + UInt8(rest / divisor))
            rest %= divisor
            if divisor == 1 { return }
            divisor /= 10
        }
    }

    /// Dotted-quad text for IPv4, RFC 5952 text for IPv6.
    mutating func appendAddress(_ address: IPAddress) {
        guard let v4 = address.ipv4 else {
            for byte in address.description.utf8 { append(byte) }
            return
        }
        appendDecimal(UInt64(v4.value >> 24))
        append(0x2E)
        appendDecimal(UInt64(v4.value >> 16 & 0xFF))
        append(0x2E)
        appendDecimal(UInt64(v4.value >> 8 & 0xFF))
        append(0x2E)
        appendDecimal(UInt64(v4.value & 0xFF))
    }

    /// RFC 3339 UTC with microseconds (`2026-12-07T00:31:02.123456Z`) from ns since 1970.
    mutating func appendTimestamp(_ nanos: UInt64) {
        let seconds = nanos / 1_000_000_000
        let micros = nanos % 1_000_000_000 / 1000
        let (year, month, day) = civilDate(daysSince1970: Int64(seconds / 86_400))
        let secondOfDay = seconds % 86_400
        appendPadded(UInt64(year), width: 4)
        append(0x2D)
        appendPadded(UInt64(month), width: 2)
        append(0x2D)
        appendPadded(UInt64(day), width: 2)
        append(0x54)  // T
        appendPadded(secondOfDay / 3600, width: 2)
        append(0x3A)
        appendPadded(secondOfDay / 60 % 60, width: 2)
        append(0x3A)
        appendPadded(secondOfDay % 60, width: 2)
        append(0x2E)
        appendPadded(micros, width: 6)
        append(0x5A)  // Z
    }

    /// `value` in decimal with leading zeros to `width` digits (values that need more digits get them).
    private mutating func appendPadded(_ value: UInt64, width: Int) {
        var digits = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        for _ in 0..<Swift.max(0, width - digits) { append(0x30) }
        appendDecimal(value)
    }

    /// Milliseconds with three decimals from microseconds (`0.051`), as `formatMillis` writes them.
    mutating func appendMillis(_ micros: UInt32) {
        appendDecimal(UInt64(micros / 1000))
        let fraction = micros % 1000
        append(0x2E)
        append(0x30 + UInt8(fraction / 100))
        append(0x30 + UInt8(fraction / 10 % 10))
        append(0x30 + UInt8(fraction % 10))
    }
}

/// `\u00XX` for a control character.
func unicodeEscape(_ value: UInt32) -> String {
    let hex = String(value, radix: 16)
    return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}


/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
func civilDate(daysSince1970 days: Int64) -> (year: Int64, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
    let month = Int(mp < 10 ? mp + 3 : mp - 9)
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}
