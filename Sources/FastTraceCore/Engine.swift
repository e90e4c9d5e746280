// The scheduler: many traces in flight, each a small state machine over its TTLs, fed by a token
// bucket and driven by replies the dispatcher recorded and by timeouts. It runs on one thread (the
// caller's); the only thing it shares with the receive thread is the dispatcher's atomic tables.

import FastTraceWire

/// How a run probes.
public struct EngineConfiguration: Sendable, Equatable {
    /// First TTL probed (`-f`).
    public var firstTTL: UInt8 = 1
    /// Last TTL probed (`-m`).
    public var maxTTL: UInt8 = 30
    /// Probes per TTL (`-q`): the columns of a hop line.
    public var probesPerHop: Int = 3
    /// Times a probe that got no answer is sent again before its column is `*` (`--retries`).
    /// `probesPerHop × (1 + retries)` must fit the tag's attempt field (8).
    public var retries: Int = 0
    /// How long to wait for a probe's reply (`-w`), in ns.
    public var waitNanos: UInt64 = 3_000_000_000
    /// A probe counts as answered when its reply's kernel timestamp is within `waitNanos` of the send,
    /// however late user space reads it: a timeout is final only once the transport reports it has
    /// delivered everything stamped before the deadline. If the receive path lags by more than this,
    /// the timeout is taken anyway (so a stalled receiver cannot hang the run).
    public var maxReceiveLagNanos: UInt64 = 2_000_000_000
    /// Source port of every probe (`--sport`).
    public var sourcePort: UInt16 = 33434
    /// IP type of service (`-t`).
    public var tos: UInt8 = 0
    /// Total IP packet length (`-l`), 40...1500.
    public var packetLength: Int = 40
    /// Set the IP don't-fragment bit (`-F`).
    public var dontFragment: Bool = false
    /// Probes per second across the whole run (`--rate`).
    public var rate: Int = 2000
    /// Stop a trace after this many consecutive silent TTLs; 0 disables (`--gap`).
    public var gapLimit: Int = 0
    /// Most traces in flight at once (`--max-in-flight`), up to `ProbeTag.slotCount`.
    public var maxInFlight: Int = 4096
    /// TTLs a trace may have probes outstanding for at once.
    public var window: Int = 8
    /// Least time between two probes of one trace, in ns, so a destination sees one SYN of a 4-tuple
    /// at a time and no router gets a trace's probes in a burst.
    public var probeSpacingNanos: UInt64 = 1_000_000
    /// How often the scheduler looks for news when nothing else wakes it, in ns.
    public var pollIntervalNanos: UInt64 = 1_000_000

    public init() {}

    /// A reason this configuration cannot run, or nil.
    public var problem: String? {
        if firstTTL < 1 { return "first TTL must be at least 1" }
        if maxTTL < firstTTL { return "max TTL (\(maxTTL)) is below the first TTL (\(firstTTL))" }
        if probesPerHop < 1 || probesPerHop > ProbeTag.attemptCount {
            return "probes per hop must be 1...\(ProbeTag.attemptCount)"
        }
        if retries < 0 || probesPerHop * (1 + retries) > ProbeTag.attemptCount {
            return "probes per hop × (1 + retries) must be at most \(ProbeTag.attemptCount)"
        }
        if waitNanos == 0 { return "wait time must be positive" }
        if packetLength < TCPProbeWriter.minimumLength || packetLength > TCPProbeWriter.maximumLength {
            return "packet length must be \(TCPProbeWriter.minimumLength)...\(TCPProbeWriter.maximumLength)"
        }
        if rate < 1 { return "rate must be at least 1 probe per second" }
        if gapLimit < 0 { return "gap limit must be 0 (off) or positive" }
        if maxInFlight < 1 || maxInFlight > ProbeTag.slotCount {
            return "traces in flight must be 1...\(ProbeTag.slotCount)"
        }
        if window < 1 { return "window must be at least 1" }
        return nil
    }
}

