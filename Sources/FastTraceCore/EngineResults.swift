// Result assembly: turns a slot's cells (`ProbeTable`) and its trace's state (`TraceState`) into the
// `HopResult`s and the `TraceResult` the CLI prints, once per settled hop and once per finished trace
// (never per packet), and hands the slot back to the pool.

import FastTraceWire

extension TraceEngine {
    /// Who answered the probe of `cell`: over IPv4 the result word holds the address, over IPv6 the
    /// dispatcher's `responders6` table (written before the result word's release store).
    func responder(_ reply: PackedReply, cell: Int, slot index: Int) -> IPAddress {
        guard table.occupants[index].flow.destination.family == .v6 else { return IPAddress(reply.responder) }
        return dispatcher.responders6.loadAddress(cell: cell)
    }

    /// Where a NAT had sent the probe of `cell` (its `details` have the translated bit): over IPv4 the
    /// details word holds the address, over IPv6 the dispatcher's `translated6` table.
    func translatedDestination(_ details: UInt64, cell: Int, slot index: Int) -> IPAddress {
        guard table.occupants[index].flow.destination.family == .v6 else {
            return IPAddress(IPv4Address(UInt32(truncatingIfNeeded: details)))
        }
        return dispatcher.translated6.loadAddress(cell: cell)
    }

    /// One TTL of a trace as it stands: each column's answer, or why it has none.
    func hop(_ index: Int, ttlIndex: Int) -> HopResult {
        let base = table.row(slot: index, ttlIndex: ttlIndex)
        // What the run knows now: a position found rate-limited after this TTL settled still explains
        // its silence when the trace is reported.
        // A silence the gap did not count is never shown as plain silence: the run took it for a rate
        // limit, or knew nothing of its position yet (`learn`); either way a limit or the end of the path.
        var verdict = silenceVerdict(index, ttlIndex: ttlIndex)
        if verdict == .timedOut && traces[index].isUncounted(ttlIndex) { verdict = .unknown }
        var probes: [ProbeResult] = []
        probes.reserveCapacity(samples)
        for column in 0..<samples {
            var result: ProbeResult?
            var attempt = column
            var waiting = false
            var refused = false
            var tries: UInt8 = 0
            while attempt < grid.attempts {
                switch table.status[base + attempt] {
                case .timedOut:
                    tries += 1
                case .answered:
                    tries += 1
                    let reply = table.reply(base + attempt)
                    let details = dispatcher.details.loadRelaxed(base + attempt)
                    result = ProbeResult(responder: responder(reply, cell: base + attempt, slot: index), rttMicros: reply.rttMicros, outcome: reply.outcome,
                        translatedDestination: details >> 32 & 1 == 1
                            ? translatedDestination(details, cell: base + attempt, slot: index) : nil)
                    let depth = UInt8(truncatingIfNeeded: details >> 33) & 0xF
                    if depth > 0 {
                        let words = dispatcher.mpls.loadRelaxed(base + attempt)
                        result?.mpls = MPLSStack(depth: depth, top: UInt32(truncatingIfNeeded: words >> 32),
                            second: UInt32(truncatingIfNeeded: words))
                    }
                case .refused:
                    refused = true
                case let s where s.isWaiting:
                    waiting = true
                case .unsent where attempt == column:
                    waiting = true
                default:
                    break
                }
                if result != nil { break }
                attempt += samples
            }
            if var result {
                result.tries = tries
                probes.append(result)
            } else if refused {
                var result = ProbeResult(silence: .notSent)
                result.tries = tries
                probes.append(result)
            } else if waiting && cancelling {
                var result = ProbeResult(silence: .interrupted)
                result.tries = tries
                probes.append(result)
            } else {
                var result = ProbeResult(silence: verdict)
                result.tries = tries
                probes.append(result)
            }
        }
        // An unreachable whose quote places its router here, from a probe sent further: shown here, in the
        // first column nothing answered (or the last one), marked with the TTL it was sent with. The same
        // for a destination's answer that quotes its probe (a port unreachable).
        let slot = traces[index]
        if ttlIndex == slot.destinationTTLIndex, slot.destinationCell >= 0,
            !probes.contains(where: { $0.outcome.isFromDestination })
        {
            let cell = slot.destinationCell
            let reply = table.reply(cell)
            var placed = ProbeResult(responder: responder(reply, cell: cell, slot: index), rttMicros: reply.rttMicros,
                outcome: reply.outcome)
            placed.sentTTL = UInt8(Int(grid.firstTTL) + table.coordinates(of: cell, slot: index).ttlIndex)
            probes[probes.firstIndex { $0.responder == nil } ?? probes.count - 1] = placed
        }
        if ttlIndex == slot.unreachableTTLIndex, slot.unreachableCell >= 0,
            !probes.contains(where: { $0.outcome.isUnreachable })
        {
            let cell = slot.unreachableCell
            let reply = table.reply(cell)
            var placed = ProbeResult(responder: responder(reply, cell: cell, slot: index), rttMicros: reply.rttMicros,
                outcome: reply.outcome)
            placed.sentTTL = UInt8(Int(grid.firstTTL) + table.coordinates(of: cell, slot: index).ttlIndex)
            let column = probes.firstIndex { $0.responder == nil } ?? probes.count - 1
            placed.tries = max(1, probes[column].tries)
            probes[column] = placed
        }
        return HopResult(ttl: UInt8(Int(grid.firstTTL) + ttlIndex), probes: probes)
    }

