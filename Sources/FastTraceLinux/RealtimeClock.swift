// The engine's clock for the Linux transport. The packet ring stamps replies with CLOCK_REALTIME, so
// probes must be stamped on the same clock for RTTs (reply stamp minus send stamp) to mean anything.

#if canImport(Glibc)
import Glibc
#endif
import FastTraceCore

/// `EngineClock` on CLOCK_REALTIME, in nanoseconds since the Unix epoch.
public final class RealtimeClock: EngineClock, @unchecked Sendable {
    // @unchecked Sendable: the class has no stored state.

    /// Makes a clock.
    public init() {}

    /// Now, in CLOCK_REALTIME nanoseconds (the clock of the ring's `tp_sec`/`tp_nsec`).
    public func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Sleeps until `deadline` (absolute, so a step of the wall clock shortens or skips the wait
    /// rather than stretching it past the deadline by more than the step). Returns at once if passed.
    public func sleep(until deadline: UInt64) {
        var ts = timespec(
            tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        // Bounded retry on EINTR (clock_nanosleep returns the error number, not -1).
        for _ in 0..<1000 {
            let rc = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nil)
            if rc != EINTR { return }
        }
    }
}
