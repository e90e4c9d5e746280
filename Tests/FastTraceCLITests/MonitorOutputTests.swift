// Continuous mode's outputs through the real types: change events as JSON (every kind, parsed back with
// Foundation, keys as the README documents them) and the Prometheus exposition that `/metrics` serves
// (series per target and per hop labelled by TTL and never by address, counters advanced by the engine's
// differences, series of a removed target gone, names following Prometheus's conventions).

import FastTraceCore
import FastTraceMetricsServer
import FastTraceStats
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

private let monitorSource = IPv4Address(192, 0, 2, 1)
private let monitorTarget = IPv4Address(198, 51, 100, 7)
private func hop(_ last: UInt8) -> IPv4Address { IPv4Address(198, 18, 0, last) }

/// A round over routers 1, `second`, 9 then the target; `lostAt` TTLs silent.
private func monitorRound(second: UInt8 = 5, lostAt: Set<UInt8> = [], rtt: UInt32 = 100, index: Int = 0) -> TraceResult {
    let routers = [hop(1), hop(second), hop(9)]
    var hops: [HopResult] = []
    for ttl in UInt8(1)...4 {
        if lostAt.contains(ttl) {
            hops.append(HopResult(ttl: ttl, probes: [ProbeResult(silence: .timedOut)]))
            continue
        }
        let isDestination = ttl == 4
        hops.append(HopResult(ttl: ttl, probes: [ProbeResult(responder: isDestination ? monitorTarget : routers[Int(ttl) - 1],
            rttMicros: rtt * UInt32(ttl), outcome: isDestination ? .synAck : .timeExceeded)]))
    }
    let reached = !lostAt.contains(4)
    return TraceResult(request: TraceRequest(index: index, destination: monitorTarget, port: 443, source: monitorSource),
        hops: hops, reached: reached, state: reached ? .open : .filtered, stopReason: reached ? .destination : .maxTTL,
        sourcePort: 40000, probesSent: 4)
}

private func object(_ line: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
}