    /// Counts replies recorded for this occupant's probes after their timeouts were taken (only when the
    /// receive path lagged past `maxReceiveLagNanos`): answers within the wait, read too late to show.
    private func countGivenUpReplies(_ index: Int) {
        let epoch = table.occupants[index].epoch
        for ttlIndex in 0..<grid.ttlCount {
            for attempt in 0..<grid.attempts {
                let cell = grid.cell(slot: index, ttlIndex: ttlIndex, attempt: attempt)
                if table.status[cell] == .timedOut, table.reply(cell, epoch: epoch) != nil { givenUpReplies += 1 }
            }
        }
    }

    /// Reports a trace and frees its slot.
    func finish(_ index: Int, now: UInt64) {
        let slot = traces[index]
        // Retire the occupant first: from here the receive thread counts its replies as late. The slot
        // table keeps naming it (only `active` is cleared) while the slot rests in the pool.
        dispatcher.slots.retire(index)
        if lagTimeoutsTaken { countGivenUpReplies(index) }
        var lastTTL: Int
        if cancelling {
            // Interrupted: every TTL some probe went to, and none it never reached.
            lastTTL = -1
            for ttlIndex in 0...min(slot.stopTTLIndex, grid.ttlCount - 1) where table.tried(slot: index, ttlIndex: ttlIndex) {
                lastTTL = ttlIndex
            }
        } else {
            lastTTL = slot.lastReportedTTLIndex(samples: samples)
        }
        var hops: [HopResult] = []
        if lastTTL >= 0 {
            hops.reserveCapacity(lastTTL + 1)
            for ttlIndex in 0...lastTTL { hops.append(hop(index, ttlIndex: ttlIndex)) }
        }
        // The port's state is what the destination said, wherever in the trace it said it. A trace cut
        // short before the destination said anything has no state: `filtered` is a finding, and an
        // interrupted trace has not found it.
        // Several answers (a SYN-ACK and a RST): the most telling one (`Response.precedence`) says it.
        // Silence says open|filtered for UDP, but not past a router's unreachable: nothing got there.
        // Nor has a trace whose probes the kernel refused to send: nothing past them was asked.
        var state = cancelling || slot.stopReason == .notSent ? PortState.unknown
            : slot.stopReason == .unreachable ? .filtered : kind.silentState
        var reached = false
        let answer = hops.lazy.flatMap(\.probes).map(\.outcome).filter(\.isFromDestination)
            .max { $0.precedence < $1.precedence }
        if let answer, let said = kind.portState(for: answer) {
            state = said
            reached = true
        }
        // No answer named a probe, but one came from the destination's port (UDP to a service that echoes
        // nothing fasttrace wrote). It cannot be told from a forged one, so the state stays what the keyed
        // answers say (open|filtered); the trace is marked so the user knows something did answer.
        var unmatched = false
        if !reached, !cancelling, let answers = dispatcher.unmatchedAnswers,
            answers.loadRelaxed(index) == UInt64(table.occupants[index].epoch) + 1
        {
            unmatched = true
        }
        let stopReason: StopReason = cancelling ? .interrupted : slot.stopReason
        var result = TraceResult(
            request: slot.request, hops: hops, reached: reached, state: state,
            stopReason: stopReason, sourcePort: configuration.sourcePort, probesSent: slot.probesSent,
            startNanos: slot.firstSent, method: configuration.method)
        result.answerUnmatched = unmatched
        table.release(index, now: now)
        activeCount -= 1
        summary.traces += 1
        if cancelling { summary.interrupted += 1 }
        // As the text marks them: a hop counts where a probe's silence is (likely) a rate limit, answered
        // by its other probes or not.
        summary.rateLimitedHops += hops.count { $0.isMarkedRateLimited }
        summary.likelyRateLimitedHops += hops.count { $0.isMarkedLikelyRateLimited }
        if book.limitedPositions == 0 && hops.contains(where: { $0.probes.contains { $0.silence == .timedOut } }) {
            summary.reportedBeforeLimits += 1
        }
        if result.reached { summary.reached += 1 } else if stopReason == .unreachable { summary.unreachable += 1 }
        switch state {
        case .open: summary.open += 1
        case .closed: summary.closed += 1
        case .unfiltered: summary.unfiltered += 1
        case .filtered: summary.filtered += 1
        case .openFiltered: summary.openFiltered += 1
        case .reachable: break  // counted in `reached`: ICMP has no port to be open or closed
        case .unknown:
            if stopReason == .notSent { summary.notSent += 1 } else { summary.unknown += 1 }
        }
        onResult(result)
    }
}
