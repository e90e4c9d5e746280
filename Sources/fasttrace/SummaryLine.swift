// The run's summary line and the hints beside it, as text: what a network engineer asks of a run (how
// many traces, what the ports were, how many probes at what rate and why not faster, which replies
// were refused and why, what rate limiting was caught). Every counter is explained in the README's
// "Summary line" table; keep the two together.

import FastTraceCore
import FastTraceLinux
import FastTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// The summary line of a run (without the target list's tail of skipped lines and duplicates).
/// `rate` and `maxInFlight` are the run's `--rate` and `--max-in-flight`, named where they held it back.
func summaryLine(_ r: RunSummary, rate: Int, maxInFlight: Int, method: ProbeMethod = .tcp(.syn),
    sendPath: SendPathReport? = nil, rounds: Bool = false) -> String {
    // Interrupted before the first probe (but after set-up, so the signal handler did not end the process
    // at once): the same line as an interrupt during set-up, not a summary of nothing.
    if r.cancelled && r.traces == 0 && r.probesSent == 0 { return "fasttrace: interrupted before any probe was sent" }
    let d = r.dispatch
    var parts: [String] = []
    // Traces by what they found: reached (open, closed), filtered, and unknown (cut short by an
    // interrupt before the destination said anything).
    parts.append("fasttrace: \(counted(r.traces, "trace"))")
    // An ACK probe's answer says unfiltered, never open or closed: name what the run could find.
    // An echo reply says the host answers; ICMP has no port to be open or closed.
    parts.append(method.tcpFlags == .ack
        ? "\(r.reached) reached (\(r.unfiltered) unfiltered)"
        : method.hasPorts ? "\(r.reached) reached (\(r.open) open, \(r.closed) closed)" : "\(r.reached) reached")
    // A UDP port nothing answered for is open or filtered: a service may ignore what it does not understand.
    // A trace a router's unreachable stopped is `filtered` (for UDP too: nothing got there): say so, as
    // JSON's `stop` does.
    let byUnreachable = r.unreachable > 0 ? " (\(r.unreachable) stopped by a router's unreachable)" : ""
    if method.protocolName == "udp" {
        parts.append("\(r.openFiltered) open|filtered")
        if r.filtered > 0 { parts.append("\(r.filtered) filtered\(byUnreachable)") }
    } else {
        parts.append("\(r.filtered) filtered\(byUnreachable)")
    }
    if d.unkeyed > 0 {
        let remedy = method == .udp(.byPort) ? "; the built-in DNS and NTP requests are echoed" : ""
        parts.append("\(counted(Int(d.unkeyed), "UDP answer")) carrying nothing that names a probe, not recorded "
            + "(their traces stay open|filtered, marked answer_unmatched\(remedy))")
    }
    if r.unknown > 0 { parts.append("\(r.unknown) unknown (interrupted)") }
    if r.notSent > 0 { parts.append("\(r.notSent) not sent (the kernel refused their probes)") }
    // Probes, over how long, and why not faster.
    let seconds = Double(r.elapsedNanos) / 1e9
    var probes = "\(counted(Int(r.probesSent), "probe")) sent"
        + (r.probesRefused > 0 ? " (\(r.probesRefused) more refused by the kernel)" : "") + " in \(formatSeconds(seconds)) s"
    if r.probesSent > 0 && r.elapsedNanos > 0 {
        probes += " (\(formatRate(r.probesPerSecond)) probes/s over the run"
        if let why = sendLimitText(r.sendLimits, rate: rate, maxInFlight: maxInFlight, rounds: rounds) { probes += ": \(why)" }
        probes += ")"
    }
    parts.append(probes)
    parts.append("\(counted(Int(d.matched), "reply", "replies")) matched")
    // Refused replies: only the reasons that occurred.
    let reasons: [(UInt64, String)] = [
        (d.stale, "stale"), (d.forged, "forged"), (d.ipIDRewritten, "IP ID rewritten"), (d.foreign, "foreign"),
        (d.malformed, "malformed"), (d.premature, "premature"),
    ].filter { $0.0 > 0 }
    parts.append("\(d.rejected) rejected"
        + (reasons.isEmpty ? "" : " (" + reasons.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")"))
    parts.append(counted(Int(d.duplicates), "duplicate reply", "duplicate replies"))
    // Rate limiting: what was caught, or that none was (re-asks go out for any silent hop at a position
    // where a router answers others, limits or not).
    let reasks = counted(Int(r.reasksSent), "re-ask") + " of silent hops"
    if r.rateLimitedHops == 0 && r.likelyRateLimitedHops == 0 && r.rateLimitedPositions == 0 {
        parts.append(r.reasksSent > 0 ? "\(reasks), no rate limit caught" : "no rate limit caught")
    } else {
        parts.append("\(counted(r.rateLimitedHops, "rate-limited hop")), \(r.likelyRateLimitedHops) likely "
            + "rate-limited (\(reasks))")
    }
    if r.reportedBeforeLimits > 0 {
        parts.append("\(counted(r.reportedBeforeLimits, "trace")) reported before any rate limit was caught "
            + "(their * may be rate limits)")
    }
    parts.append(counted(Int(r.transport.ringDrops), "ring drop"))
    if let sendPath { parts.append(sendPathText(sendPath, r.transport)) }
    if r.cancelled {
        // (Continuous mode between rounds: nothing was in flight, so nothing is partial.)
        parts.append(r.interrupted == 0 ? "interrupted: no trace was in flight, none partial"
            : "interrupted: \(counted(r.interrupted, "trace")) partial")
    }
    return parts.joined(separator: ", ")
}

