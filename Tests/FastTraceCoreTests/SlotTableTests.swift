// The slot table's hand-over between the scheduler (one writer) and the receive thread, driven for real:
// a reader thread reads slots while this thread publishes and retires occupants whose every field is
// derived from one number, so a record read half old and half new shows up as fields that disagree.
// Run under ThreadSanitizer by scripts/test.sh. Also the record itself: both families, every field.

import FastTraceWire
import Foundation
import Synchronization
import Testing

@testable import FastTraceCore

@Suite struct SlotTableTests {
    /// An occupant whose every field follows from `n`: IPv6 or IPv4 by parity, so family changes too.
    static func flow(_ n: UInt64) -> ProbeFlow {
        let source = n & 1 == 0
            ? IPAddress(high: 0x2001_0db8_0000_0000 | n & 0xFFFF, low: n &* 0x9E37_79B9_7F4A_7C15)
            : IPAddress(IPv4Address(192, 0, 2, UInt8(truncatingIfNeeded: n)))
        let destination = n & 1 == 0
            ? IPAddress(high: 0x2001_0db8_ffff_0000 | n & 0xFFFF, low: ~n)
            : IPAddress(IPv4Address(UInt32(0xC633_6400) | UInt32(truncatingIfNeeded: n & 0xFF)))
        return ProbeFlow(source: source, destination: destination, sourcePort: UInt16(truncatingIfNeeded: n),
            destinationPort: UInt16(truncatingIfNeeded: n >> 16), protocolNumber: n & 2 == 0 ? 6 : 17,
            epoch: UInt16(truncatingIfNeeded: n))
    }

    @Test func aRecordReadsBackAsWritten() throws {
        let table = SlotTable(count: 4)
        #expect(table.read(2) == nil)  // never used
        for n: UInt64 in [6, 7, 0xDEAD_BEEF, 0x1234_5678_9ABC] {
            let flow = Self.flow(n)
            table.publish(2, flow: flow, digest: n &* 31)
            #expect(table.read(2) == SlotFlow(flow: flow, digest: n &* 31, active: true))
            table.retire(2)
            #expect(table.read(2) == SlotFlow(flow: flow, digest: n &* 31, active: false))
        }
        #expect(table.read(1) == nil && table.read(3) == nil)
    }

    @Test func aReaderNeverSeesAHalfWrittenRecord() throws {
        let table = SlotTable(count: 4)
        let stop = Atomic<Bool>(false)
        let reads = Atomic<UInt64>(0)
        let torn = Atomic<UInt64>(0)
        let reader = Thread {
            var i = 0
            while !stop.load(ordering: .acquiring) && i < 50_000_000 {
                i += 1
                guard let record = table.read(i & 3) else { continue }
                // The digest names the number every field came from.
                let expected = SlotTableTests.flow(record.digest)
                if record.flow != expected { torn.add(1, ordering: .relaxed) }
                reads.add(1, ordering: .relaxed)
            }
        }
        reader.start()
        var n: UInt64 = 1
        let deadline = Date().addingTimeInterval(30)
        while (reads.load(ordering: .relaxed) < 200_000 || n < 200_000) && n < 20_000_000 && Date() < deadline {
            let slot = Int(n & 3)
            table.publish(slot, flow: Self.flow(n), digest: n)
            if n % 3 == 0 { table.retire(slot) }
            n += 1
        }
        stop.store(true, ordering: .releasing)
        while !reader.isFinished { usleep(1_000) }
        #expect(reads.load(ordering: .relaxed) >= 100_000, "too few reads to say anything")
        #expect(torn.load(ordering: .relaxed) == 0, "\(torn.load(ordering: .relaxed)) torn records")
    }
}
