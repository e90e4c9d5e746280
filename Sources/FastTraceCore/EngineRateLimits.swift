// The engine's rate-limit glue: what to do when a hop stays silent (ask again later, within a
// position's budget), and what a settled hop teaches `PositionBook` about its position (and so what the
// per-trace state machine's gap limit counts, as a `SettledTTL`). It reads the probe table and the trace
// states and queues re-asks through the scheduler. Kept apart from the scheduler core so that the policy
// for silence can change without touching sending, timeouts or the per-trace state machine.

import FastTraceWire

extension TraceEngine {
    /// Why a probe at this TTL of this trace has no answer, as far as the run knows now:
    /// - `rateLimited` when the run has shown it: the router at this hop is known (`knownRouter`) and it
    ///   was caught answering some probes of a flow while dropping others;
    /// - `likelyRateLimited` when rate limiting explains it but the router is not known: a router at this
    ///   very position (the router below it known) was caught rate-limiting, or, in a run where routers
    ///   were caught rate-limiting, this trace is known to go on past this TTL (a deeper TTL answered). A
    ///   router that never sends ICMP, beside ones that rate-limit, looks exactly like this;
    /// - `unknown` when rate limiting explains silence at this TTL on other paths but this trace heard
    ///   nothing from here on: the silence may be a rate limit or the end of the path;
    /// - `timedOut` (plain `none`) when nothing in the run explains it.
    func silenceVerdict(_ index: Int, ttlIndex: Int) -> Silence {
        let position = position(index, ttlIndex: ttlIndex)
        if position.upstream == 0 || !book.caughtLimiting(at: position) {
            guard book.limitedPositions > 0 else { return .timedOut }
            guard ttlIndex < deepestHeard(index) else { return book.isLimited(position) ? .unknown : .timedOut }
        }
        if let here = knownRouter(index, ttlIndex: ttlIndex), book.isLimitingRouter(here) { return .rateLimited }
        return .likelyRateLimited
    }

    /// The router this trace met at this TTL, as far as the run can tell: the one that answered it here;
    /// at TTL 1, the one router any trace heard there (every probe leaves through the same gateway);
    /// or else the one router every trace that heard both saw right before the router this trace met at
    /// the next TTL. nil when the run cannot tell. (Not the one router seen *after* the router below:
    /// a router that never answers, on a branch beside it, would be invisible to that rule. The lab's
    /// silent router sits exactly so, beside the firewall and the NAT.)
    func knownRouter(_ index: Int, ttlIndex: Int) -> UInt32? {
        if let here = router(index, ttlIndex: ttlIndex) { return here.value }
        if ttlIndex == 0 && grid.firstTTL == 1, let gateway = book.onlyFirstHop { return gateway }
        guard ttlIndex < traces[index].stopTTLIndex, ttlIndex + 1 < grid.ttlCount,
            let next = router(index, ttlIndex: ttlIndex + 1)
        else { return nil }
        return book.predecessor(ttl: UInt8(ttlIndex + 1), router: next.value)
    }

    /// The deepest TTL index of this trace that anything answered (a router or the destination), or -1.
    /// An answer placed nearer than the TTL its probe was sent with (an unreachable, or a destination's port
    /// unreachable, whose quote says where its sender sits) counts where it is placed: the trace was heard
    /// from there, whichever probe it answered.
    func deepestHeard(_ index: Int) -> Int {
        let slot = traces[index]
        var placed = -1
        if slot.unreachableTTLIndex != Int.max { placed = slot.unreachableTTLIndex }
        if slot.destinationTTLIndex != Int.max { placed = max(placed, slot.destinationTTLIndex) }
        var ttlIndex = min(slot.stopTTLIndex, grid.ttlCount - 1)
        while ttlIndex > placed {
            if table.answered(slot: index, ttlIndex: ttlIndex) { return ttlIndex }
            ttlIndex -= 1
        }
        return placed
    }

    /// Whether a silent hop is worth asking again later: only where what the run has seen leaves room
    /// for a rate limit. A run that has caught one, or seen a silence that looks like one, asks again
    /// wherever `PositionBook.worthReasking` says (as it always did). A run that has seen neither does
    /// not ask again:
    /// - where every router answering at the hop's position has answered faster than a per-destination
    ///   limit allows, and the router this trace met there is not one the run can name: the silence is
    ///   this flow's (a router that never sends ICMP on its branch, a filter), not a budget running out;
    /// - where no router has ever answered at the position, past a router this trace heard: a router
    ///   that never sends ICMP, or the end of the path (a black hole).
    /// A silent hop whose router the run can name (`knownRouter`: it answers other traces) is a router
    /// dropping some of our probes: that is a suspicion, and the hop is asked again. So is one at a
    /// position whose routers have not (yet) answered fast, and one below every router the trace has
    /// heard (a cold start: routers whose budget to us was spent before the run answer no one).
    func reaskWanted(_ index: Int, ttlIndex: Int, position: Position, now: UInt64) -> Bool {
        guard book.worthReasking(position, now: now) else { return false }
        if book.suspectsLimiting { return true }
        if knownRouter(index, ttlIndex: ttlIndex) != nil {
            book.noteSuspicion()
            return true
        }
        if book.answers(at: position) { return !book.answeringRoutersUnlimited(at: position) }
        for below in 0..<ttlIndex where router(index, ttlIndex: below) != nil { return false }
        return true
    }

