// Converting the packet ring's CLOCK_REALTIME stamps to the engine's CLOCK_MONOTONIC needs the two
// clocks' offset, read from user space as two clock reads. A thread preempted between them (a busy
// 2-core host) reads an offset that is off by the preemption: every reply of that batch is then
// stamped early by as much, lands before its probe's send stamp, and is rejected as premature, so a
// clean run saw routers drop answers and concluded they rate-limit. Bracketing the realtime read with
// two monotonic reads shows how long the reading took; a wide bracket is read again.

/// Estimates CLOCK_REALTIME − CLOCK_MONOTONIC from bracketed reads. Pure: the clocks are passed in.
public enum ClockOffset {
    /// A bracket this narrow (monotonic before and after the realtime read) is taken at once: the offset
    /// is then within half of it of the truth.
    public static let tightNanos: UInt64 = 2_000

    /// Reads monotonic, realtime, monotonic, up to `tries` times, until the two monotonic reads are at most
    /// `tightNanos` apart, and returns realtime minus the bracket's midpoint from the narrowest bracket.
    public static func estimate(tries: Int = 8, monotonic: () -> UInt64, realtime: () -> UInt64) -> Int64 {
        var best: (width: UInt64, offset: Int64)?
        for _ in 0..<max(1, tries) {
            let before = monotonic()
            let wall = realtime()
            let after = monotonic()
            let width = after &- before
            let middle = before &+ width / 2
            let offset = Int64(bitPattern: wall) &- Int64(bitPattern: middle)
            if best == nil || width < best!.width { best = (width, offset) }
            if width <= tightNanos { break }
        }
        return best!.offset
    }
}
