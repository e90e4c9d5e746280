// The scheduler loop (its configuration, summary and progress are in EngineConfiguration.swift). Many traces
// are in flight at once, fed by a token bucket and driven by replies the dispatcher recorded and by
// timeouts; the loop runs on one thread (the caller's), and the only thing it shares with the receive
// thread is the dispatcher's atomic tables. It calls parts that each do one job: `ProbeTable` (every
// probe's status, the slots' occupants and the slot pool), `TraceState` (the per-trace state machine:
// what to send next, what answers mean, where a trace stops), `TokenBucket` (the rate), `PositionBook`
// with the policy for silent hops (`EngineRateLimits.swift`), and result assembly
// (`EngineResults.swift`). What stays here: admission, sending, the timeout and re-ask queues, pacing,
// progress and cancellation.

import FastTraceWire

/// Runs traces over a transport: the scheduler loop. Each turn it takes in the replies the dispatcher
/// recorded, expires timeouts, releases re-asks that are due, admits new traces into free slots and
/// sends what the token bucket allows; the per-trace decisions are `TraceState`'s, the probes and slots
/// `ProbeTable`'s.
public final class TraceEngine {
    /// The run's configuration.
    public let configuration: EngineConfiguration
    /// The receive-side half (exposed for counters and tests).
    public let dispatcher: Dispatcher
    let transport: ProbeTransport
    let clock: EngineClock
    let codec: ProbeTagCodec
    /// The kind of probe the run sends (`configuration.method`'s): writes every probe.
    let kind: any ProbeKind
    /// The kind's tag layout, read once (not per probe through the existential).
    let tagLayout: ProbeTagCodec.TagLayout
    /// The probe table's shape (`table.grid`).
    let grid: ProbeGrid
    /// What the per-trace state machine reads of the configuration.
    let rules: TraceRules

    /// Called when a trace's next TTL is settled, in TTL order (for live single-target output).
    public var onHop: ((TraceRequest, HopResult) -> Void)?
    /// Called about four times a second with how the run is going (for a progress line).
    public var onProgress: ((RunProgress) -> Void)?
    /// Polled once per scheduler turn; when it returns true the run stops and the traces in flight are
    /// reported with what they have, as `interrupted`.
    public var shouldCancel: () -> Bool = { false }

    /// The run's counters so far, for a metrics endpoint: probes sent, replies matched and rejected,
    /// the transport's, positions caught rate-limiting. Read on the scheduler's thread (from
    /// `shouldCancel` or a result callback), not per packet.
    public var liveCounters: RunSummary {
        var live = summary
        live.dispatch = dispatcher.counters
        live.transport = transport.counters
        live.rateLimitedPositions = book.limitedPositions
        return live
    }

    /// Columns per hop (`-q`).
    let samples: Int
    /// Tries per column that are immediate retries (1 + `--retries`); the tries after them are re-asks.
    let immediateTries: Int

    /// One probe of a send batch.
    struct PendingProbe {
        var slot: Int
        var ttlIndex: Int
        var attempt: Int
        var isRetry: Bool
    }

    /// The scheduler's own bookkeeping per slot: its pacing and its place in the send queue.
    struct SendTurn {
        /// When (the scheduler turn that) sent its last probe, for `probeSpacingNanos`.
        var lastSend: UInt64 = 0
        var inReadyQueue = false
    }