    /// Settles at once the queued re-asks the run's evidence no longer calls for (a router at their
    /// position found answering fast since they were queued), so that their traces do not wait on them.
    func dropUnwantedReasks(now: UInt64) {
        guard !book.suspectsLimiting, book.evidence != reaskEvidence else { return }
        reaskEvidence = book.evidence
        var count = reaskQueue.count
        while count > 0, let head = reaskQueue.pop() {
            count -= 1
            let index = Int(head.slot), ttlIndex = Int(head.ttlIndex)
            if table.isCurrent(slot: index, epoch: head.epoch) {
                let cell = grid.cell(slot: index, ttlIndex: ttlIndex, attempt: Int(head.attempt))
                if table.status[cell] == .reaskQueued && !table.answered(slot: index, ttlIndex: ttlIndex)
                    && !reaskWanted(index, ttlIndex: ttlIndex, position: position(index, ttlIndex: ttlIndex), now: now)
                {
                    table.status[cell] = .reaskSkipped
                    advance(index, now: now)
                    continue
                }
            }
            reaskQueue.push(head)
        }
    }

    /// After a try timed out: retry it at once if retries are left; otherwise, for a hop with no answer
    /// yet where the run's evidence allows a rate limit (`reaskWanted`), ask again later (a re-ask),
    /// once per hop.
    func followUp(_ index: Int, cell: Int, now: UInt64) {
        let (ttlIndex, attempt) = table.coordinates(of: cell, slot: index)
        let column = attempt % samples, tryNumber = attempt / samples
        guard ttlIndex <= traces[index].stopTTLIndex else { return }
        // A re-ask (the last try too) that found the hop still silent, where nothing answered it.
        if tryNumber >= immediateTries && !table.answered(slot: index, ttlIndex: ttlIndex) {
            book.noteSilentReask(at: position(index, ttlIndex: ttlIndex), now: now)
        }
        guard attempt + samples < grid.attempts else { return }
        let next = cell + samples
        if tryNumber + 1 < immediateTries {
            table.status[next] = .retryQueued
            retryQueue.push(ProbeRetry(slot: Int32(index), epoch: table.occupants[index].epoch, ttlIndex: Int32(ttlIndex),
                attempt: Int32(attempt + samples)))
            return
        }
        // Re-asks: one column per hop, only while nothing at this TTL answered, only where worth it.
        guard column == 0, !table.answered(slot: index, ttlIndex: ttlIndex) else { return }
        let position = position(index, ttlIndex: ttlIndex)
        guard reaskWanted(index, ttlIndex: ttlIndex, position: position, now: now) else { return }
        let reaskNumber = tryNumber + 1 - immediateTries
        table.status[next] = .reaskQueued
        // Where routers answer in a run that has caught rate limiting, the hop may well be alive behind
        // a limit: let the trace look past it meanwhile. Where nothing is known yet, or no limit was
        // caught (routers answering this TTL on other branches, past a fan-out), it is asked again but
        // does not move the look-ahead: `--gap N` then stops N silent TTLs past the last answer.
        if book.limitedPositions > 0 && book.answers(at: position) {
            traces[index].extendFrontier(to: ttlIndex)
        }
        reaskQueue.push(ProbeRetry(slot: Int32(index), epoch: table.occupants[index].epoch, ttlIndex: Int32(ttlIndex),
            attempt: Int32(attempt + samples), due: now + configuration.reaskDelayNanos << UInt64(reaskNumber)))
        enqueue(index)
    }

    /// Moves re-asks that are due to the send queue, or holds them unsent when their position's re-ask
    /// budget is spent; held ones are settled (unsent) at their deadline.
    func releaseReasks(now: UInt64) {
        dropUnwantedReasks(now: now)
        while let head = heldReasks.peek(), head.deadline <= now {
            _ = heldReasks.pop()
            let index = Int(head.slot)
            guard table.holds(slot: index, epoch: head.epoch, cell: Int(head.cell), .reaskHeld) else { continue }
            table.status[Int(head.cell)] = .reaskSkipped
            advance(index, now: now)
        }
        // Re-asks are queued in order of due time except across re-ask rounds, whose delays double:
        // a later round waiting at the head only delays earlier ones by less than its own delay.
        var budget = reaskQueue.count
        while budget > 0, let head = reaskQueue.peek() {
            budget -= 1
            if head.due > now { break }
            _ = reaskQueue.pop()
            let index = Int(head.slot)
            let cell = grid.cell(slot: index, ttlIndex: Int(head.ttlIndex), attempt: Int(head.attempt))
            guard table.holds(slot: index, epoch: head.epoch, cell: cell, .reaskQueued) else { continue }
            if table.answered(slot: index, ttlIndex: Int(head.ttlIndex)) {
                table.status[cell] = .reaskSkipped
                advance(index, now: now)
                continue
            }
            if !book.allowReask(at: position(index, ttlIndex: Int(head.ttlIndex)), now: now) {
                // Over the position's budget: not sent, but judged only after the re-asks that were
                // sent (and the next round of them) have had their wait, so the verdict has their
                // evidence. (Queued in deadline order: every held re-ask waits the same time.)
                table.status[cell] = .reaskHeld
                heldReasks.push(ProbeTimeout(deadline: now + configuration.reaskDelayNanos + configuration.waitNanos,
                    stampDeadline: 0,
                    slot: head.slot, epoch: head.epoch, cell: Int32(cell)))
                continue
            }
            table.status[cell] = .retryQueued
            retryQueue.push(head)
        }
    }

