// The per-trace state machine on its own: a probe table of one slot and the `TraceState` in it, driven
// by hand, the test playing scheduler and network (no engine, transport, clock or dispatcher). Each test
// is what a user relies on when a trace stops: at the destination's TTL, N silent TTLs past its last
// answer with `--gap N`, at the router that said unreachable, at `-m`, where the kernel refused to send;
// and that a reply not its own (a previous occupant's, or later than the wait) never counts.

import FastTraceWire
import Testing

@testable import FastTraceCore

/// What the path answers at one TTL index.
private enum PathHop {
    /// A router that answers every probe with time exceeded.
    case router(IPv4Address)
    /// A router that answers only the first column of each TTL (the others dropped, as under a limit).
    case firstColumnOnly(IPv4Address)
    /// Nothing answers.
    case silent
    /// The destination: a SYN-ACK to every probe that reaches it.
    case destination
    /// A router without a route: an unreachable, quoting the probe, for every probe that reaches it.
    case unreachable(IPv4Address)
}

/// One slot's probe table and trace, with the engine's order of steps and a policy that takes every
/// silent TTL for plain silence (the rate-limit policy is `TraceEngine.learn`'s, tested elsewhere).
private struct Bench {
    var table: ProbeTable
    var trace: TraceState
    let rules: TraceRules
    let slot: Int
    /// TTL indexes in the order they were settled.
    var settled: [Int] = []
    static let destination = IPv4Address(198, 51, 100, 7)

    init(probesPerHop: Int = 1, firstTTL: UInt8 = 1, maxTTL: UInt8 = 30, gapLimit: Int = 0, window: Int = 8) {
        let grid = ProbeGrid(firstTTL: firstTTL, maxTTL: maxTTL, attempts: probesPerHop, slots: 1)
        let cells = grid.slots * grid.cellsPerSlot
        table = ProbeTable(grid: grid, samples: probesPerHop, immediateTries: 1,
            results: AtomicWordTable(count: cells), details: AtomicWordTable(count: cells),
            sendTimes: AtomicWordTable(count: cells), quarantineNanos: 0)
        slot = table.occupy(now: 1)!
        trace = TraceState(request: TraceRequest(index: 0, destination: Self.destination, port: 443,
            source: IPv4Address(192, 0, 2, 1)), ttlCount: grid.ttlCount)
        rules = TraceRules(gapLimit: gapLimit, window: window, waitNanos: 1_000_000_000)
    }

    /// Hands out and "sends" every probe the trace may send now; returns their cells.
    mutating func sendAll() -> [Int] {
        var cells: [Int] = []
        while trace.canSend(samples: table.samples, rules: rules) {
            let probe = trace.takeProbe(samples: table.samples)
            let cell = table.grid.cell(slot: slot, ttlIndex: probe.ttlIndex, attempt: probe.attempt)
            table.status[cell] = .sent
            trace.noteSent(at: 1)
            cells.append(cell)
        }
        return cells
    }

    /// Records a reply in `cell` as the dispatcher does (details first, then the result word).
    func answer(_ cell: Int, _ outcome: Response, from responder: IPv4Address, quotedTTL: Int = 0,
        epoch: UInt16? = nil, rttMicros: UInt32 = 100)
    {
        let epoch = epoch ?? table.occupants[slot].epoch
        table.details.storeRelaxed(cell, UInt64(epoch) << 48 | UInt64(quotedTTL) << 40)
        table.results.store(cell, PackedReply(generation: UInt8(truncatingIfNeeded: epoch), outcome: outcome,
            rttMicros: rttMicros, responder: responder).word)
    }

    /// The wait ran out for every probe still unanswered (after taking in what came, as the engine does).
    mutating func timeOutRest() {
        trace.ingest(slot: slot, table: &table, rules: rules)
        for (cell, status) in table.status.enumerated() where status == .sent { table.status[cell] = .timedOut }
    }

    /// Takes in answers and settles TTLs in the engine's order.
    mutating func step() -> TraceStep {
        trace.ingest(slot: slot, table: &table, rules: rules)
        while let row = trace.nextSettled(slot: slot, table: table) {
            let found: SettledTTL? = row.refused ? nil : row.answeredAny ? .answered : .silent
            trace.settle(row.ttlIndex, as: found)
            settled.append(row.ttlIndex)
            if !row.refused { trace.stopAtGapIfDue(rules: rules) }
        }
        return trace.finishOrContinue(slot: slot, table: table, rules: rules)
    }

