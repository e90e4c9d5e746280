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

    /// Writes out whatever is buffered now.
    static func flush() {
        defer { buffer.removeAll(keepingCapacity: true) }
        guard writeError == nil, !buffer.isEmpty else { return }
        if let failure = writeAll(1, buffer) { writeError = failure }
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

    /// A message on stderr. A failure to write it cannot be reported anywhere, so it is not.
    static func error(_ text: String) { raw(text + "\n", fd: 2) }

    /// Unbuffered text on `fd` (stderr: the progress line); write errors are dropped (see `error`).
    static func raw(_ text: String, fd: Int32) { _ = writeAll(fd, Array(text.utf8)) }

    /// Writes all of `bytes`; returns the errno of a failure, or nil. Retries EINTR; waits for room when
    /// the descriptor is non-blocking.
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
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

    private static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Writing results failed: the run stops and fasttrace exits 1 with `fasttrace: writing results: …`.
struct OutputFailure: Error {
    let errno: Int32
    var message: String { "writing results: " + (strerror(errno).map { String(cString: $0) } ?? "errno \(errno)") }
}

/// Text in tcptraceroute's style.
struct TextFormatter {
    /// Names for addresses (nil: numeric output).
    var names: ReverseNames?
    /// Print tcptraceroute's `Detected DNAT to …` line where a hop's quote first names a new
    /// destination (`--dnat`).
    var showDNAT = false

    /// The lines for one hop: the DNAT notice if `showDNAT` and the translation changed since
    /// `lastTranslation` (which is updated), then the hop line.
    func hopLines(_ hop: HopResult, lastTranslation: inout IPv4Address?) -> [String] {
        var lines: [String] = []
        if let translated = hop.translatedDestination, translated != lastTranslation {
            if showDNAT { lines.append("      Detected DNAT to \(translated)") }
            lastTranslation = translated
        }
        lines.append(hopLine(hop))
        return lines
    }

    /// The hop line: ` 1  name (addr)  0.123 ms  0.101 ms  *`, `[open]`/`[closed]` after the
    /// destination, `!H`-style marks after unreachable answers, a new address printed where an attempt
    /// met a different router. A probe the run was interrupted before waiting for prints `?`; a hop
    /// whose silence rate limiting explains ends in `[rate-limited]`.
    func hopLine(_ hop: HopResult) -> String {
        var line = hop.ttl < 10 ? " \(hop.ttl) " : "\(hop.ttl) "
        var lastAddress: IPv4Address?
        for probe in hop.probes {
            guard let responder = probe.responder, let rtt = probe.rttMicros else {
                line += probe.silence == .interrupted ? " ?" : " *"
                continue
            }
            if responder != lastAddress {
                line += " " + label(responder)
                if probe.outcome == .synAck { line += " [open]" }
                if probe.outcome == .reset { line += " [closed]" }
                lastAddress = responder
            }
            line += "  " + formatMillis(rtt) + " ms"
            if case .unreachable(let code) = probe.outcome { line += " " + unreachableMark(code) }
        }
        if hop.probes.contains(where: { $0.silence == .rateLimited }) { line += "  [rate-limited]" }
        return line
    }

    private func label(_ address: IPv4Address) -> String {
        guard let names else { return address.description }
        return "\(names.name(for: address) ?? address.description) (\(address))"
    }

    /// A batch-mode block: a title line, then the hop lines.
    func block(_ result: TraceResult) -> String {
        let target = result.request.name.map { "\($0) (\(result.request.destination))" }
            ?? result.request.destination.description
        let how: String
        switch result.stopReason {
        case .destination: how = "reached at TTL \(result.hops.last?.ttl ?? 0)"
        case .unreachable: how = "unreachable at TTL \(result.hops.last?.ttl ?? 0)"
        case .gapLimit: how = "stopped after \(result.hops.count) TTLs: silent gap"
        case .maxTTL: how = "not reached within TTL \(result.hops.last?.ttl ?? 0)"
        case .interrupted: how = "interrupted after \(result.hops.count) TTLs (partial)"
        }
        var lines = ["\(target) port \(result.request.port): \(result.state.rawValue), \(how)"]
        var lastTranslation: IPv4Address?
        for hop in result.hops { lines += hopLines(hop, lastTranslation: &lastTranslation) }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The `!X` mark traceroute prints after an unreachable answer.
func unreachableMark(_ code: UInt8) -> String {
    switch code {
    case 0: "!N"
    case 1: "!H"
    case 2: "!P"
    case 3: "!"  // port unreachable from a router: unusual for TCP
    case 4: "!F"
    case 5: "!S"
    case 9, 10, 13: "!X"
    default: "!<\(code)>"
    }
}

/// Milliseconds with three decimals from microseconds (`0.051`).
func formatMillis(_ micros: UInt32) -> String {
    let whole = micros / 1000
    let frac = micros % 1000
    let fracText = String(frac)
    return "\(whole)." + String(repeating: "0", count: 3 - fracText.count) + fracText
}

/// JSON lines. The schema is documented in the README; keys are stable.
enum JSONFormatter {
    static func line(_ result: TraceResult) -> String {
        var s = "{\"target\":\"\(result.request.destination)\""
        if let name = result.request.name { s += ",\"name\":\(quote(name))" }
        s += ",\"port\":\(result.request.port),\"protocol\":\"tcp\""
        s += ",\"source\":\"\(result.request.source)\",\"sport\":\(result.sourcePort)"
        s += ",\"reached\":\(result.reached),\"state\":\"\(result.state.rawValue)\""
        s += ",\"stop\":\"\(result.stopReason.rawValue)\",\"probes_sent\":\(result.probesSent)"
        s += ",\"hops\":["
        for (i, hop) in result.hops.enumerated() {
            if i > 0 { s += "," }
            s += "{\"ttl\":\(hop.ttl),\"addr\":"
            s += hop.firstResponder.map { "\"\($0)\"" } ?? "null"
            s += ",\"rtt_ms\":["
            s += hop.probes.map { p in p.rttMicros.map { formatMillis($0) } ?? "null" }.joined(separator: ",")
            s += "],\"kind\":\"\(hop.kind)\""
            let limited = hop.probes.count { $0.silence == .rateLimited }
            if limited > 0 && hop.outcome != .none { s += ",\"rate_limited\":\(limited)" }
            if case .unreachable(let code) = hop.outcome { s += ",\"code\":\(code)" }
            if let translated = hop.translatedDestination { s += ",\"dnat\":\"\(translated)\"" }
            var distinct: [IPv4Address] = []
            for p in hop.probes { if let r = p.responder, !distinct.contains(r) { distinct.append(r) } }
            if distinct.count > 1 { s += ",\"addrs\":[" + distinct.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
            s += "}"
        }
        return s + "]}"
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

/// `\u00XX` for a control character.
func unicodeEscape(_ value: UInt32) -> String {
    let hex = String(value, radix: 16)
    return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}
