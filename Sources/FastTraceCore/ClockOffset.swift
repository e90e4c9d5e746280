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
        bracketed(tries: tries, monotonic: monotonic, realtime: realtime).offset
    }

    /// As `estimate`, with the narrowest bracket's width: the offset is within half of it of the truth.
    public static func bracketed(tries: Int = 8, monotonic: () -> UInt64, realtime: () -> UInt64)
        -> (offset: Int64, width: UInt64)
    {
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
        return (best!.offset, best!.width)
    }

    /// The offset the receive thread converts with, kept across batches. The two clocks' offset changes
    /// only when the wall clock is stepped (NTP slews both alike), so a reading that agrees with the kept
    /// one within their brackets teaches nothing but a narrower bracket; only one that disagrees beyond
    /// both brackets is a step, and is taken. A reading whose every try was preempted (a wide bracket, on
    /// a busy host or a VM whose vCPU was descheduled) then cannot move the offset by its error and stamp
    /// replies before their probes were sent.
    public struct Tracker: Sendable, Equatable {
        public private(set) var offset: Int64
        public private(set) var width: UInt64

        public init(_ reading: (offset: Int64, width: UInt64)) {
            offset = reading.offset
            width = reading.width
        }

        /// Takes a new bracketed reading.
        public mutating func update(_ reading: (offset: Int64, width: UInt64)) {
            let distance = reading.offset.magnitudeDistance(to: offset)
            if distance <= reading.width / 2 + width / 2 + 1 {
                if reading.width < width { (offset, width) = (reading.offset, reading.width) }
            } else {
                (offset, width) = (reading.offset, reading.width)
            }
        }
    }
}

extension Int64 {
    /// |self − other| without overflow.
    @inlinable func magnitudeDistance(to other: Int64) -> UInt64 {
        self >= other ? UInt64(bitPattern: self &- other) : UInt64(bitPattern: other &- self)
    }
}