    /// The router (time exceeded or unreachable) that answered at this TTL, if any: an unreachable whose
    /// quote places its router at this TTL (from a probe sent further) counts here. So does a destination
    /// whose answer is an ICMP error (a UDP probe's port unreachable): its host limits those errors as a
    /// router does, and the run learns its position's limits from it the same way.
    func router(_ index: Int, ttlIndex: Int) -> RouterKey? { routerAnswer(index, ttlIndex: ttlIndex)?.router }

    /// The router that answered at this TTL and the cell of the probe it answered.
    func routerAnswer(_ index: Int, ttlIndex: Int) -> (router: RouterKey, cell: Int)? {
        let row = table.row(slot: index, ttlIndex: ttlIndex)
        for attempt in 0..<grid.attempts where table.status[row + attempt] == .answered {
            let reply = table.reply(row + attempt)
            if !reply.outcome.isFromDestination || reply.outcome.isICMPError {
                return (RouterKey(responder(reply, cell: row + attempt, slot: index)), row + attempt)
            }
        }
        if ttlIndex == traces[index].unreachableTTLIndex, traces[index].unreachableCell >= 0 {
            let cell = traces[index].unreachableCell
            return (RouterKey(responder(table.reply(cell), cell: cell, slot: index)), cell)
        }
        if ttlIndex == traces[index].destinationTTLIndex, traces[index].destinationCell >= 0 {
            let cell = traces[index].destinationCell
            return (RouterKey(responder(table.reply(cell), cell: cell, slot: index)), cell)
        }
        return nil
    }

    /// Where a TTL of this trace sits: its TTL and the router right below it, if that one answered.
    func position(_ index: Int, ttlIndex: Int) -> Position {
        // Only the router right below counts: one further down may sit above a branch, and would lump a
        // black hole in with a router on another branch at the same distance.
        guard ttlIndex > 0, let r = router(index, ttlIndex: ttlIndex - 1) else {
            return Position(ttl: UInt8(ttlIndex), upstream: 0)
        }
        return Position(ttl: UInt8(ttlIndex), upstream: r.value)
    }

    /// What a settled TTL teaches about its position: a router answers ICMP there; it dropped some of
    /// this flow's probes while answering others (a rate limit). Returns what the TTL says about the
    /// path past it.
    func learn(_ index: Int, ttlIndex: Int, answeredAny: Bool, silentAny: Bool, now: UInt64) -> SettledTTL {
        let position = position(index, ttlIndex: ttlIndex)
        if let (here, cell) = routerAnswer(index, ttlIndex: ttlIndex) {
            // A destination's port unreachable teaches only drops (its host limits those errors); it is no
            // router answering at the position, which would have other traces' silence there asked again
            // (a black hole beside hosts with closed ports is not a rate limit).
            if !table.reply(cell).outcome.isFromDestination {
                book.noteAnswer(at: position, router: here.value, sentAt: dispatcher.sendTimes.loadRelaxed(cell))
                if position.upstream != 0 {
                    book.notePath(ttl: UInt8(ttlIndex), router: here.value, previous: position.upstream)
                }
                if ttlIndex == 0 && grid.firstTTL == 1 { book.noteFirstHop(here.value) }
            }
            // Same flow, same router, same moment: some tries answered, others not.
            let row = table.row(slot: index, ttlIndex: ttlIndex)
            var dropped = silentAny
            for attempt in 0..<grid.attempts where table.status[row + attempt] == .timedOut { dropped = true }
            if dropped {
                book.noteDrop(at: position, now: now)
                book.noteLimitingRouter(here.value)
            }
        }
        guard !answeredAny else { return .answered }
        // A router answering others at this position says this silence may be a limit not caught here
        // yet, but only in a run that has caught rate limiting at all: in a clean run it is a router on
        // another branch past a fan-out (the lab's firewall and NAT beside its black hole, both after
        // r6), and counting it would make `--gap N` look N + 1 or N + 2 TTLs past the last answer.
        if silenceVerdict(index, ttlIndex: ttlIndex) != .timedOut
            || (book.limitedPositions > 0 && book.answersAtOwnPosition(position))
        {
            return .silentButAlive
        }
        return book.isUnexplored(position, reach: configuration.gapLimit, now: now) ? .unexplored : .silent
    }
}
