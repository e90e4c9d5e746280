// The receive thread and the scheduler race for real here: one thread feeds genuine and late replies
// into the dispatcher while this one hands slots from occupant to occupant and reads results, as the
// engine does. Run under ThreadSanitizer by scripts/test.sh. Whatever the interleaving, a result read
// for an occupant must be a reply to that occupant's own probe.

import FastTraceWire
import Foundation
import Synchronization
import Testing

@testable import FastTraceCore
import FastTraceTestSupport

@Suite struct DispatcherStressTests {
    @Test func receiverAndSchedulerRaceWithoutConfusingOccupants() throws {
        let codec = ProbeTagCodec(key0: 5, key1: 6)
        let grid = ProbeGrid(firstTTL: 1, maxTTL: 4, attempts: 1, slots: 8)
        let dispatcher = Dispatcher(grid: grid, sourcePort: 40000, codec: codec)
        let source = IPv4Address(192, 0, 2, 1)
        @Sendable func destination(_ epoch: UInt16) -> IPv4Address { IPv4Address(198, 51, 100, UInt8(epoch % 200) + 1) }
        @Sendable func router(_ epoch: UInt16, _ ttl: UInt8) -> IPv4Address {
            IPv4Address(198, 18, UInt8(epoch % 250), ttl)
        }
        // What each slot's occupant is, for the receiver to build replies from: the epoch, published
        // after the dispatcher's slot words (the receiver may see an old one: that is the race).
        let published = AtomicWordTable(count: grid.slots)
        let stop = Atomic<Bool>(false)
        let sent = Atomic<UInt64>(0)

        let receiver = Thread {
            var packet = [UInt8](repeating: 0, count: 68)
            var i: UInt64 = 0
            while !stop.load(ordering: .acquiring) && i < 5_000_000 {
                i += 1
                let slot = Int(i % UInt64(grid.slots))
                let word = published.load(slot)
                guard word != 0 else { continue }
                // Mostly the current occupant's epoch, sometimes an older one (a late reply).
                var epoch = UInt16(truncatingIfNeeded: word)
                if i % 3 == 0 && epoch > 1 { epoch -= 1 }
                let ttl = UInt8(i % 4) + 1
                let flow = ProbeFlow(source: source, destination: destination(epoch), sourcePort: 40000,
                    destinationPort: 443, epoch: epoch)
                let stamp = codec.encode(ProbeTag(slot: UInt16(slot), ttl: ttl, attempt: 0), flow: flow)
                var probe = [UInt8](repeating: 0, count: 40)
                _ = probe.withUnsafeMutableBytes {
                    TCPProbeWriter.write(TCPProbe(source: source, destination: destination(epoch), sourcePort: 40000,
                        destinationPort: 443, sequence: stamp.sequence, ttl: 1, ipID: stamp.ipID), into: $0)
                }
                packet = SimulatedNetwork.icmpError(type: 11, code: 0, from: router(epoch, ttl), quoting: probe)
                packet.withUnsafeBytes { dispatcher.handleReply($0, timestampNanos: 2_000_000_000) }
                sent.add(1, ordering: .relaxed)
            }
        }
        receiver.start()

        var checked = 0
        var wrong = 0
        var epochOf = [UInt16](repeating: 0, count: grid.slots)
        // Until the receiver has fed 100,000 replies (bounded: 2 M rounds or 60 s).
        let deadline = Date().addingTimeInterval(60)
        var round = 0
        while round < 2_000_000 && sent.load(ordering: .relaxed) < 100_000 && Date() < deadline {
            defer { round += 1 }
            let slot = round % grid.slots
            let cells = (0..<grid.cellsPerSlot).map { grid.cell(slot: slot, ttlIndex: $0, attempt: 0) }
            // Read what the current occupant got, as the engine's ingest does.
            let epoch = epochOf[slot]
            if epoch != 0 {
                for (t, cell) in cells.enumerated() {
                    // The engine's own check (ingest): the result word's generation bits and the details
                    // word's epoch must both name this occupant. The details word alone is not enough: a
                    // late write for the previous occupant can be read together with the new details.
                    let reply = PackedReply(word: dispatcher.results.load(cell))
                    guard reply.isValid, reply.generation == UInt8(truncatingIfNeeded: epoch) & 3,
                        dispatcher.details.loadRelaxed(cell) >> 48 == UInt64(epoch)
                    else { continue }
                    checked += 1
                    if reply.responder != router(epoch, UInt8(t + 1)) { wrong += 1 }
                }
            }
            // Retire and hand the slot to a new occupant, as finish() and admit() do.
            dispatcher.slots.retire(slot)
            let next = epoch &+ 1
            for cell in cells {
                dispatcher.results.storeRelaxed(cell, 0)
                dispatcher.sendTimes.store(cell, 1_000_000_000)
            }
            let flow = ProbeFlow(source: source, destination: destination(next), sourcePort: 40000,
                destinationPort: 443, epoch: next)
            dispatcher.slots.publish(slot, flow: flow, digest: codec.digest(flow))
            published.store(slot, UInt64(next))
            epochOf[slot] = next
            dispatcher.notifications.drain { _ in }
            if round % 8 == 0 { usleep(20) }
        }
        stop.store(true, ordering: .releasing)
        while !receiver.isFinished { usleep(1_000) }
        #expect(sent.load(ordering: .relaxed) >= 100_000)
        #expect(checked > 1_000, "too few results read to say anything: \(checked)")
        #expect(wrong == 0, "\(wrong) of \(checked) results were another occupant's")
    }
}