    /// Every probe's status, the slots' occupants and the slot pool.
    var table: ProbeTable
    /// Per slot: its trace's state machine.
    var traces: [TraceState]
    /// Per slot: pacing and send-queue membership.
    var turns: [SendTurn]
    var bucket: TokenBucket
    var book = PositionBook()
    var ready: RingQueue<Int32>
    var timeouts: RingQueue<ProbeTimeout>
    var retryQueue: RingQueue<ProbeRetry>
    var reaskQueue: RingQueue<ProbeRetry>
    /// Re-asks held over budget, judged at their deadline (see `releaseReasks`).
    var heldReasks: RingQueue<ProbeTimeout>
    /// `book.evidence` when queued re-asks were last looked over (`dropUnwantedReasks`).
    var reaskEvidence = 0
    var pending: [PendingProbe]
    /// Per batch entry: the transport said the kernel refused it (reset as each batch is taken in).
    var refusedInBatch: [Bool]
    /// Traces one of whose probes the batch had refused, to move on once the batch is taken in.
    var refusedSlots: [Int]
    var activeCount = 0
    var summary = RunSummary()
    var onResult: (TraceResult) -> Void = { _ in }
    var lastProgress: UInt64 = 0
    var lastProgressProbes: UInt64 = 0
    var cancelling = false
    /// Some probe's timeout was taken before the receive path had delivered everything stamped by its
    /// deadline (it lagged past `maxReceiveLagNanos`): `finish` then looks for replies recorded after.
    var lagTimeoutsTaken = false
    /// Replies recorded for probes already given up that way (`finish`).
    var givenUpReplies: UInt64 = 0

    /// Makes an engine. The configuration must be valid (`problem == nil`).
    public init(configuration: EngineConfiguration, transport: ProbeTransport, clock: EngineClock,
        codec: ProbeTagCodec = .random())
    {
        precondition(configuration.problem == nil, configuration.problem ?? "")
        precondition(configuration.packetLength <= transport.maxPacketLength)
        self.configuration = configuration
        kind = configuration.method.kind
        tagLayout = kind.tagLayout
        self.transport = transport
        self.clock = clock
        self.codec = codec
        rules = TraceRules(configuration)
        samples = configuration.probesPerHop
        immediateTries = 1 + configuration.retries
        // Slots that rest after use (see `SlotPool`) are not in flight: keep room for them beyond
        // `maxInFlight`, within what the tag can name. Traces end at most as fast as probes go out, and a
        // trace takes a few probes at least: room for what ends at a quarter of `--rate` during one rest,
        // so that at high rates admission does not wait for rested slots (a mixed 40,000-target list at
        // --rate 50000 spent a third of its time so); at the default rate this is `maxInFlight` again.
        // A run that knows it has at most N traces needs no more than N slots (none is ever reused), and
        // one spare: admission asks the source for the next request only when a slot is free, and must
        // learn that the source is finished without waiting for a used slot's rest.
        let rest = Double(configuration.waitNanos + configuration.slotQuarantineExtraNanos) / 1e9
        let resting = max(configuration.maxInFlight, 1024, Int(min(Double(configuration.rate) * rest / 4, 1e6)))
        var slotCount = min(ProbeTag.slotCount, configuration.maxInFlight + resting)
        if let expected = configuration.expectedTraces { slotCount = min(slotCount, max(1, expected) + 1) }
        grid = ProbeGrid(firstTTL: configuration.firstTTL, maxTTL: configuration.maxTTL,
            attempts: configuration.probesPerHop * (immediateTries + configuration.effectiveReasks),
            slots: slotCount)
        dispatcher = Dispatcher(grid: grid, sourcePort: configuration.sourcePort, codec: codec,
            payloadLength: configuration.packetLength - kind.minimumLength, kind: kind,
            matchQuotedIPID: configuration.matchQuotedIPID,
            acceptTranslatedQuotes: configuration.acceptTranslatedQuotes, lateAfterNanos: configuration.waitNanos)
        table = ProbeTable(grid: grid, samples: samples, immediateTries: immediateTries,
            results: dispatcher.results, details: dispatcher.details, sendTimes: dispatcher.sendTimes,
            quarantineNanos: configuration.waitNanos + configuration.slotQuarantineExtraNanos)
        traces = Array(repeating: TraceState(), count: grid.slots)
        turns = Array(repeating: SendTurn(), count: grid.slots)
        bucket = TokenBucket(rate: configuration.rate,
            capacity: max(Double(transport.maxBatch), Double(configuration.rate) / 100), now: 0)
        ready = RingQueue(capacity: grid.slots)
        // Starts small and doubles while the run warms up (to at most slots × window × attempts).
        timeouts = RingQueue(capacity: min(1 << 12, grid.slots * min(configuration.window, grid.ttlCount)
            * grid.attempts + transport.maxBatch))
        retryQueue = RingQueue(capacity: 1024)
        reaskQueue = RingQueue(capacity: 1024)
        heldReasks = RingQueue(capacity: 1024)
        pending = Array(repeating: PendingProbe(slot: 0, ttlIndex: 0, attempt: 0, isRetry: false),
            count: transport.maxBatch)
        refusedInBatch = Array(repeating: false, count: transport.maxBatch)
        refusedSlots = []
        refusedSlots.reserveCapacity(transport.maxBatch)
    }