/// The value of the one exposition line `series` (name and labels as written), or nil.
private func value(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

@Suite struct MonitorOutputTests {
    @Test("A path change event: before and after with path ids, hop counts and addresses, as valid JSON")
    func pathEventJSON() throws {
        let tracker = ChangeTracker(confirmRounds: 2, windowRounds: 100)
        var events: [ChangeEvent] = []
        for round in 1...4 { events += tracker.add(monitorRound(second: round <= 2 ? 5 : 6)) }
        #expect(events.count == 1)
        let line = EventJSON.line(try #require(events.first), vantage: "lab-a", time: 1_700_000_000_000_000_000)
        let json = try object(line)
        #expect(json["type"] as? String == "change" && json["change"] as? String == "path")
        #expect(json["vantage"] as? String == "lab-a" && json["target"] as? String == "198.51.100.7")
        #expect(json["port"] as? Int == 443 && json["protocol"] as? String == "tcp")
        #expect(json["round"] as? Int == 4 && json["since_round"] as? Int == 3)
        #expect((json["time"] as? String)?.hasPrefix("2023-11-14T22:13:20") == true)
        let before = try #require(json["before"] as? [String: Any]), after = try #require(json["after"] as? [String: Any])
        #expect(before["addrs"] as? [String] == ["198.18.0.1", "198.18.0.5", "198.18.0.9", "198.51.100.7"])
        #expect(after["addrs"] as? [String] == ["198.18.0.1", "198.18.0.6", "198.18.0.9", "198.51.100.7"])
        #expect(before["hops"] as? Int == 4 && before["reaches_destination"] as? Bool == true)
        #expect(before["path_id"] as? String != after["path_id"] as? String)
        #expect((before["path_id"] as? String)?.count == 16)
    }

    @Test("Reachability and loss events: before and after as the README documents them")
    func reachabilityAndLossJSON() throws {
        let tracker = ChangeTracker(confirmRounds: 2, windowRounds: 20)
        var events: [ChangeEvent] = []
        // 20 clean rounds; 20 that lose the destination's answer every other round (loss, no outage: never
        // two in a row); then two that lose it (an outage).
        for _ in 1...20 { events += tracker.add(monitorRound()) }
        for round in 21...40 { events += tracker.add(monitorRound(lostAt: round % 2 == 1 ? [4] : [])) }
        for _ in 41...42 { events += tracker.add(monitorRound(lostAt: [4])) }
        let kinds = events.map(\.kind)
        #expect(kinds == [.loss, .reachability], "\(kinds)")
        guard kinds.count == 2 else { return }
        let loss = try object(EventJSON.line(events[0], vantage: "v", time: nil))
        #expect(loss["time"] is NSNull && loss["schema"] as? Int == 2)
        #expect(loss["round"] as? Int == 40 && loss["since_round"] as? Int == 21)
        let before = try #require(loss["before"] as? [String: Any]), after = try #require(loss["after"] as? [String: Any])
        #expect(before["loss_pct"] as? Double == 0 && before["first_round"] as? Int == 1 && before["last_round"] as? Int == 20)
        #expect(after["first_round"] as? Int == 21 && after["sent"] as? Int == 20 && after["lost"] as? Int == 10)
        #expect(after["loss_pct"] as? Double == 50)
        #expect(before["end_ttl"] as? Int == 4 && after["end_is_destination"] as? Bool == true)
        // Where the loss starts, as a range (here placed exactly: only the destination loses).
        #expect(after["start_ttl"] as? Int == 4 && after["start_ttl_latest"] as? Int == 4, "\(after)")
        #expect(before["start_ttl"] is NSNull && before["start_ttl_latest"] is NSNull, "\(before)")
        let reach = try object(EventJSON.line(events[1], vantage: "v", time: nil))
        #expect(reach["since_round"] as? Int == 41 && reach["round"] as? Int == 42)
        #expect((reach["before"] as? [String: Any])?["state"] as? String == "open")
        #expect((reach["after"] as? [String: Any])?["reached"] as? Bool == false)
        #expect((reach["after"] as? [String: Any])?["state"] as? String == "filtered")
        // README: every key of every kind of event is documented.
        let readme = try String(contentsOfFile: #filePath.replacingOccurrences(of: "Tests/FastTraceCLITests/MonitorOutputTests.swift",
            with: "README.md"), encoding: .utf8)
        for key in ["since_round", "path_id", "reaches_destination", "end_is_destination", "start_ttl", "start_ttl_latest", "loss_pct",
            "p50_ms", "rise_ttl", "rise_ms", "first_round", "last_round", "samples"]
        {
            #expect(readme.contains("`\(key)`"), "README does not document \(key)")
        }
    }

    @Test("Metrics: per-target and per-hop series labelled by TTL, never by address; counters advance by differences")
    func metricsRendering() throws {
        let metrics = RunMetrics(vantage: "lab-a")
        let tracker = ChangeTracker(windowRounds: 4)
        for round in 1...4 {
            let trace = monitorRound(lostAt: round == 4 ? [2] : [], rtt: 1000)
            _ = tracker.add(trace)
            metrics.record(trace, tracker: tracker)
        }
        var run = RunSummary()
        run.probesSent = 100
        run.dispatch.matched = 80
        run.dispatch.forged = 3
        run.transport.ringDrops = 2
        metrics.update(run)
        run.probesSent = 150
        metrics.update(run)
        metrics.countBadRequest()
        let text = String(decoding: metrics.render(), as: UTF8.self)
        let labels = #"vantage="lab-a",target="198.51.100.7",port="443",protocol="tcp""#
        #expect(value(text, "fasttrace_target_up{\(labels)}") == 1)
        #expect(value(text, "fasttrace_target_state{\(labels),state=\"open\"}") == 1)
        #expect(value(text, "fasttrace_target_state{\(labels),state=\"filtered\"}") == 0)
        #expect(value(text, "fasttrace_target_hops{\(labels)}") == 4)
        #expect(value(text, "fasttrace_target_rounds_total{\(labels)}") == 4)
        #expect(value(text, "fasttrace_target_rtt_seconds_count{\(labels)}") == 4)
        // 4 ms: in the 6.4 ms bucket, not in the 3.2 ms one.
        #expect(value(text, "fasttrace_target_rtt_seconds_bucket{\(labels),le=\"0.0064\"}") == 4)
        #expect(value(text, "fasttrace_target_rtt_seconds_bucket{\(labels),le=\"0.0032\"}") == 0)
        #expect(value(text, "fasttrace_hop_loss_ratio{\(labels),ttl=\"2\"}") == 0.25)
        #expect(value(text, "fasttrace_hop_loss_ratio{\(labels),ttl=\"3\"}") == 0)
        #expect(value(text, "fasttrace_hop_rtt_p50_seconds{\(labels),ttl=\"3\"}") == 0.003)
        #expect(value(text, "fasttrace_probes_sent_total{vantage=\"lab-a\"}") == 150)
        #expect(value(text, "fasttrace_replies_matched_total{vantage=\"lab-a\"}") == 80)
        #expect(value(text, "fasttrace_replies_rejected_total{vantage=\"lab-a\",reason=\"forged\"}") == 3)
        #expect(value(text, "fasttrace_ring_drops_total{vantage=\"lab-a\"}") == 2)
        #expect(value(text, "fasttrace_rounds_total{vantage=\"lab-a\"}") == 4)
        #expect(value(text, "fasttrace_http_bad_requests_total{vantage=\"lab-a\"}") == 1)
        #expect(value(text, "fasttrace_run_errors_total{vantage=\"lab-a\",reason=\"skipped_target\"}") == 0)
        let pathLines = text.split(separator: "\n").filter { $0.hasPrefix("fasttrace_target_path_info{") }
        #expect(pathLines.count == 1)
        // Bounded labels: no responder address anywhere in a label.
        #expect(!text.contains("198.18.0."))
        // Prometheus naming: counters end in _total, and every series has HELP and TYPE.
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            if parts[3] == "counter" { #expect(parts[2].hasSuffix("_total"), "\(line)") }
            #expect(text.contains("# HELP \(parts[2]) "), "no HELP for \(parts[2])")
        }
        // A target removed from the list (SIGHUP): its series go, the engine's stay.
        metrics.remove(0)
        let after = String(decoding: metrics.render(), as: UTF8.self)
        #expect(!after.contains("198.51.100.7"))
        #expect(value(after, "fasttrace_probes_sent_total{vantage=\"lab-a\"}") == 150)
    }

    @Test("Targets spread over the registries: one exposition, each name's HELP and TYPE once and its samples together, every target's series there")
    func manyTargetsOneExposition() throws {
        let metrics = RunMetrics(vantage: "v")
        let tracker = ChangeTracker(windowRounds: 2)
        for index in 0..<300 {
            var trace = monitorRound(index: index)
            trace.request = TraceRequest(index: index, destination: IPv4Address(198, 51, 100 + UInt8(index / 200),
                UInt8(index % 200)), port: 443, source: monitorSource)
            _ = tracker.add(trace)
            metrics.record(trace, tracker: tracker)
        }
        let text = String(decoding: metrics.render(), as: UTF8.self)
        let lines = text.split(separator: "\n")
        var seenTypes: Set<Substring> = []
        var closed: Set<Substring> = []  // names whose samples have ended
        var current: Substring = ""
        for line in lines {
            if line.hasPrefix("# TYPE ") {
                let name = line.split(separator: " ")[2]
                #expect(seenTypes.insert(name).inserted, "a second TYPE line for \(name)")
                if !current.isEmpty { closed.insert(current) }
                current = name
            } else if !line.hasPrefix("#") {
                let sample = line.prefix { $0 != "{" && $0 != " " }
                // A sample belongs to the family being written (histograms add _bucket, _sum, _count).
                #expect(sample.hasPrefix(current), "\(sample) outside its family \(current)")
                #expect(!closed.contains(sample), "\(sample) after its family ended")
            }
        }
        #expect(lines.filter { $0.hasPrefix("fasttrace_target_up{") }.count == 300)
        #expect(lines.filter { $0.hasPrefix("fasttrace_hop_loss_ratio{") }.count == 300 * 4)
        #expect(value(text, #"fasttrace_target_hops{vantage="v",target="198.51.101.99",port="443",protocol="tcp"}"#) == 4)
        // promtool, when it is there, reads it as Prometheus would.
        if let promtool = toolPath("promtool") {
            let r = try runTool([promtool, "check", "metrics"], input: text)
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        }
    }

    @Test("Per-hop loss marks: a router that never answers is no_reply, not loss on the path; loss from a hop to the destination is loss_path")
    func hopLossMarks() throws {
        let labels = #"vantage="v",target="198.51.100.7",port="443",protocol="tcp""#
        // TTL 2 silent in every round, the destination answering: 100 % loss there, none of it the path's.
        let silent = RunMetrics(vantage: "v")
        let t1 = ChangeTracker(windowRounds: 10)
        for _ in 1...10 {
            let trace = monitorRound(lostAt: [2])
            _ = t1.add(trace)
            silent.record(trace, tracker: t1)
        }
        let a = String(decoding: silent.render(), as: UTF8.self)
        #expect(value(a, "fasttrace_hop_loss_ratio{\(labels),ttl=\"2\"}") == 1)
        #expect(value(a, "fasttrace_hop_no_reply{\(labels),ttl=\"2\"}") == 1)
        #expect(value(a, "fasttrace_hop_loss_path{\(labels),ttl=\"2\"}") == 0)
        #expect(value(a, "fasttrace_hop_no_reply{\(labels),ttl=\"3\"}") == 0)
        // From TTL 2 on, 5 of 10 rounds lose everything (the destination too): loss on the path from TTL 2.
        let lossy = RunMetrics(vantage: "v")
        let t2 = ChangeTracker(windowRounds: 10)
        for round in 1...10 {
            let trace = monitorRound(lostAt: round % 2 == 0 ? [2, 3, 4] : [])
            _ = t2.add(trace)
            lossy.record(trace, tracker: t2)
        }
        let b = String(decoding: lossy.render(), as: UTF8.self)
        #expect(value(b, "fasttrace_hop_loss_path{\(labels),ttl=\"1\"}") == 0)
        #expect(value(b, "fasttrace_hop_loss_path{\(labels),ttl=\"2\"}") == 1, "\(b.split(separator: "\n").filter { $0.contains("hop_loss") })")
        #expect(value(b, "fasttrace_hop_no_reply{\(labels),ttl=\"2\"}") == 0)
    }

    @Test("A path that gets shorter: the hops past its end lose their series rather than keep old values")
    func hopSeriesFollowThePath() throws {
        let metrics = RunMetrics(vantage: "v")
        let tracker = ChangeTracker(windowRounds: 1)
        let long = monitorRound()
        _ = tracker.add(long)
        metrics.record(long, tracker: tracker)
        #expect(String(decoding: metrics.render(), as: UTF8.self).contains("ttl=\"4\""))
        // The destination now answers at TTL 3 (one hop fewer).
        var short = monitorRound()
        short.hops = [short.hops[0], short.hops[1], HopResult(ttl: 3, probes: [ProbeResult(responder: monitorTarget, rttMicros: 300,
            outcome: .synAck)])]
        _ = tracker.add(short)
        metrics.record(short, tracker: tracker)
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(!text.contains("ttl=\"4\""))
        #expect(value(text, #"fasttrace_target_hops{vantage="v",target="198.51.100.7",port="443",protocol="tcp"}"#) == 3)
    }

    @Test("Under loss the hop count and the path id hold: a round that sees the destination only past its distance, or loses a router's answer, changes neither; a real change confirmed over rounds is one")
    func hopsAndPathHoldUnderLoss() throws {
        let labels = #"vantage="v",target="198.51.100.7",port="443",protocol="tcp""#
        let metrics = RunMetrics(vantage: "v")
        let tracker = ChangeTracker(confirmRounds: 2, windowRounds: 10)
        func add(_ trace: TraceResult) -> String {
            _ = tracker.add(trace)
            metrics.record(trace, tracker: tracker)
            return String(decoding: metrics.render(), as: UTF8.self)
        }
        func pathID(_ text: String) -> [Substring] {
            text.split(separator: "\n").filter { $0.hasPrefix("fasttrace_target_path_info{") }
        }
        let first = add(monitorRound())
        #expect(value(first, "fasttrace_target_hops{\(labels)}") == 4)
        // The probe at TTL 4 lost, the one at TTL 5 answered by the destination (the defect: hops 5), and a
        // round whose router at TTL 2 did not answer (the defect: a new path id, a path change counted).
        var late = monitorRound(lostAt: [4])
        late.hops.append(HopResult(ttl: 5, probes: [ProbeResult(responder: monitorTarget, rttMicros: 500, outcome: .synAck)]))
        late.reached = true
        late.state = .open
        late.stopReason = .destination
        let afterLate = add(late)
        #expect(value(afterLate, "fasttrace_target_hops{\(labels)}") == 4)
        let afterSilent = add(monitorRound(lostAt: [2]))
        #expect(pathID(afterSilent) == pathID(first))
        #expect(value(afterSilent, "fasttrace_target_path_changes_total{\(labels)}") == 0)
        // A destination that never answers: its hop count is how far the path is heard, and one round that
        // missed the last router does not shorten it (the defect: a black hole's count fell from 6 to 5).
        let hole = RunMetrics(vantage: "v")
        let holeTracker = ChangeTracker(windowRounds: 10)
        for lost in [Set<UInt8>([4]), [4], [3, 4]] {
            let trace = monitorRound(lostAt: lost)
            _ = holeTracker.add(trace)
            hole.record(trace, tracker: holeTracker)
        }
        #expect(value(String(decoding: hole.render(), as: UTF8.self), "fasttrace_target_hops{\(labels)}") == 3)
        // The router at TTL 2 changes for good: after two rounds, one change and a new id.
        _ = add(monitorRound(second: 6))
        let changed = add(monitorRound(second: 6))
        #expect(pathID(changed) != pathID(first) && pathID(changed).count == 1)
        #expect(value(changed, "fasttrace_target_path_changes_total{\(labels)}") == 1)
    }
}