/// What a run did, for the summary line.
public struct RunSummary: Sendable, Equatable {
    /// Traces finished.
    public var traces = 0
    /// Traces whose destination answered.
    public var reached = 0
    /// Probes sent.
    public var probesSent: UInt64 = 0
    /// What the receive path counted.
    public var dispatch = DispatchCounters()
    /// What the transport counted.
    public var transport = TransportCounters()
    /// Wall time of the run in ns (engine clock).
    public var elapsedNanos: UInt64 = 0
    /// True when the run was cancelled before every trace finished.
    public var cancelled = false

    public init() {}

    /// Probes per second over the run.
    public var probesPerSecond: Double {
        elapsedNanos == 0 ? 0 : Double(probesSent) / (Double(elapsedNanos) / 1e9)
    }
}

/// A snapshot of a run in progress.
public struct RunProgress: Sendable, Equatable {
    /// Traces finished so far.
    public var finished: Int
    /// Traces in flight.
    public var inFlight: Int
    /// Probes sent so far.
    public var probesSent: UInt64
    /// Average send rate so far.
    public var probesPerSecond: Double
}

/// Runs traces over a transport.
public final class TraceEngine {
    /// The run's configuration.
    public let configuration: EngineConfiguration
    /// The receive-side half (exposed for counters and tests).
    public let dispatcher: Dispatcher
    let transport: ProbeTransport
    let clock: EngineClock
    let codec: ProbeTagCodec
    let grid: ProbeGrid

    /// Called when a trace's next TTL is settled, in TTL order (for live single-target output).
    public var onHop: ((TraceRequest, HopResult) -> Void)?
    /// Called about four times a second with how the run is going (for a progress line).
    public var onProgress: ((RunProgress) -> Void)?
    /// Polled once per scheduler turn; when it returns true the run stops and the traces in flight are
    /// reported with what they have.
    public var shouldCancel: () -> Bool = { false }

    // Probe status per cell (scheduler-only). A cell is one try: attempt `sample + samples × try`.
    private static let unsent: UInt8 = 0, sent: UInt8 = 1, answered: UInt8 = 2, timedOut: UInt8 = 3,
        retryQueued: UInt8 = 4
    /// Columns per hop (`-q`).
    private let samples: Int

    private struct Slot {
        var active = false
        var generation: UInt8 = 0
        var request = TraceRequest(index: 0, destination: .any, port: 0, source: .any)
        var nextProbe = 0
        var resolvedTTLs = 0
        var stopTTLIndex = 0
        var stopReason = StopReason.maxTTL
        var lastSend: UInt64 = 0
        var silentRun = 0
        var highestAnswered = -1
        var probesSent = 0
        var inReadyQueue = false
    }

    private struct PendingProbe {
        var slot: Int
        var ttlIndex: Int
        var attempt: Int
        var isRetry: Bool
    }

    private struct Retry {
        var slot: Int32
        var generation: UInt8
        var ttlIndex: Int32
        var attempt: Int32
    }

    private struct Timeout {
        var deadline: UInt64
        var slot: Int32
        var generation: UInt8
        var cell: Int32
    }

    private var slots: [Slot]
    private var status: [UInt8]
    private var freeSlots: [Int]
    private var ready: RingQueue<Int32>
    private var timeouts: RingQueue<Timeout>
    private var retryQueue: RingQueue<Retry>
    private var pending: [PendingProbe]
    private var activeCount = 0
    private var summary = RunSummary()
    private var tokens: Double = 0
    private var lastRefill: UInt64 = 0
    private var onResult: (TraceResult) -> Void = { _ in }
    private var lastProgress: UInt64 = 0