    /// Traces every request, calling `onResult` as each finishes (in completion order). Returns when
    /// all are done or the run was cancelled.
    public func run<Requests: IteratorProtocol<TraceRequest>>(
        _ requests: inout Requests, onResult: @escaping (TraceResult) -> Void
    ) throws -> RunSummary {
        var source = IteratorRequestSource(requests)
        defer { requests = source.iterator }
        return try run(source: &source, onResult: onResult)
    }

    /// Traces every request `source` yields, calling `onResult` as each finishes (in completion order).
    /// A source that is not ready (`.pending`, e.g. a name still resolving) never holds up the traces
    /// already in flight. Returns when the source is finished and every trace is done, or the run was
    /// cancelled.
    public func run<Source: TraceRequestSource>(
        source requests: inout Source, onResult: @escaping (TraceResult) -> Void
    ) throws -> RunSummary {
        self.onResult = onResult
        let started = clock.now()
        bucket = TokenBucket(rate: configuration.rate, capacity: bucket.capacity, now: started)
        lastProgress = started
        try transport.startReceiving(dispatcher)
        defer { transport.stopReceiving() }
        var exhausted = false
        // What the last turn ended waiting for, and since when (for `SendLimits`).
        var turnStarted = started
        // How long the last turn's send calls took: time the run spent sending, not waiting.
        var sending: UInt64 = 0
        var limit = SendLimits.Reason.replies

        while true {
            let now = clock.now()
            let turn = now &- turnStarted, sent = min(sending, turn)
            summary.sendLimits.add(sent, .sending)
            summary.sendLimits.add(turn &- sent, limit)
            turnStarted = now
            if shouldCancel() {
                summary.cancelled = true
                break
            }
            dispatcher.notifications.drain { slot in self.settle(Int(slot), now: now) }
            expireTimeouts(now: now)
            releaseReasks(now: now)
            if !exhausted { exhausted = admit(&requests, now: now) }
            try sendBurst(now: now)
            sending = clock.now() &- now
            limit = sendLimit(exhausted: exhausted, repeats: requests.repeatsTargets, now: now)
            if exhausted && activeCount == 0 { break }
            if let onProgress, now >= lastProgress + 250_000_000 {
                let seconds = Double(now - lastProgress) / 1e9
                onProgress(RunProgress(finished: summary.traces, inFlight: activeCount,
                    probesSent: summary.probesSent,
                    probesPerSecond: Double(summary.probesSent - lastProgressProbes) / seconds))
                lastProgress = now
                lastProgressProbes = summary.probesSent
            }
            var wake = nextWake(now: now)
            // Nothing in flight, nothing queued, and the source knows when it next has work: no wake-up
            // every poll interval between rounds.
            if activeCount == 0 && ready.isEmpty && retryQueue.isEmpty && reaskQueue.isEmpty && heldReasks.isEmpty,
                let due = requests.nextDueNanos, due > wake
            {
                wake = min(due, now + configuration.idleWakeNanos)
            }
            clock.sleep(until: wake)
        }

        if summary.cancelled {
            cancelling = true
            let now = clock.now()
            for index in table.occupants.indices where table.occupants[index].active {
                traces[index].ingest(slot: index, table: &table, rules: rules)
                finish(index, now: now)
            }
        }
        summary.elapsedNanos = clock.now() &- started
        transport.stopReceiving()
        summary.dispatch = dispatcher.counters
        // Replies recorded for probes already given up (the receive path lagged past maxReceiveLagNanos):
        // counted matched by the receive thread, shown on no hop. Late, as the summary says of any reply
        // that came too late to count.
        summary.dispatch.matched -= min(summary.dispatch.matched, givenUpReplies)
        summary.dispatch.stale += givenUpReplies
        summary.transport = transport.counters
        summary.rateLimitedPositions = book.limitedPositions
        if book.limitedPositions == 0 { summary.reportedBeforeLimits = 0 }
        return summary
    }