/// What held the rate down, by share of the run's time, largest first (shares under 1 % left out):
/// `93% of the time waiting on replies and timeouts, 7% held to --rate 2000`. Nil when nothing was
/// counted.
func sendLimitText(_ limits: SendLimits, rate: Int, maxInFlight: Int, rounds: Bool = false) -> String? {
    let total = limits.totalNanos
    guard total > 0 else { return nil }
    let shares: [(UInt64, String)] = [
        (limits.sendingNanos, "sending"),
        (limits.rateNanos, "held to --rate \(rate)"),
        (limits.repliesNanos, "waiting on replies and timeouts"),
        (limits.inFlightCapNanos, "at --max-in-flight \(maxInFlight)"),
        (limits.slotsNanos, "waiting for used trace slots to rest"),
        // With rounds, the source is also not ready while every target waits for its next round.
        (limits.listNanos, rounds ? "waiting for the next rounds or the list" : "waiting for the list (reading, name lookups)"),
    ]
    let kept = shares.map { (Int((Double($0.0) * 100 / Double(total)).rounded()), $0.1) }
        .filter { $0.0 >= 1 }.sorted { $0.0 > $1.0 }
    guard let first = kept.first else { return nil }
    return (["\(first.0)% of the time \(first.1)"] + kept.dropFirst().map { "\($0.0)% \($0.1)" })
        .joined(separator: ", ")
}

/// A rate with the precision its size needs: `742`, `13`, `5.2`, `0.83`, `0.0042` (two significant digits below 100). Never `0` for a rate that
/// is not zero.
func formatRate(_ perSecond: Double) -> String {
    if perSecond >= 100 { return String(Int(perSecond.rounded())) }
    if perSecond <= 0 { return "0" }
    // Two significant digits below 100.
    var decimals = 1
    var scaled = perSecond
    while scaled < 10 && decimals < 9 {
        scaled *= 10
        decimals += 1
    }
    decimals -= 1
    let factor = (0..<decimals).reduce(1.0) { acc, _ in acc * 10 }
    let rounded = (perSecond * factor).rounded() / factor
    var text = String(rounded)
    // `String(Double)` may write an exponent for small values; spell it out instead.
    if text.contains("e") {
        let units = Int((perSecond * factor).rounded())
        let digits = String(units)
        text = "0." + String(repeating: "0", count: max(0, decimals - digits.count)) + digits
    }
    if decimals == 0, text.hasSuffix(".0") { text.removeLast(2) }
    return text
}