    /// Sends, lets `path` answer, settles, times out the rest and settles again, until the trace finishes.
    /// Past the end of `path`, its last hop repeats.
    mutating func drive(_ path: [PathHop]) {
        for _ in 0..<200 {
            for cell in sendAll() {
                let (ttlIndex, attempt) = table.coordinates(of: cell, slot: slot)
                let sentTTL = Int(table.grid.firstTTL) + ttlIndex
                // The first unreachable router at or below this TTL answers for every probe past it.
                if let u = path.prefix(ttlIndex + 1).firstIndex(where: { if case .unreachable = $0 { true } else { false } }),
                    case .unreachable(let router) = path[u]
                {
                    answer(cell, .unreachable(code: 0), from: router, quotedTTL: sentTTL - (Int(table.grid.firstTTL) + u) + 1)
                    continue
                }
                switch ttlIndex < path.count ? path[ttlIndex] : path[path.count - 1] {
                case .router(let router): answer(cell, .timeExceeded, from: router)
                case .firstColumnOnly(let router) where attempt % table.samples == 0:
                    answer(cell, .timeExceeded, from: router)
                case .destination: answer(cell, .synAck, from: Self.destination)
                default: break
                }
            }
            if step() == .finished { return }
            timeOutRest()
            if step() == .finished { return }
        }
        Issue.record("the trace never finished")
    }
}

private func router(_ last: UInt8) -> IPv4Address { IPv4Address(198, 18, 0, last) }

@Suite struct TraceStateTests {
    @Test func aTraceThatReachesItsDestinationStopsAtThatTTL() {
        var bench = Bench()
        bench.drive([.router(router(1)), .router(router(2)), .router(router(3)), .destination])
        #expect(bench.trace.stopReason == .destination)
        #expect(bench.trace.stopTTLIndex == 3)
        #expect(bench.settled == [0, 1, 2, 3])
        // Probes went past it (the window is 8 TTLs), but the trace reports up to the destination only.
        #expect(bench.trace.nextProbe == 8)
        #expect(bench.trace.lastReportedTTLIndex(samples: 1) == 3)
        #expect(!bench.trace.canSend(samples: 1, rules: bench.rules))
    }

    @Test func theNearestAnswerOfTheDestinationWinsWhicheverCameFirst() {
        var bench = Bench()
        let cells = bench.sendAll()
        // TTL 6 answered first, TTL 4 later: the destination is 4 hops out.
        bench.answer(cells[5], .synAck, from: Bench.destination)
        #expect(bench.step() == .continuing)
        #expect(bench.trace.stopTTLIndex == 5 && bench.trace.stopReason == .destination)
        bench.answer(cells[3], .synAck, from: Bench.destination)
        for ttlIndex in 0..<3 { bench.answer(cells[ttlIndex], .timeExceeded, from: router(UInt8(ttlIndex + 1))) }
        #expect(bench.step() == .finished)
        #expect(bench.trace.stopTTLIndex == 3 && bench.trace.stopReason == .destination)
    }

    @Test(arguments: [1, 2, 3])
    func theGapLimitStopsTheTraceNSilentTTLsPastItsLastAnswer(gap: Int) {
        var bench = Bench(gapLimit: gap)
        bench.drive([.router(router(1)), .router(router(2)), .silent])
        #expect(bench.trace.stopReason == .gapLimit)
        // Two answered TTLs, then `gap` silent ones: the trace ends at TTL 2 + gap.
        #expect(bench.trace.stopTTLIndex == 1 + gap)
        #expect(bench.settled == Array(0...(1 + gap)))
        // It never sent further than the gap's look-ahead allowed.
        #expect(bench.trace.nextProbe == 2 + gap)
    }

    @Test func aHopAnsweredByOneProbeOfThreeIsNotSilenceForTheGap() {
        var bench = Bench(probesPerHop: 3, gapLimit: 1)
        bench.drive([.firstColumnOnly(router(1)), .firstColumnOnly(router(2)), .firstColumnOnly(router(3)),
            .destination])
        #expect(bench.trace.stopReason == .destination)
        #expect(bench.trace.stopTTLIndex == 3)
    }

    @Test func withoutAGapLimitASilentPathEndsAtTheLastTTL() {
        var bench = Bench(maxTTL: 6)
        bench.drive([.router(router(1)), .silent])
        #expect(bench.trace.stopReason == .maxTTL)
        #expect(bench.trace.stopTTLIndex == 5)
        #expect(bench.settled == Array(0...5))
    }