    /// What keeps probes from going out faster after this turn's sending: the rate when probes wait
    /// for tokens; otherwise the in-flight cap, the list, or the traces' own waiting.
    private func sendLimit(exhausted: Bool, repeats: Bool, now: UInt64) -> SendLimits.Reason {
        if bucket.available < 1 && !(ready.isEmpty && retryQueue.isEmpty) { return .rate }
        if activeCount >= configuration.maxInFlight { return .inFlightCap }
        // Room for more traces, but the free slots still rest after their last occupant.
        if !exhausted, let next = table.nextAvailable, next > now { return .slots }
        // A list still being read holds the run up; rounds that wait for the traces in flight do not.
        if !exhausted && (!repeats || activeCount == 0) { return .list }
        return .replies
    }

    // MARK: admission

    /// Fills free slots while the send queue is short (about 20 ms of work at the configured rate), so
    /// traces in flight grow with the rate and with how many are waiting on timeouts, not with the list.
    private func admit<Source: TraceRequestSource>(_ requests: inout Source, now: UInt64) -> Bool {
        let readyTarget = max(64, configuration.rate / 50)
        while activeCount < configuration.maxInFlight && ready.count < readyTarget,
            let next = table.nextAvailable, next <= now
        {
            let request: TraceRequest
            switch requests.poll() {
            case .request(let r): request = r
            case .pending: return false
            case .finished: return true
            }
            guard let index = table.occupy(now: now) else { preconditionFailure("slot pool changed under admission") }
            // Publish the occupant last: the receive thread accepts replies for it from here on.
            let flow = ProbeFlow(source: request.source, destination: request.destination,
                sourcePort: configuration.sourcePort, destinationPort: request.port,
                protocolNumber: kind.protocolNumber, epoch: table.occupants[index].epoch)
            let digest = codec.digest(flow)
            table.occupants[index].flow = flow
            table.occupants[index].digest = digest
            dispatcher.unmatchedAnswers?.storeRelaxed(index, 0)
            dispatcher.slots.publish(index, flow: flow, digest: digest)
            if let byFlow = dispatcher.slotsByFlow {
                byFlow.storeRelaxed(dispatcher.flowBucket(flow.destination, port: flow.destinationPort), UInt64(index) + 1)
            }
            traces[index] = TraceState(request: request, ttlCount: grid.ttlCount)
            turns[index] = SendTurn()
            activeCount += 1
            enqueue(index)
        }
        return false
    }

    func enqueue(_ index: Int) {
        guard !turns[index].inReadyQueue, canSend(index) else { return }
        turns[index].inReadyQueue = true
        ready.push(Int32(index))
    }

    @inline(__always) private func canSend(_ index: Int) -> Bool {
        table.occupants[index].active && traces[index].canSend(samples: samples, rules: rules)
    }

    // MARK: sending

