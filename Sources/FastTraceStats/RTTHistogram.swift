// A fixed-size histogram of round-trip times for percentiles: its memory does not grow with rounds.
// Log-linear buckets (8 per doubling, exact below 8 µs) span every UInt32 microsecond value in 240
// counters (960 bytes), allocated on the first sample (a hop that never answers costs nothing). A
// percentile is its bucket's midpoint, clamped to the least and greatest value seen: at most 1/16 (6.25 %)
// from the true sample value.
//
// HdrHistogram (hdrhistogram-swift 0.2.0) was the first choice; its counts array for 1 µs … 60 s is
// about 17,400 Int64 (139 KB) at 3 significant digits and 2,560 (20 KB) at 2, per hop and per path,
// against 960 bytes here for the precision a report prints.

/// Round-trip times in microseconds, bucketed for percentiles.
public struct RTTHistogram: Sendable, Equatable {
    /// Buckets per doubling of the value (a power of two).
    static let perOctave = 8
    static let octaveBits = 3
    /// Enough buckets for every UInt32 value.
    static let bucketCount = (32 - octaveBits + 1) * perOctave

    private var counts: [UInt32] = []
    /// Samples recorded.
    public private(set) var total: UInt64 = 0
    /// Least and greatest value recorded (meaningless while `total` is 0).
    public private(set) var least: UInt32 = .max, greatest: UInt32 = 0

    public init() {}

    /// Bytes the counters take once allocated.
    public static var bytes: Int { bucketCount * MemoryLayout<UInt32>.stride }

    /// The bucket holding `value`.
    static func bucket(_ value: UInt32) -> Int {
        if value < UInt32(perOctave) { return Int(value) }
        let exponent = 31 - value.leadingZeroBitCount  // ≥ octaveBits
        let mantissa = Int(value >> UInt32(exponent - octaveBits)) & (perOctave - 1)
        return (exponent - octaveBits + 1) * perOctave + mantissa
    }

    /// The least value in `bucket` and the bucket's width.
    static func range(_ bucket: Int) -> (low: UInt64, width: UInt64) {
        if bucket < perOctave { return (UInt64(bucket), 1) }
        let exponent = bucket / perOctave + octaveBits - 1
        let mantissa = bucket % perOctave
        let width = UInt64(1) << UInt64(exponent - octaveBits)
        return (UInt64(perOctave + mantissa) * width, width)
    }

    /// Records one value.
    public mutating func record(_ value: UInt32) {
        if counts.isEmpty { counts = Array(repeating: 0, count: Self.bucketCount) }
        counts[Self.bucket(value)] &+= 1
        total += 1
        least = min(least, value)
        greatest = max(greatest, value)
    }

    /// The value at quantile `q` (0...1): the smallest value with at least `q` of the samples at or below
    /// it (nearest rank), as its bucket's midpoint, clamped to the range seen; nil without samples.
    public func value(atQuantile q: Double) -> UInt32? {
        guard total > 0 else { return nil }
        let rank = max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (bucket, count) in counts.enumerated() where count > 0 {
            seen += UInt64(count)
            if seen >= rank {
                let (low, width) = Self.range(bucket)
                let mid = low + (width - 1) / 2
                return UInt32(min(max(mid, UInt64(least)), UInt64(greatest)))
            }
        }
        return greatest
    }
}