    /// Makes an engine. The configuration must be valid (`problem == nil`).
    public init(configuration: EngineConfiguration, transport: ProbeTransport, clock: EngineClock,
        codec: ProbeTagCodec = .random())
    {
        precondition(configuration.problem == nil, configuration.problem ?? "")
        precondition(configuration.packetLength <= transport.maxPacketLength)
        self.configuration = configuration
        self.transport = transport
        self.clock = clock
        self.codec = codec
        samples = configuration.probesPerHop
        grid = ProbeGrid(firstTTL: configuration.firstTTL, maxTTL: configuration.maxTTL,
            attempts: configuration.probesPerHop * (1 + configuration.retries), slots: configuration.maxInFlight)
        dispatcher = Dispatcher(grid: grid, sourcePort: configuration.sourcePort, codec: codec)
        slots = Array(repeating: Slot(), count: grid.slots)
        status = Array(repeating: Self.unsent, count: grid.slots * grid.cellsPerSlot)
        freeSlots = Array((0..<grid.slots).reversed())
        ready = RingQueue(capacity: grid.slots)
        timeouts = RingQueue(capacity: min(1 << 20, grid.slots * min(configuration.window, grid.ttlCount)
            * grid.attempts + transport.maxBatch))
        retryQueue = RingQueue(capacity: 1024)
        pending = Array(repeating: PendingProbe(slot: 0, ttlIndex: 0, attempt: 0, isRetry: false),
            count: transport.maxBatch)
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
        lastRefill = started
        tokens = 1
        try transport.startReceiving(dispatcher)
        defer { transport.stopReceiving() }
        var exhausted = false

        while true {
            let now = clock.now()
            if shouldCancel() {
                summary.cancelled = true
                break
            }
            dispatcher.notifications.drain { slot in self.settle(Int(slot)) }
            expireTimeouts(now: now)
            if !exhausted { exhausted = admit(&requests) }
            try sendBurst(now: now)
            if exhausted && activeCount == 0 { break }
            if let onProgress, now >= lastProgress + 250_000_000 {
                lastProgress = now
                let seconds = Double(now &- started) / 1e9
                onProgress(RunProgress(finished: summary.traces, inFlight: activeCount,
                    probesSent: summary.probesSent,
                    probesPerSecond: seconds > 0 ? Double(summary.probesSent) / seconds : 0))
            }
            clock.sleep(until: nextWake(now: now))
        }

        if summary.cancelled {
            for index in slots.indices where slots[index].active {
                settle(index)
                if slots[index].active { finish(index) }
            }
        }
        summary.elapsedNanos = clock.now() &- started
        transport.stopReceiving()
        summary.dispatch = dispatcher.counters
        summary.transport = transport.counters
        return summary
    }

    // MARK: admission

    /// Fills free slots while the send queue is short (about 20 ms of work at the configured rate), so
    /// traces in flight grow with the rate and with how many are waiting on timeouts, not with the list.
    private func admit<Source: TraceRequestSource>(_ requests: inout Source) -> Bool {
        let readyTarget = max(64, configuration.rate / 50)
        while !freeSlots.isEmpty && ready.count < readyTarget {
            let request: TraceRequest
            switch requests.poll() {
            case .request(let next): request = next
            case .pending: return false
            case .finished: return true
            }
            let index = freeSlots.removeLast()
            var slot = slots[index]
            slot.active = true
            slot.generation = (slot.generation &+ 1) & 3
            slot.request = request
            slot.nextProbe = 0
            slot.resolvedTTLs = 0
            slot.stopTTLIndex = grid.ttlCount - 1
            slot.stopReason = .maxTTL
            slot.lastSend = 0
            slot.silentRun = 0
            slot.highestAnswered = -1
            slot.probesSent = 0
            let base = index * grid.cellsPerSlot
            for cell in base..<(base + grid.cellsPerSlot) {
                status[cell] = Self.unsent
                dispatcher.results.storeRelaxed(cell, 0)
                dispatcher.sendTimes.storeRelaxed(cell, 0)
            }
            // Publish the occupant last: the receive thread accepts replies for it from here on.
            dispatcher.slotWords.store(index,
                Dispatcher.slotWord(generation: slot.generation, destination: request.destination,
                    port: request.port))
            slots[index] = slot
            activeCount += 1
            enqueue(index)
        }
        return false
    }

    private func enqueue(_ index: Int) {
        guard !slots[index].inReadyQueue, canSend(index) else { return }
        slots[index].inReadyQueue = true
        ready.push(Int32(index))
    }

    private func canSend(_ index: Int) -> Bool {
        let slot = slots[index]
        guard slot.active else { return false }
        let ttlIndex = slot.nextProbe / samples
        // With a gap limit, TTLs more than `gap` past the highest that answered are speculative: if
        // those `gap` stay silent the trace stops there, so wait for an answer before going further.
        let gap = configuration.gapLimit
        if gap > 0 && ttlIndex > slot.highestAnswered + gap { return false }
        return ttlIndex <= slot.stopTTLIndex && ttlIndex < slot.resolvedTTLs + configuration.window
    }