    private func sendBurst(now: UInt64) throws {
        bucket.refill(now: now)
        while bucket.available >= 1 && !(ready.isEmpty && retryQueue.isEmpty) {
            let limit = min(transport.maxBatch, bucket.available)
            var count = 0
            // Retries and re-asks first: their traces are waiting on them to settle a TTL.
            while count < limit, let retry = retryQueue.pop() {
                let index = Int(retry.slot)
                let cell = grid.cell(slot: index, ttlIndex: Int(retry.ttlIndex), attempt: Int(retry.attempt))
                guard table.holds(slot: index, epoch: retry.epoch, cell: cell, .retryQueued) else { continue }
                pending[count] = PendingProbe(slot: index, ttlIndex: Int(retry.ttlIndex), attempt: Int(retry.attempt),
                    isRetry: true)
                count += 1
            }
            var passes = ready.count
            while count < limit && passes > 0, let popped = ready.pop() {
                passes -= 1
                let index = Int(popped)
                turns[index].inReadyQueue = false
                guard canSend(index) else { continue }
                if turns[index].lastSend != 0 && now < turns[index].lastSend + configuration.probeSpacingNanos {
                    turns[index].inReadyQueue = true
                    ready.push(popped)
                    continue
                }
                let probe = traces[index].takeProbe(samples: samples)
                pending[count] = PendingProbe(slot: index, ttlIndex: probe.ttlIndex, attempt: probe.attempt,
                    isRetry: false)
                count += 1
                enqueue(index)
            }
            if count == 0 { break }

            let sentCount = try transport.send(count: count) { i, buffer in
                let p = self.pending[i]
                let ttl = UInt8(Int(self.grid.firstTTL) + p.ttlIndex)
                let tag = ProbeTag(slot: UInt16(p.slot), ttl: ttl, attempt: UInt8(p.attempt))
                let occupant = self.table.occupants[p.slot]
                let stamp = self.codec.encode(tag, digest: occupant.digest, layout: self.tagLayout)
                let length = self.kind.write(ProbeSpec(flow: occupant.flow, ttl: ttl, stamp: stamp,
                    tos: self.configuration.tos, dontFragment: self.configuration.dontFragment,
                    length: self.configuration.packetLength), into: buffer)
                if let byID = self.dispatcher.slotsByIPID { byID.storeRelaxed(Int(stamp.ipID), UInt64(p.slot) + 1) }
                // Stamped per packet, as it is built, on the clock the ring stamps replies with.
                self.dispatcher.sendTimes.store(
                    self.grid.cell(slot: p.slot, ttlIndex: p.ttlIndex, attempt: p.attempt), self.clock.stampNow())
                return (length, occupant.flow.destination)
            } refused: { i in
                self.refusedInBatch[i] = true
            }
            let sentAt = clock.now()
            var refusedCount = 0
            for i in 0..<count {
                let p = pending[i]
                let cell = grid.cell(slot: p.slot, ttlIndex: p.ttlIndex, attempt: p.attempt)
                if i < sentCount && refusedInBatch[i] {
                    // Refused by the kernel: it never left, so it is neither sent nor silent, gets no
                    // timeout, retry or re-ask, and teaches nothing about the path. The trace stops here
                    // (see `TraceState.refused`).
                    refusedInBatch[i] = false
                    refusedCount += 1
                    table.status[cell] = .refused
                    dispatcher.sendTimes.store(cell, 0)
                    traces[p.slot].refused(ttlIndex: p.ttlIndex)
                    if !refusedSlots.contains(p.slot) { refusedSlots.append(p.slot) }
                    continue
                }
                if i < sentCount {
                    table.status[cell] = .sent
                    // Spacing counts from the turn that sent it: turns are one poll interval apart, so
                    // a trace can send once per turn (counting from the moment `sendmmsg` returned,
                    // a little after the turn began, would hold it back every other turn).
                    turns[p.slot].lastSend = now
                    traces[p.slot].noteSent(at: sentAt)
                    let stamp = dispatcher.sendTimes.loadRelaxed(cell)
                    timeouts.push(ProbeTimeout(deadline: sentAt + configuration.waitNanos,
                        stampDeadline: stamp + configuration.waitNanos,
                        slot: Int32(p.slot), epoch: table.occupants[p.slot].epoch, cell: Int32(cell)))
                    if p.attempt >= samples * immediateTries { summary.reasksSent += 1 }
                    continue
                }
                // Not taken by the kernel: it was never sent, so no reply can be for it.
                dispatcher.sendTimes.store(cell, 0)
                if p.isRetry {
                    retryQueue.push(ProbeRetry(slot: Int32(p.slot), epoch: table.occupants[p.slot].epoch,
                        ttlIndex: Int32(p.ttlIndex), attempt: Int32(p.attempt)))
                } else {
                    traces[p.slot].returnProbe()
                    enqueue(p.slot)
                }
            }
            summary.probesSent += UInt64(sentCount - refusedCount)
            summary.probesRefused += UInt64(refusedCount)
            bucket.spend(sentCount)
            // Traces with a refused probe: settle what they can (one may be finished by it).
            for index in refusedSlots where table.occupants[index].active { advance(index, now: now) }
            refusedSlots.removeAll(keepingCapacity: true)
            if sentCount < count { break }
        }
    }

