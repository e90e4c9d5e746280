// Continuous mode through the real engine on the simulated network (virtual clock): the schedule spreads
// a list's rounds over the interval and keeps each target's rounds an interval apart; between rounds the
// scheduler sleeps instead of waking every millisecond; the change tracker reports a route changed mid-run
// and loss that starts mid-run once each, with before and after, and stays quiet about a lone lost answer
// or a silent hop. And the list replaced mid-run (SIGHUP): kept targets keep their index, removed ones are
// said to be gone, new ones get rounds of their own.

import FastTraceCore
import FastTraceStats
import FastTraceTestSupport
import FastTraceWire
import Testing

/// Runs continuous mode over `destinations` (port 443) on `network`; returns each round's start time per
/// target, the change events, the engine's turns (calls of `shouldCancel`) and the summary.
func runContinuous(_ network: SimulatedNetwork, _ destinations: [IPv4Address], interval: Double, count: Int? = nil,
    duration: Double? = nil, startDelay: UInt64 = 0, tracker: ChangeTracker = ChangeTracker(),
    configure: (inout EngineConfiguration) -> Void = { _ in },
    onRound: @escaping (TraceResult, Int) -> Void = { _, _ in }
) throws -> (starts: [Int: [UInt64]], events: [ChangeEvent], turns: Int, summary: RunSummary, origin: UInt64) {
    var config = EngineConfiguration()
    config.waitNanos = 1_000_000_000
    config.sourcePort = 40000
    config.rate = 10_000
    config.probesPerHop = 1
    configure(&config)
    let engine = TraceEngine(configuration: config, transport: network, clock: network,
        codec: ProbeTagCodec(key0: 1, key1: 2))
    let requests = destinations.enumerated().map {
        TraceRequest(index: $0.offset, destination: $0.element, port: 443, source: IPv4Address(192, 0, 2, 1))
    }
    let origin = network.now()
    let end = duration.map { origin + UInt64($0 * 1e9) }
    var source = ScheduleSource(IteratorRequestSource(requests.makeIterator()), intervalNanos: UInt64(interval * 1e9),
        maxRounds: count, endNanos: end, clock: network)
    let schedule = source
    // Time passing between the schedule's start and the engine's first look (a list being read).
    if startDelay > 0 { network.sleep(until: network.now() + startDelay) }
    var starts: [Int: [UInt64]] = [:]
    var events: [ChangeEvent] = []
    var turns = 0
    engine.shouldCancel = { turns += 1; return turns > 5_000_000 }
    let summary = try engine.run(source: &source) { trace in
        let (round, _) = schedule.finished(trace)
        starts[trace.request.index, default: []].append(trace.startNanos ?? 0)
        events += tracker.add(trace)
        onRound(trace, round)
    }
    return (starts, events, turns, summary, origin)
}

@Suite struct ContinuousTests {
    static let routers: [SimulatedHop] = [1, 5, 9, 13, 17].map { .router(r($0)) }