/// One line for a run in which the kernel refused some probes outright (a probe larger than the route's
/// MTU, a local firewall): their hops show `*` that no network said. Nil when it refused none.
/// The advice for EMSGSIZE names what sets the length for `method`: `-l` (TCP, ICMP echo, UDP with the
/// built-in payloads), or the `--payload-hex` bytes (UDP with them, where `-l` is refused).
func sendRefusalHint(_ t: TransportCounters, packetLength: Int, method: ProbeMethod = .tcp(.syn)) -> String? {
    guard t.sendErrors > 0 else { return nil }
    let call = t.firstSendErrorOnRing ? "send(PACKET_TX_RING)" : "sendmmsg"
    let why = t.firstSendErrno == 0 ? "" : " (first: \(call): \(SystemError.errnoText(t.firstSendErrno)))"
    // Frames the transmit ring's kernel side refused as malformed (TP_STATUS_WRONG_FORMAT) are among them.
    let malformed = t.ringFramesRefused == 0 ? ""
        : ", \(t.ringFramesRefused) of them TX ring frames the kernel marked malformed"
    let lengthAdvice = if case .udp(.fixed(let bytes)) = method {
        "(--payload-hex of \(bytes.count) bytes, \(packetLength) in all); try shorter --payload-hex bytes"
    } else {
        "(-l \(packetLength)); try a smaller -l"
    }
    let advice = t.firstSendErrno == EMSGSIZE ? ": probes larger than the route's MTU \(lengthAdvice)" : ""
    return "fasttrace: the kernel refused \(counted(Int(t.sendErrors), "probe")) before sending\(why)\(malformed)\(advice); "
        + "their * are not the network's answer"
}

/// One line for a run whose router replies came back with the probe's IPv4 ID rewritten on the way
/// (`DispatchCounters.ipIDRewriteSuspected`), or nil.
func ipIDRewriteHint(_ d: DispatchCounters) -> String? {
    guard d.ipIDRewriteSuspected else { return nil }
    return "fasttrace: \(counted(Int(d.ipIDRewritten), "router reply", "router replies")) came back with the "
        + "probe's IP ID rewritten on the way (a NAT or scrubber on the path), so those hops show as *: "
        + "--track-port matches them without the IP ID"
}

/// How the probes left: `sent through the TX ring on veth0`, with how many went through the raw socket
/// beside it (next hops still resolving, routes the ring does not follow), or `sent through the raw
/// socket (TX ring not used: REASON)`.
func sendPathText(_ path: SendPathReport, _ t: TransportCounters) -> String {
    guard path.usesRing else { return "sent through the " + path.summary }
    // Probes the socket took beside the ring, and those it refused there (over the MTU, a firewall): a
    // run whose every probe was refused still says where they went.
    let socket = t.packetsToSocketBesideRing
    let refused = t.socketRefusedBesideRing == 0 ? "" : ", \(t.socketRefusedBesideRing) of them refused"
    if t.packetsSentThroughRing == 0 && socket > 0 {
        // The ring was set up but took nothing (next hops never resolved, routes it does not follow, every
        // probe over the MTU): the probes all went through the socket, and the line says so rather than
        // name the ring.
        return "sent through the raw socket (\(socket)\(refused); the \(path.summary) took none of them: it sends "
            + "only probes within its MTU, on single routes through its interface, to next hops already resolved)"
    }
    return "sent through the " + path.summary + (socket > 0 ? " (\(socket) through the raw socket\(refused))" : "")
}

/// `--verbose`'s line at the end of a run: what reached user space. Each packet read from the receive
/// ring is either a reply to one of the run's probes (matched, a duplicate, or late: verified, but its
/// trace had ended) or something else the kernel's filter let through (foreign, forged, malformed,
/// premature, IP ID rewritten, a UDP answer naming no probe). On a busy host the second count says how
/// much unrelated traffic got past the filter; the filter's own counts say what it kept and dropped.
func receiveLine(_ r: RunSummary) -> String {
    let d = r.dispatch, t = r.transport
    let ours = d.matched + d.duplicates + d.stale
    let other = d.malformed + d.foreign + d.forged + d.ipIDRewritten + d.premature + d.unkeyed
    let filter = if let kept = t.filterKept, let dropped = t.filterDropped {
        "the filter kept \(kept) and dropped \(dropped)"
    } else {
        "the filter's counts unreadable"
    }
    return "fasttrace: receive: \(counted(Int(t.packetsReceived), "packet")) read from the ring (\(filter)): "
        + "\(counted(Int(ours), "reply", "replies")) to our probes (matched, duplicate or late), \(other) other"
}
