// The summary line as a network engineer reads it (issue 13, item 10) and the one-line hint for a path
// that rewrites the IP ID (item 11), tested on the functions that write them.

import FastTraceCore
import FastTraceWire
import Testing

@testable import fasttrace
@testable import FastTraceLinux

@Suite struct SummaryLineTests {
    /// A small run: 8 traces, 10 probes over 12 s, nothing caught.
    static func smallRun() -> RunSummary {
        var r = RunSummary()
        r.traces = 8
        r.reached = 3
        r.open = 2
        r.closed = 1
        r.filtered = 4
        r.unknown = 1
        r.probesSent = 10
        r.elapsedNanos = 12_040_000_000
        r.dispatch.matched = 9
        r.reasksSent = 129
        r.sendLimits.repliesNanos = 11_000_000_000
        r.sendLimits.rateNanos = 1_040_000_000
        return r
    }

    @Test func portStatesAreBrokenDown() {
        let line = summaryLine(Self.smallRun(), rate: 2000, maxInFlight: 4096)
        #expect(line.hasPrefix("fasttrace: 8 traces, 3 reached (2 open, 1 closed), 4 filtered, 1 unknown (interrupted), "),
            "\(line)")
    }

    @Test("Interrupted after set-up but before the first probe: the line of an interrupt during set-up, no summary of nothing")
    func interruptedBeforeAnyProbe() {
        var r = RunSummary()
        r.cancelled = true
        r.elapsedNanos = 3_200_000
        #expect(summaryLine(r, rate: 20000, maxInFlight: 4096) == "fasttrace: interrupted before any probe was sent")
        // One probe out (or one trace reported) and the summary is the run's.
        r.probesSent = 1
        r.traces = 1
        r.interrupted = 1
        #expect(summaryLine(r, rate: 20000, maxInFlight: 4096).hasPrefix("fasttrace: 1 trace, 0 reached"))
        #expect(summaryLine(r, rate: 20000, maxInFlight: 4096).hasSuffix(", interrupted: 1 trace partial"))
        // Between rounds of continuous mode nothing is in flight: not "0 traces partial" (a trial).
        r.interrupted = 0
        #expect(summaryLine(r, rate: 20000, maxInFlight: 4096).hasSuffix(", interrupted: no trace was in flight, none partial"))
    }

    @Test func re_asksWithoutARateLimitDoNotSayRateLimited() {
        let line = summaryLine(Self.smallRun(), rate: 2000, maxInFlight: 4096)
        #expect(line.contains(", 129 re-asks of silent hops, no rate limit caught,"), "\(line)")
        #expect(!line.contains("rate-limited"), "\(line)")
        var caught = Self.smallRun()
        caught.rateLimitedHops = 12
        caught.likelyRateLimitedHops = 2
        caught.rateLimitedPositions = 3
        let limited = summaryLine(caught, rate: 2000, maxInFlight: 4096)
        #expect(limited.contains(", 12 rate-limited hops, 2 likely rate-limited (129 re-asks of silent hops),"), "\(limited)")
    }

    @Test func theRateSaysOverWhatAndWhyItIsBelowTheLimit() {
        let line = summaryLine(Self.smallRun(), rate: 2000, maxInFlight: 4096)
        // 10 probes in 12 s is 0.83 probes/s, not "0 probes/s"; the time is split by what held it back.
        #expect(line.contains(", 10 probes sent in 12.04 s (0.83 probes/s over the run: 91% of the time waiting on "
            + "replies and timeouts, 9% held to --rate 2000),"), "\(line)")
        #expect(!line.contains(" 0 probes/s"))
        var capped = RunSummary()
        capped.traces = 1
        capped.probesSent = 742_000
        capped.elapsedNanos = 1_000_000_000_000
        capped.sendLimits.inFlightCapNanos = 1
        let cappedLine = summaryLine(capped, rate: 2000, maxInFlight: 64)
        #expect(cappedLine.contains("(742 probes/s over the run: 100% of the time at --max-in-flight 64)"), "\(cappedLine)")
    }

    @Test("Time in the send calls and waiting for rested slots are said as such, not as the rate or the list")
    func sendingAndRestingSlotsAreTheirOwnShares() {
        var r = RunSummary()
        r.traces = 40_000
        r.probesSent = 296_366
        r.elapsedNanos = 8_680_000_000
        r.sendLimits.sendingNanos = 7_550_000_000
        r.sendLimits.repliesNanos = 1_040_000_000
        r.sendLimits.rateNanos = 90_000_000
        let line = summaryLine(r, rate: 50_000, maxInFlight: 4096)
        #expect(line.contains("(34144 probes/s over the run: 87% of the time sending, 12% waiting on replies and "
            + "timeouts, 1% held to --rate 50000)"), "\(line)")
        var resting = RunSummary()
        resting.traces = 1
        resting.probesSent = 100
        resting.elapsedNanos = 1_000_000_000
        resting.sendLimits.slotsNanos = 3
        resting.sendLimits.listNanos = 1
        let restingLine = summaryLine(resting, rate: 2000, maxInFlight: 64)
        #expect(restingLine.contains("75% of the time waiting for used trace slots to rest, 25% waiting for the list"),
            "\(restingLine)")
    }

    @Test func ratesKeepTheirPrecision() {
        #expect(formatRate(742.4) == "742")
        #expect(formatRate(12.5) == "13")
        #expect(formatRate(5.24) == "5.2")
        #expect(formatRate(10.0 / 12.04) == "0.83")
        #expect(formatRate(0.0042) == "0.0042")
        #expect(formatRate(0.000042) == "0.000042")
        #expect(formatRate(0) == "0")
    }

    @Test("A run of a few milliseconds: its time with two significant digits, never 0.00 s beside hundreds of probes/s")
    func shortRunsKeepTheirTime() {
        var r = Self.smallRun()
        r.probesSent = 2
        r.elapsedNanos = 4_100_000
        let line = summaryLine(r, rate: 2000, maxInFlight: 64)
        #expect(line.contains("2 probes sent in 0.0041 s (488 probes/s"), "\(line)")
        #expect(formatSeconds(0.094) == "0.094" && formatSeconds(0.096) == "0.10" && formatSeconds(12.346) == "12.35")
        #expect(formatSeconds(0) == "0.00")
    }

    @Test func duplicatesAndRejectionsAreSaidInWords() {
        var r = Self.smallRun()
        r.dispatch.duplicates = 2
        r.dispatch.stale = 5
        r.dispatch.ipIDRewritten = 18
        let line = summaryLine(r, rate: 2000, maxInFlight: 4096)
        #expect(line.contains(", 9 replies matched, 23 rejected (5 stale, 18 IP ID rewritten), 2 duplicate replies,"),
            "\(line)")
        let clean = summaryLine(Self.smallRun(), rate: 2000, maxInFlight: 4096)
        #expect(clean.contains(", 0 rejected, 0 duplicate replies,"), "\(clean)")
    }

    @Test func aRewrittenIPIDIsHintedOnceWithTheRemedy() {
        var d = DispatchCounters()
        #expect(ipIDRewriteHint(d) == nil)
        d.ipIDRewritten = 18
        #expect(ipIDRewriteHint(d) == "fasttrace: 18 router replies came back with the probe's IP ID rewritten on the "
            + "way (a NAT or scrubber on the path), so those hops show as *: --track-port matches them without the IP ID")
        // A forger's made-up quotes pass the sequence number's MAC bits 1 time in 128: no hint for those.
        d.forged = 100_000
        #expect(ipIDRewriteHint(d) == nil)
    }

    @Test("probes the kernel refused are said once, with the reason and, for EMSGSIZE, what to do")
    func sendRefusals() {
        var t = TransportCounters()
        #expect(sendRefusalHint(t, packetLength: 40) == nil)
        t.sendErrors = 24
        t.firstSendErrno = 90  // EMSGSIZE on Linux
        let hint = sendRefusalHint(t, packetLength: 1500)
        #expect(hint?.contains("refused 24 probes") == true && hint?.contains("EMSGSIZE") == true)
        #expect(hint?.contains("smaller -l") == true && hint?.contains("not the network's answer") == true)
        t.firstSendErrno = 1  // EPERM: a local firewall
        #expect(sendRefusalHint(t, packetLength: 40)?.contains("smaller -l") == false)
        // Refused on the transmit ring: the call that failed is named, and the malformed frames counted.
        t.firstSendErrno = 90
        t.firstSendErrorOnRing = true
        t.ringFramesRefused = 3
        let ring = sendRefusalHint(t, packetLength: 1400)
        #expect(ring?.contains("(first: send(PACKET_TX_RING): ") == true, "\(ring ?? "")")
        #expect(ring?.contains(", 3 of them TX ring frames the kernel marked malformed") == true, "\(ring ?? "")")
    }

    @Test("the advice for probes over the MTU names what sets their length for the probe kind")
    func sendRefusalAdvicePerKind() {
        var t = TransportCounters()
        t.sendErrors = 3
        t.firstSendErrno = 90  // EMSGSIZE
        for method in [ProbeMethod.tcp(.syn), .icmpEcho, .udp(.byPort)] {
            let hint = sendRefusalHint(t, packetLength: 1600, method: method) ?? ""
            #expect(hint.contains("(-l 1600); try a smaller -l;") && !hint.contains("--payload-hex"), "\(method): \(hint)")
        }
        let payload = sendRefusalHint(t, packetLength: 1600, method: .udp(.fixed([UInt8](repeating: 0, count: 1570)))) ?? ""
        #expect(payload.contains("(--payload-hex of 1570 bytes, 1600 in all); try shorter --payload-hex bytes;")
            && !payload.contains("-l "), "\(payload)")
    }

    @Test("a ring run names the probes the raw socket took beside it, and those it refused there")
    func ringRunCountsSocketFallbacksAndRefusals() {
        let ring = SendPathReport(usesRing: true, interfaceName: "veth0", reason: nil, detail: "")
        var t = TransportCounters()
        t.packetsSentThroughRing = 10
        t.packetsSent = 10
        #expect(sendPathText(ring, t) == "sent through the TX ring on veth0")
        // Every probe over the MTU: handed to the socket, refused there, none sent at all.
        t = TransportCounters()
        t.packetsToSocketBesideRing = 24
        t.socketRefusedBesideRing = 24
        t.sendErrors = 24
        #expect(sendPathText(ring, t) == "sent through the raw socket (24, 24 of them refused; the TX ring on veth0 took "
            + "none of them: it sends only probes within its MTU, on single routes through its interface, to next hops already resolved)")
        t.socketRefusedBesideRing = 0
        t.packetsSent = 24
        // Next hops never resolved: every probe through the socket, none through the ring (a trial saw the
        // line name the ring).
        #expect(sendPathText(ring, t) == "sent through the raw socket (24; the TX ring on veth0 took none of them: "
            + "it sends only probes within its MTU, on single routes through its interface, to next hops already resolved)")
        t.packetsSentThroughRing = 10
        t.packetsSent = 34
        #expect(sendPathText(ring, t) == "sent through the TX ring on veth0 (24 through the raw socket)")
    }

    @Test("probes refused by the kernel and the traces they stopped are named, not counted as sent or filtered")
    func refusedProbesInTheSummary() {
        var r = Self.smallRun()
        r.probesRefused = 9
        r.notSent = 3
        let line = summaryLine(r, rate: 2000, maxInFlight: 4096)
        #expect(line.contains(" sent (9 more refused by the kernel) in ") && line.contains(", 3 not sent (the kernel refused their probes)"), "\(line)")
    }

    @Test("UDP and ICMP runs name their states")
    func udpAndICMPStates() {
        var r = Self.smallRun()
        r.openFiltered = 4
        r.filtered = 0
        let udp = summaryLine(r, rate: 2000, maxInFlight: 4096, method: .udp(.byPort))
        #expect(udp.contains("3 reached (2 open, 1 closed), 4 open|filtered,"), "\(udp)")
        r.dispatch.unkeyed = 5
        #expect(summaryLine(r, rate: 2000, maxInFlight: 4096, method: .udp(.byPort)).contains("5 UDP answers carrying nothing"))
        #expect(!summaryLine(r, rate: 2000, maxInFlight: 4096, method: .udp(.fixed([1]))).contains("built-in DNS and NTP"))
        var i = Self.smallRun()
        i.open = 0
        i.closed = 0
        #expect(summaryLine(i, rate: 2000, maxInFlight: 4096, method: .icmpEcho).contains("3 reached, 4 filtered"))
    }
}