    // MARK: sending

    private func sendBurst(now: UInt64) throws {
        let elapsed = now &- lastRefill
        lastRefill = now
        let burst = max(Double(transport.maxBatch), Double(configuration.rate) / 100)
        tokens = min(burst, tokens + Double(elapsed) * Double(configuration.rate) / 1e9)

        while tokens >= 1 && !(ready.isEmpty && retryQueue.isEmpty) {
            let limit = min(transport.maxBatch, Int(tokens))
            var count = 0
            // Retries first: their traces are waiting on them to settle a TTL.
            while count < limit, let retry = retryQueue.pop() {
                let index = Int(retry.slot)
                let cell = grid.cell(slot: index, ttlIndex: Int(retry.ttlIndex), attempt: Int(retry.attempt))
                guard slots[index].active, slots[index].generation == retry.generation,
                    status[cell] == Self.retryQueued
                else { continue }
                pending[count] = PendingProbe(slot: index, ttlIndex: Int(retry.ttlIndex), attempt: Int(retry.attempt),
                    isRetry: true)
                count += 1
            }
            var passes = ready.count
            while count < limit && passes > 0, let popped = ready.pop() {
                passes -= 1
                let index = Int(popped)
                slots[index].inReadyQueue = false
                guard canSend(index) else { continue }
                if slots[index].lastSend != 0 && now < slots[index].lastSend + configuration.probeSpacingNanos {
                    slots[index].inReadyQueue = true
                    ready.push(popped)
                    continue
                }
                let probe = slots[index].nextProbe
                pending[count] = PendingProbe(slot: index, ttlIndex: probe / samples, attempt: probe % samples,
                    isRetry: false)
                slots[index].nextProbe += 1
                count += 1
                enqueue(index)
            }
            if count == 0 { break }

            let sendTime = clock.now()
            for i in 0..<count {
                let p = pending[i]
                let cell = grid.cell(slot: p.slot, ttlIndex: p.ttlIndex, attempt: p.attempt)
                dispatcher.sendTimes.store(cell, sendTime)
            }
            let sentCount = try transport.send(count: count) { i, buffer in
                let p = self.pending[i]
                let slot = self.slots[p.slot]
                let ttl = UInt8(Int(self.grid.firstTTL) + p.ttlIndex)
                let tag = ProbeTag(slot: UInt16(p.slot), generation: slot.generation, ttl: ttl,
                    attempt: UInt8(p.attempt))
                let probe = TCPProbe(
                    source: slot.request.source, destination: slot.request.destination,
                    sourcePort: self.configuration.sourcePort, destinationPort: slot.request.port,
                    sequence: self.codec.encode(tag), ttl: ttl, tos: self.configuration.tos,
                    ipID: UInt16(truncatingIfNeeded: p.slot &* 31 &+ Int(ttl) << 3 &+ p.attempt),
                    dontFragment: self.configuration.dontFragment, length: self.configuration.packetLength)
                return (TCPProbeWriter.write(probe, into: buffer), slot.request.destination)
            }
            for i in 0..<count {
                let p = pending[i]
                let cell = grid.cell(slot: p.slot, ttlIndex: p.ttlIndex, attempt: p.attempt)
                if i < sentCount {
                    status[cell] = Self.sent
                    slots[p.slot].lastSend = sendTime
                    slots[p.slot].probesSent += 1
                    timeouts.push(Timeout(deadline: sendTime + configuration.waitNanos,
                        slot: Int32(p.slot), generation: slots[p.slot].generation, cell: Int32(cell)))
                } else if p.isRetry {
                    // Not taken by the kernel (socket buffer full): give the probe back.
                    retryQueue.push(Retry(slot: Int32(p.slot), generation: slots[p.slot].generation,
                        ttlIndex: Int32(p.ttlIndex), attempt: Int32(p.attempt)))
                } else {
                    slots[p.slot].nextProbe -= 1
                    enqueue(p.slot)
                }
            }
            summary.probesSent += UInt64(sentCount)
            tokens -= Double(sentCount)
            if sentCount < count { break }
        }
    }

