// The engine's clock for the Linux transport: CLOCK_MONOTONIC, which a wall-clock step (NTP, an
// operator) cannot stall or fast-forward, for deadlines, pacing and send stamps alike. The packet ring
// stamps replies on CLOCK_REALTIME; the receive thread converts those stamps to CLOCK_MONOTONIC with
// the clocks' offset read as it takes each batch, so an RTT is one clock minus itself.

#if canImport(Glibc)
import Glibc
#endif
import FastTraceCore

/// `EngineClock` on CLOCK_MONOTONIC, in nanoseconds.
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

    /// Now on the clock reply timestamps are delivered on: CLOCK_MONOTONIC (the receive thread
    /// converts the ring's CLOCK_REALTIME stamps).
    public func stampNow() -> UInt64 { Self.read(CLOCK_MONOTONIC) }

    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, now, in nanoseconds: what converts a ring timestamp.
    /// Read from bracketed clock reads (`ClockOffset`): a thread preempted between two reads would
    /// otherwise stamp a whole batch of replies early, before their probes were sent.
    public static func realtimeMinusMonotonic() -> Int64 { bracketedOffset().offset }

    /// `realtimeMinusMonotonic` with its bracket's width (for `ClockOffset.Tracker`).
    public static func bracketedOffset() -> (offset: Int64, width: UInt64) {
        ClockOffset.bracketed(monotonic: { read(CLOCK_MONOTONIC) }, realtime: { read(CLOCK_REALTIME) })
    }

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
