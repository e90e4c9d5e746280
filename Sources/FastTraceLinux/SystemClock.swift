// The engine's clocks for the Linux transport. Deadlines and pacing run on CLOCK_MONOTONIC, which a
// wall-clock step (NTP, an operator) cannot stall or fast-forward. The packet ring stamps replies with
// CLOCK_REALTIME, so probes' send stamps are taken on that clock, and an RTT is one clock minus itself.

#if canImport(Glibc)
import Glibc
#endif
import FastTraceCore

/// `EngineClock` on CLOCK_MONOTONIC (scheduling) and CLOCK_REALTIME (send stamps), in nanoseconds.
public final class SystemClock: EngineClock, @unchecked Sendable {
    // @unchecked Sendable: the class has no stored state.

    /// Makes a clock.
    public init() {}

    @inline(__always) static func read(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        // clock_gettime cannot fail for these clocks with a valid pointer.
        _ = clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Now, in CLOCK_MONOTONIC nanoseconds.
    public func now() -> UInt64 { Self.read(CLOCK_MONOTONIC) }

    /// Now, in CLOCK_REALTIME nanoseconds (the clock of the ring's `tp_sec`/`tp_nsec`).
    public func stampNow() -> UInt64 { Self.read(CLOCK_REALTIME) }

    /// Sleeps until monotonic `deadline`. Returns at once if it has passed.
    public func sleep(until deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        // Bounded retry on EINTR (clock_nanosleep returns the error number, not -1).
        for _ in 0..<1000 {
            let rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil)
            if rc != EINTR { return }
        }
    }
}