    private func nextWake(now: UInt64) -> UInt64 {
        var wake = now + configuration.pollIntervalNanos
        // A deadline already passed waits on the receive watermark: look again after one poll interval.
        if let head = timeouts.peek(), head.deadline > now, head.deadline < wake { wake = head.deadline }
        if !(ready.isEmpty && retryQueue.isEmpty) && tokens < 1 {
            let needed = UInt64((1 - tokens) * 1e9 / Double(configuration.rate))
            wake = min(wake, now + max(needed, 1))
        }
        return wake
    }

    // MARK: replies and timeouts

    private func expireTimeouts(now: UInt64) {
        let received = dispatcher.receivedThroughNanos
        while let head = timeouts.peek(), head.deadline <= now,
            head.deadline <= received || now >= head.deadline + configuration.maxReceiveLagNanos
        {
            _ = timeouts.pop()
            let index = Int(head.slot)
            guard slots[index].active, slots[index].generation == head.generation,
                status[Int(head.cell)] == Self.sent
            else { continue }
            ingest(index)
            let cell = Int(head.cell)
            if status[cell] == Self.sent {
                status[cell] = Self.timedOut
                // Another try for this column, if any are left: the next attempt number of its sample.
                let offset = cell - index * grid.cellsPerSlot
                let ttlIndex = offset / grid.attempts, attempt = offset % grid.attempts
                if attempt + samples < grid.attempts && ttlIndex <= slots[index].stopTTLIndex {
                    status[cell + samples] = Self.retryQueued
                    retryQueue.push(Retry(slot: head.slot, generation: head.generation, ttlIndex: Int32(ttlIndex),
                        attempt: Int32(attempt + samples)))
                }
            }
            advance(index)
        }
    }

    /// Takes in whatever the dispatcher recorded for a slot, then moves the trace on.
    private func settle(_ index: Int) {
        guard slots[index].active else { return }
        ingest(index)
        advance(index)
    }

    /// Marks answered probes and applies what the answers mean (destination reached, unreachable).
    private func ingest(_ index: Int) {
        let slot = slots[index]
        let lastTTL = min(slot.stopTTLIndex, (slot.nextProbe - 1) / samples)
        guard lastTTL >= slot.resolvedTTLs else { return }
        for ttlIndex in slot.resolvedTTLs...lastTTL {
            for attempt in 0..<grid.attempts {
                let cell = grid.cell(slot: index, ttlIndex: ttlIndex, attempt: attempt)
                guard status[cell] == Self.sent else { continue }
                let reply = PackedReply(word: dispatcher.results.load(cell))
                guard reply.isValid, reply.generation == slot.generation,
                    UInt64(reply.rttMicros) * 1_000 <= configuration.waitNanos
                else { continue }
                status[cell] = Self.answered
                slots[index].highestAnswered = max(slots[index].highestAnswered, ttlIndex)
                switch reply.outcome {
                case .synAck, .reset:
                    if ttlIndex < slots[index].stopTTLIndex || slots[index].stopReason != .destination {
                        slots[index].stopTTLIndex = min(slots[index].stopTTLIndex, ttlIndex)
                        slots[index].stopReason = .destination
                    }
                case .unreachable:
                    if ttlIndex < slots[index].stopTTLIndex {
                        slots[index].stopTTLIndex = ttlIndex
                        slots[index].stopReason = .unreachable
                    }
                case .timeExceeded, .none:
                    break
                }
            }
        }
    }

    /// Settles TTLs in order; finishes the trace or queues it for more sending.
    private func advance(_ index: Int) {
        while slots[index].resolvedTTLs <= slots[index].stopTTLIndex {
            let row = grid.cell(slot: index, ttlIndex: slots[index].resolvedTTLs, attempt: 0)
            var answeredAny = false
            var settled = true
            for sample in 0..<samples {
                switch columnState(row: row, sample: sample) {
                case .answered: answeredAny = true
                case .silent: break
                case .pending: settled = false
                }
            }
            guard settled else { break }
            slots[index].silentRun = answeredAny ? 0 : slots[index].silentRun + 1
            slots[index].resolvedTTLs += 1
            if let onHop {
                onHop(slots[index].request, hop(index, ttlIndex: slots[index].resolvedTTLs - 1))
            }
            let gap = configuration.gapLimit
            if gap > 0 && slots[index].silentRun >= gap
                && slots[index].highestAnswered < slots[index].resolvedTTLs - gap
                && slots[index].resolvedTTLs - 1 < slots[index].stopTTLIndex
            {
                slots[index].stopTTLIndex = slots[index].resolvedTTLs - 1
                slots[index].stopReason = .gapLimit
            }
        }
        if slots[index].resolvedTTLs > slots[index].stopTTLIndex {
            finish(index)
        } else {
            enqueue(index)
        }
    }

