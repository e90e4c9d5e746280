// The realtime-to-monotonic offset the receive thread converts ring stamps with. A read preempted
// between the two clocks once stamped a batch of replies before their probes' send stamps: 6 replies of
// a clean 20,000-target lab run were rejected as premature, and the run took the missing answers for
// rate limiting (2,000 silent hops marked likely rate-limited with the lab's limits off).

import Testing

@testable import FastTraceCore

@Suite struct ClockOffsetTests {
    /// Fake clocks: monotonic reads come from `monotonic` in order; realtime is monotonic's current value
    /// plus `trueOffset` plus whatever time passed in a preemption right before that read.
    final class FakeClocks {
        let trueOffset: Int64 = 1_765_000_000_000_000_000
        var now: UInt64 = 5_000_000_000
        var preemptions: [UInt64]  // before each realtime read, in order
        init(preemptions: [UInt64]) { self.preemptions = preemptions }
        func monotonic() -> UInt64 { now += 50; return now }
        func realtime() -> UInt64 {
            now += preemptions.isEmpty ? 0 : preemptions.removeFirst()
            now += 50
            return UInt64(bitPattern: Int64(bitPattern: now) &+ trueOffset)
        }
    }

    @Test func aReadPreemptedBetweenTheClocksIsReadAgain() {
        let clocks = FakeClocks(preemptions: [3_000_000, 0])
        let offset = ClockOffset.estimate(monotonic: clocks.monotonic, realtime: clocks.realtime)
        #expect(abs(offset - clocks.trueOffset) <= Int64(ClockOffset.tightNanos))
    }

    @Test func everyReadPreemptedTakesTheNarrowest() {
        let clocks = FakeClocks(preemptions: [3_000_000, 900_000, 40_000, 2_000_000, 5_000, 70_000, 1_000_000, 400_000])
        let offset = ClockOffset.estimate(monotonic: clocks.monotonic, realtime: clocks.realtime)
        #expect(abs(offset - clocks.trueOffset) <= 5_000 / 2 + 100)
    }

    @Test("Kept across batches: a reading preempted on every try cannot move the offset; a narrower one refines it; a wall-clock step is taken")
    func trackerKeepsTheOffsetUntilAStep() {
        let truth: Int64 = 1_765_000_000_000_000_000
        var tracker = ClockOffset.Tracker((truth + 300, 2_000))
        // Every try preempted: the best bracket is 3 ms wide and its midpoint 1.2 ms off. The old per-batch
        // estimate would have stamped that batch 1.2 ms early.
        tracker.update((truth - 1_200_000, 3_000_000))
        #expect(tracker.offset == truth + 300 && tracker.width == 2_000)
        tracker.update((truth + 20, 100))
        #expect(tracker.offset == truth + 20 && tracker.width == 100)
        // The wall clock stepped 250 ms back: a tight reading far outside both brackets.
        tracker.update((truth - 250_000_000, 150))
        #expect(tracker.offset == truth - 250_000_000)
        // Through the real estimator: readings from fake clocks, the first quiet, the second preempted on
        // every try.
        let quiet = FakeClocks(preemptions: [])
        var real = ClockOffset.Tracker(ClockOffset.bracketed(monotonic: quiet.monotonic, realtime: quiet.realtime))
        let busy = FakeClocks(preemptions: Array(repeating: 2_000_000, count: 8))
        real.update(ClockOffset.bracketed(monotonic: busy.monotonic, realtime: busy.realtime))
        #expect(abs(real.offset - quiet.trueOffset) <= 100, "\(real.offset - quiet.trueOffset)")
        let busyAgain = FakeClocks(preemptions: Array(repeating: 2_000_000, count: 8))
        let bare = ClockOffset.estimate(monotonic: busyAgain.monotonic, realtime: busyAgain.realtime)
        #expect(abs(bare - busyAgain.trueOffset) > 100_000, "the bare estimate is \(bare - busyAgain.trueOffset) ns off")
    }

    @Test func aQuietReadIsExactToItsBracket() {
        let clocks = FakeClocks(preemptions: [])
        let offset = ClockOffset.estimate(monotonic: clocks.monotonic, realtime: clocks.realtime)
        #expect(abs(offset - clocks.trueOffset) <= 100)
    }
}