    /// When the scheduler looks again: one poll interval (1 ms) after this turn began, whatever is due
    /// sooner. Nothing loses by waiting that long: a timeout, re-ask or reply is taken up at most one
    /// interval late, and replies are judged by their kernel timestamps, not by when they are read; the
    /// bucket holds more than an interval's tokens (`capacity` ≥ rate / 100), so none are lost while
    /// asleep. What it saves is what dominated the CPU at moderate rates: a wake-up (a context switch)
    /// per token and per deadline, and a `sendmmsg` per packet. Once per interval, the interval's tokens
    /// go out together (8 packets per `sendmmsg` at 8,000 probes/s).
    private func nextWake(now: UInt64) -> UInt64 {
        now + configuration.pollIntervalNanos
    }

    // MARK: replies, timeouts and re-asks

    private func expireTimeouts(now: UInt64) {
        let received = dispatcher.receivedThroughNanos
        while let head = timeouts.peek(), head.deadline <= now,
            head.stampDeadline <= received || now >= head.deadline + configuration.maxReceiveLagNanos
        {
            _ = timeouts.pop()
            let index = Int(head.slot)
            let cell = Int(head.cell)
            // A timeout for a trace that has finished (or a slot now holding another) is a no-op.
            guard table.holds(slot: index, epoch: head.epoch, cell: cell, .sent) else { continue }
            // Taken before the receive path delivered everything stamped by the deadline: its reply may
            // still come, within the wait, after the probe was given up (`finish` counts those).
            if head.stampDeadline > received { lagTimeoutsTaken = true }
            traces[index].ingest(slot: index, table: &table, rules: rules)
            if table.status[cell] == .sent {
                table.status[cell] = .timedOut
                followUp(index, cell: cell, now: now)
            }
            advance(index, now: now)
        }
    }

    /// Takes in whatever the dispatcher recorded for a slot, then moves the trace on.
    private func settle(_ index: Int, now: UInt64) {
        guard table.occupants[index].active else { return }
        traces[index].ingest(slot: index, table: &table, rules: rules)
        advance(index, now: now)
    }

    /// Settles the trace's TTLs in order (each reported through `onHop` as it settles, with what the
    /// rate-limit policy learns from it); finishes the trace or queues it for more sending.
    func advance(_ index: Int, now: UInt64) {
        while let row = traces[index].nextSettled(slot: index, table: table) {
            // A TTL the kernel refused probes for (where the trace stops) teaches nothing about the path.
            let found = row.refused ? nil
                : learn(index, ttlIndex: row.ttlIndex, answeredAny: row.answeredAny, silentAny: row.silentAny, now: now)
            traces[index].settle(row.ttlIndex, as: found)
            if let onHop { onHop(traces[index].request, hop(index, ttlIndex: row.ttlIndex)) }
            if !row.refused { traces[index].stopAtGapIfDue(rules: rules) }
        }
        switch traces[index].finishOrContinue(slot: index, table: table, rules: rules) {
        case .finished: finish(index, now: now)
        case .continuing: enqueue(index)
        }
    }
}