    private enum ColumnState { case pending, answered, silent }

    /// One column of a hop: answered by any of its tries, silent once its last try timed out (or no
    /// further try was queued), pending otherwise.
    private func columnState(row: Int, sample: Int) -> ColumnState {
        var attempt = sample
        while attempt < grid.attempts {
            switch status[row + attempt] {
            case Self.answered: return .answered
            case Self.sent, Self.retryQueued: return .pending
            case Self.unsent: return attempt == sample ? .pending : .silent
            default: attempt += samples  // timed out: look at the next try
            }
        }
        return .silent
    }

    private func hop(_ index: Int, ttlIndex: Int) -> HopResult {
        let base = grid.cell(slot: index, ttlIndex: ttlIndex, attempt: 0)
        var probes: [ProbeResult] = []
        probes.reserveCapacity(samples)
        for sample in 0..<samples {
            var result = ProbeResult.silent
            var attempt = sample
            while attempt < grid.attempts {
                if status[base + attempt] == Self.answered {
                    let reply = PackedReply(word: dispatcher.results.load(base + attempt))
                    let translation = dispatcher.translations.loadRelaxed(base + attempt)
                    result = ProbeResult(responder: reply.responder, rttMicros: reply.rttMicros, outcome: reply.outcome,
                        translatedDestination: translation >> 32 == 1 ? IPv4Address(UInt32(truncatingIfNeeded: translation)) : nil)
                    break
                }
                attempt += samples
            }
            probes.append(result)
        }
        return HopResult(ttl: UInt8(Int(grid.firstTTL) + ttlIndex), probes: probes)
    }

    private func finish(_ index: Int) {
        let slot = slots[index]
        // Retire the occupant first: from here the receive thread counts its replies as stale.
        dispatcher.slotWords.store(index, 0)
        let sentTTL = slot.nextProbe > 0 ? (slot.nextProbe - 1) / samples : -1
        let lastTTL = min(slot.stopTTLIndex, max(slot.resolvedTTLs - 1, sentTTL))
        var hops: [HopResult] = []
        if lastTTL >= 0 {
            hops.reserveCapacity(lastTTL + 1)
            for ttlIndex in 0...lastTTL { hops.append(hop(index, ttlIndex: ttlIndex)) }
        }
        let outcomes = hops.last?.probes.map(\.outcome) ?? []
        let state: PortState =
            outcomes.contains(.synAck) ? .open : outcomes.contains(.reset) ? .closed : .filtered
        let result = TraceResult(
            request: slot.request, hops: hops, reached: state != .filtered, state: state,
            stopReason: slot.stopReason, sourcePort: configuration.sourcePort, probesSent: slot.probesSent)
        slots[index].active = false
        activeCount -= 1
        freeSlots.append(index)
        summary.traces += 1
        if result.reached { summary.reached += 1 }
        onResult(result)
    }
}

/// A growable FIFO ring (amortised growth only; no allocation in steady state).
struct RingQueue<Element> {
    private var storage: [Element?]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        var size = 16
        while size < capacity { size <<= 1 }
        storage = Array(repeating: nil, count: size)
    }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head + count) & (storage.count - 1)] = element
        count += 1
    }

    func peek() -> Element? { count == 0 ? nil : storage[head] }

    mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) & (storage.count - 1)
        count -= 1
        return element
    }

    private mutating func grow() {
        var bigger: [Element?] = Array(repeating: nil, count: storage.count * 2)
        for i in 0..<count { bigger[i] = storage[(head + i) & (storage.count - 1)] }
        storage = bigger
        head = 0
    }
}