    @Test func anUnreachableEndsTheTraceAtTheRouterThatSentIt() {
        var bench = Bench()
        bench.drive([.router(router(1)), .router(router(2)), .unreachable(router(3))])
        #expect(bench.trace.stopReason == .unreachable)
        #expect(bench.trace.stopTTLIndex == 2)
        #expect(bench.settled == [0, 1, 2])
        // It answered its own TTL's probe: nothing had to be placed from a probe sent further.
        #expect(bench.trace.unreachableTTLIndex == 2 && bench.trace.unreachableCell == -1)
    }

    @Test func anUnreachableToAProbeSentFurtherIsPlacedWhereItsQuoteSaysItsRouterIs() {
        var bench = Bench()
        let cells = bench.sendAll()
        // The probe sent with TTL 6 reached the router with 5 left: it sits at TTL 2.
        bench.answer(cells[5], .unreachable(code: 0), from: router(2), quotedTTL: 5)
        bench.answer(cells[0], .timeExceeded, from: router(1))
        #expect(bench.step() == .continuing)
        #expect(bench.trace.stopReason == .unreachable && bench.trace.stopTTLIndex == 1)
        #expect(bench.trace.unreachableCell == cells[5])
        bench.timeOutRest()
        #expect(bench.step() == .finished)
        #expect(bench.settled == [0, 1])
    }

    @Test func aQuoteThatCannotBeTrueLeavesTheUnreachableWhereItsProbeWasSent() {
        var bench = Bench(firstTTL: 3)
        let cells = bench.sendAll()
        // Sent with TTL 5 (index 2): a quote of 0 or 1, or above 5 (rewritten), leaves it at TTL 5; 2 places
        // the router at TTL 4, 3 at TTL 3 (the first probed); 4 at TTL 2, before the first, so at the first.
        for (quoted, expected) in [(0, 2), (1, 2), (6, 2), (2, 1), (3, 0), (4, 0)] {
            bench.answer(cells[2], .unreachable(code: 0), from: router(9), quotedTTL: quoted)
            #expect(TraceState.placedTTLIndex(cell: cells[2], ttlIndex: 2, table: bench.table) == expected,
                "quoted \(quoted)")
        }
    }

    @Test func aRefusedProbeStopsTheTraceUnlessThePathStoppedItNearer() {
        var bench = Bench()
        bench.trace.refused(ttlIndex: 6)
        #expect(bench.trace.stopReason == .notSent && bench.trace.stopTTLIndex == 6)
        bench.trace.refused(ttlIndex: 4)
        #expect(bench.trace.stopReason == .notSent && bench.trace.stopTTLIndex == 4)

        var reached = Bench()
        reached.drive([.router(router(1)), .destination])
        reached.trace.refused(ttlIndex: 1)
        reached.trace.refused(ttlIndex: 5)
        #expect(reached.trace.stopReason == .destination && reached.trace.stopTTLIndex == 1)
    }

    @Test func aReplyForThePreviousOccupantOfTheSlotOrLaterThanTheWaitIsNotTaken() {
        var bench = Bench(maxTTL: 3)
        let cells = bench.sendAll()
        let epoch = bench.table.occupants[bench.slot].epoch
        // A late reply to the slot's last trace (one epoch earlier) at TTL 1, and a reply past the wait
        // (1 s) at TTL 2: both stay silence. TTL 3's own answer is taken.
        bench.answer(cells[0], .synAck, from: Bench.destination, epoch: epoch &- 1)
        bench.answer(cells[1], .timeExceeded, from: router(2), rttMicros: 1_000_001)
        bench.answer(cells[2], .timeExceeded, from: router(3))
        #expect(bench.step() == .continuing)
        #expect(bench.table.status[cells[0]] == .sent && bench.table.status[cells[1]] == .sent)
        #expect(bench.table.status[cells[2]] == .answered)
        bench.timeOutRest()
        #expect(bench.step() == .finished)
        #expect(bench.trace.stopReason == .maxTTL)
        #expect(bench.trace.destinationTTLIndex == Int.max)
    }

    @Test func aTraceKeepsAtMostItsWindowOfUnsettledTTLsOutstanding() {
        var bench = Bench(probesPerHop: 2, window: 3)
        #expect(bench.sendAll().count == 6)
        #expect(bench.trace.hasOutstanding(slot: bench.slot, table: bench.table))
        // TTL 1 settles: one more TTL may go out, no further.
        let first = bench.table.row(slot: bench.slot, ttlIndex: 0)
        bench.answer(first, .timeExceeded, from: router(1))
        bench.answer(first + 1, .timeExceeded, from: router(1))
        #expect(bench.step() == .continuing)
        #expect(bench.sendAll().count == 2)
        #expect(bench.trace.nextProbe / 2 == 4)
    }
}