    @Test("--interval: each target's rounds are one interval apart, the list's first rounds are spread over it, never a burst")
    func roundsAreSpreadOverTheInterval() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.routers, destination: .listening(ports: [443])) }
        let targets = (0..<40).map { IPv4Address(198, 51, 100, UInt8(10 + $0)) }
        let interval: UInt64 = 4_000_000_000
        let (starts, _, _, summary, origin) = try runContinuous(net, targets, interval: 4, count: 3)
        #expect(summary.traces == 120 && summary.reached == 120)
        #expect(starts.count == 40)
        for (index, times) in starts {
            #expect(times.count == 3)
            let phase = ScheduleSource<IteratorRequestSource<[TraceRequest].Iterator>>.phase(of: index, intervalNanos: interval)
            for (k, time) in times.enumerated() {
                // Due at origin + phase + k · interval; started within a few poll intervals of it.
                let due = origin + phase + UInt64(k) * interval
                #expect(time >= due && time - due < 20_000_000, "target \(index) round \(k): \(time - origin) vs \(due - origin)")
            }
        }
        // Spread: in any 200 ms of the first interval at most 4 of the 40 first rounds start (a burst
        // would start them all at once).
        let firsts = starts.values.map { $0[0] - origin }.sorted()
        for (i, t) in firsts.enumerated() {
            let within = firsts[i...].prefix { $0 - t < 200_000_000 }.count
            #expect(within <= 4, "\(within) rounds start within 200 ms of \(t)")
        }
        #expect(firsts.last! - firsts.first! > interval * 9 / 10)
    }

    @Test("Between rounds the scheduler sleeps until the next round is due: no wake-up every millisecond")
    func idleBetweenRounds() throws {
        // The defect this guards against: with nothing in flight the scheduler woke every 1 ms poll
        // interval, about 20,000 turns for three rounds 10 s apart.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.routers, destination: .listening(ports: [443])) }
        let (starts, _, turns, _, _) = try runContinuous(net, [IPv4Address(198, 51, 100, 10)], interval: 10, count: 3)
        #expect(starts[0]?.count == 3)
        // A round takes a few turns per hop (1 ms spacing, replies) and the resting slots' wait; between
        // rounds, at most one turn per `idleWakeNanos` (100 ms): about 100 per 10 s.
        #expect(turns < 1500, "\(turns) scheduler turns for 3 rounds over 20 s")
    }

    @Test("While rounds run at 1,000 probes/s, continuous mode's turn sends many probes a wake-up, not one a millisecond; every round still right")
    func fewWakeUpsWhileRoundsRun() throws {
        // 150 targets 5 hops + destination away, every 1 s: about 900 probes/s. With the 1 ms turn of a
        // one-shot run the scheduler woke about 1,000 times a second while rounds ran.
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.routers, destination: .listening(ports: [443])) }
        var targets: [IPv4Address] = []
        for i in 0..<150 { targets.append(IPv4Address(UInt32(0xC633_6400) + UInt32(i))) }
        var wrong = 0
        let poll = EngineConfiguration.continuousPollNanos(rate: 1000)
        #expect(poll == 10_000_000 && EngineConfiguration.continuousPollNanos(rate: 10_000) == 3_200_000
            && EngineConfiguration.continuousPollNanos(rate: 100_000) == 1_000_000)
        let (starts, _, turns, summary, _) = try runContinuous(net, targets, interval: 1, count: 4,
            configure: { $0.rate = 1000; $0.pollIntervalNanos = poll }) { trace, _ in
                let routersHeard = trace.hops.prefix(5).allSatisfy { $0.firstResponder != nil }
                if !trace.reached || trace.destinationTTL != UInt8(6) || !routersHeard { wrong += 1 }
            }
        #expect(summary.traces == 600 && wrong == 0, "\(wrong) of \(summary.traces) rounds wrong")
        #expect(summary.dispatch.rejected == 0, "\(summary.dispatch)")
        #expect(starts.values.allSatisfy { $0.count == 4 })
        // 4 s of rounds: at most about one turn per 10 ms poll, plus one per reply batch; 1 ms turns
        // would be about 4,000.
        #expect(turns < 800, "\(turns) scheduler turns for 4 s of rounds")
    }

    @Test("A target whose moment in the first interval passed before it was read starts at once, not an interval later (or never)")
    func lateTargetsStartAtOnce() throws {
        // A trial: with --interval 10 --duration 10 the first target of a list was never traced, and one
        // target's first round came an interval after the start (its phase 0 had passed by microseconds).
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.routers, destination: .listening(ports: [443])) }
        let targets = (0..<3).map { IPv4Address(198, 51, 100, UInt8(10 + $0)) }
        let (starts, _, _, summary, origin) = try runContinuous(net, targets, interval: 10, duration: 10,
            startDelay: 5_000_000)
        #expect(summary.traces == 3 && starts.count == 3, "\(starts)")
        // The first target at once (5 ms after the start, when the list was read), not at 10 s.
        #expect((starts[0]?.first).map { $0 - origin < 50_000_000 } == true, "\(starts[0] ?? [])")
    }

    @Test("--duration: no round starts after it; rounds under way finish")
    func durationBoundsTheRun() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.routers, destination: .listening(ports: [443])) }
        let (starts, _, _, _, origin) = try runContinuous(net, [IPv4Address(198, 51, 100, 10), IPv4Address(198, 51, 100, 11)],
            interval: 1, duration: 5.5)
        for times in starts.values {
            #expect(times.allSatisfy { $0 - origin < 5_500_000_000 })
            #expect(times.count >= 5 && times.count <= 6, "\(times.count) rounds")
        }
    }

    @Test("--changes: a route changed mid-run is one path change with before and after, no loss event")
    func routeChangeIsOneEvent() throws {
        final class Route: @unchecked Sendable { var changed = false }
        let route = Route()
        var after = Self.routers
        after[2] = .router(r(33))
        let net = SimulatedNetwork { _ in
            SimulatedPath(hops: route.changed ? after : Self.routers, destination: .listening(ports: [443]))
        }
        let (_, events, _, _, _) = try runContinuous(net, [IPv4Address(198, 51, 100, 10)], interval: 1, count: 30,
            tracker: ChangeTracker(confirmRounds: 2, windowRounds: 5), onRound: { _, round in if round == 12 { route.changed = true } })
        #expect(events.count == 1, "\(events)")
        let event = try #require(events.first)
        #expect(event.kind == .path && event.sinceRound == 13 && event.round == 14)
        guard case .path(let before) = event.before, case .path(let now) = event.after else {
            Issue.record("not a path event: \(event)")
            return
        }
        #expect(before.responders[2] == r(9).address && now.responders[2] == r(33).address)
        #expect(before.id != now.id && before.hopCount == 6 && now.hopCount == 6)
    }

    @Test("--changes: loss that starts on one link mid-run is a loss event naming where it starts; before: none")
    func lossShiftIsOneEvent() throws {
        final class Loss: @unchecked Sendable { var on = false }
        let loss = Loss()
        let net = SimulatedNetwork(seed: 3) { _ in
            var path = SimulatedPath(hops: Self.routers, destination: .listening(ports: [443]), loss: loss.on ? 0.5 : 0)
            path.lossFromTTL = 3
            return path
        }
        let (_, events, _, _, _) = try runContinuous(net, [IPv4Address(198, 51, 100, 10)], interval: 1, count: 40,
            tracker: ChangeTracker(windowRounds: 20), configure: { $0.probesPerHop = 3 },
            onRound: { _, round in if round == 20 { loss.on = true } })
        let lossEvents = events.filter { $0.kind == .loss }
        #expect(lossEvents.count == 1, "\(events)")
        guard let event = lossEvents.first, case .loss(let before) = event.before, case .loss(let now) = event.after else {
            Issue.record("no loss event: \(events)")
            return
        }
        #expect(before.lost == 0 && before.rounds == 1...20 && now.rounds == 21...40)
        #expect(now.lossPercent > 25 && now.lossPercent < 75, "\(now.lossPercent)")
        #expect(now.endIsDestination && now.startTTL == 3, "\(now)")
        // Reachability is not called changed by lost SYN-ACKs unless two rounds in a row lose them all.
        #expect(events.allSatisfy { $0.kind != .path })
    }

    @Test("The tracker: one lost answer is no outage, two rounds in a row are; a silent hop is no path change")
    func trackerConfirms() {
        let tracker = ChangeTracker(confirmRounds: 2, windowRounds: 100)
        let path = [r(1), r(5), r(9)]
        func trace(reached: Bool, silentAt: Int? = nil) -> TraceResult {
            var hops = path.enumerated().map { i, address in
                Hop(responder: i == silentAt ? nil : address, rtts: [i == silentAt ? nil : 100])
            }
            hops.append(Hop(responder: destination, rtts: [reached ? 200 : nil], isDestination: true))
            return round(hops, reached: reached)
        }
        #expect(tracker.add(trace(reached: true)).isEmpty)
        #expect(tracker.add(trace(reached: true, silentAt: 1)).isEmpty)
        #expect(tracker.add(trace(reached: false)).isEmpty)
        #expect(tracker.add(trace(reached: true)).isEmpty)
        #expect(tracker.add(trace(reached: false)).isEmpty)
        let events = tracker.add(trace(reached: false))
        #expect(events.count == 1)
        #expect(events.first?.kind == .reachability && events.first?.sinceRound == 5 && events.first?.round == 6)
        #expect(events.first?.before == .reachability(reached: true, state: .open))
        #expect(events.first?.after == .reachability(reached: false, state: .filtered))
    }

    @Test("SIGHUP's reload: kept targets keep index and schedule, removed ones are said gone, new ones start")
    func reloadKeepsAddsRemoves() throws {
        let net = SimulatedNetwork { _ in SimulatedPath(hops: Self.routers, destination: .listening(ports: [443])) }
        func request(_ last: UInt8, _ index: Int) -> TraceRequest {
            TraceRequest(index: index, destination: IPv4Address(198, 51, 100, last), port: 443,
                source: IPv4Address(192, 0, 2, 1))
        }
        var config = EngineConfiguration()
        config.waitNanos = 1_000_000_000
        config.sourcePort = 40000
        config.probesPerHop = 1
        let engine = TraceEngine(configuration: config, transport: net, clock: net, codec: ProbeTagCodec(key0: 1, key1: 2))
        let first = [request(10, 0), request(11, 1), request(12, 2)]
        var source = ScheduleSource(IteratorRequestSource(first.makeIterator()), intervalNanos: 1_000_000_000,
            endNanos: net.now() + 8_000_000_000, clock: net)
        let schedule = source
        var removed: [Int] = [], reloaded: [(Int, Int, Int)] = []
        schedule.onRemoved = { removed.append($0) }
        schedule.onReloaded = { reloaded.append(($0, $1, $2)) }
        var seen: [String: Set<Int>] = [:]
        var rounds: [String: Int] = [:]
        var replaced = false
        _ = try engine.run(source: &source) { trace in
            schedule.finished(trace)
            let last = String(trace.request.destination.description.split(separator: ".").last!)
            seen[last, default: []].insert(trace.request.index)
            rounds[last, default: 0] += 1
            if !replaced && rounds.values.reduce(0, +) >= 6 {
                replaced = true
                // The new list: .11 and .12 stay (indices from the new file are renumbered), .10 goes, .13 comes.
                schedule.replace(with: IteratorRequestSource([request(12, 0), request(11, 1), request(13, 2)].makeIterator()))
            }
        }
        #expect(reloaded.count == 1 && reloaded.first! == (2, 1, 1))
        #expect(removed == [0])
        #expect(seen["11"] == [1] && seen["12"] == [2] && seen["13"] == [3], "\(seen)")
        #expect((rounds["10"] ?? 0) <= 3 && (rounds["13"] ?? 0) >= 3, "\(rounds)")
    }
}
