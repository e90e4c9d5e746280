// The Internet checksum (RFC 1071), shared by the probe writer and by anyone who builds or checks
// IPv4, ICMP, TCP or UDP bytes (tests, the simulated network).

/// RFC 1071 one's-complement checksum.
///
/// Sums are kept as "partial sums": the plain (unfolded) total of the data read as big-endian 16-bit
/// words, in a `UInt64` that cannot overflow for any packet size. Partial sums of pieces add up, so a
/// pseudo-header and a segment can be summed separately; `finish` folds and complements the total
/// into the value that goes on the wire. Summing a header that already holds its correct checksum
/// and finishing gives 0, which is how a receiver verifies one.
public enum InternetChecksum {
    /// Adds `bytes` (read as big-endian 16-bit words; an odd last byte is padded with a zero byte) to
    /// `initial` and returns the unfolded total. The pieces summed this way must each start at an
    /// even offset of the checksummed data, as headers and pseudo-headers do.
    @inlinable
    public static func partialSum(_ bytes: UnsafeRawBufferPointer, initial: UInt64 = 0) -> UInt64 {
        var sum = initial
        var offset = 0
        let count = bytes.count
        // Four bytes at a time: a big-endian 32-bit word hi:lo equals hi * 2^16 + lo, and 2^16 is
        // 1 modulo 0xFFFF, so adding it whole is the same as adding hi and lo once folded.
        while offset + 4 <= count {
            sum &+= UInt64(bytes.wireUInt32(at: offset))
            offset += 4
        }
        if offset + 2 <= count {
            sum &+= UInt64(bytes.wireUInt16(at: offset))
            offset += 2
        }
        if offset < count {
            sum &+= UInt64(bytes.wireUInt8(at: offset)) << 8
        }
        return sum
    }

    /// Folds a partial sum to 16 bits and complements it: the value to store in a checksum field.
    @inlinable
    public static func finish(_ partialSum: UInt64) -> UInt16 {
        var sum = partialSum
        while sum >> 16 != 0 {
            sum = (sum & 0xFFFF) &+ (sum >> 16)
        }
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// The checksum of `bytes` alone (IPv4 header, ICMP message). The checksum field inside
    /// `bytes` must be zero when computing, or hold the received value when verifying (result 0).
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        finish(partialSum(bytes))
    }

    /// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 section 3.1, RFC 768):
    /// source, destination, zero, protocol, and the transport length (header plus data).
    @inlinable
    public static func pseudoHeaderSum(
        source: IPv4Address, destination: IPv4Address, protocol proto: UInt8, length: Int
    ) -> UInt64 {
        UInt64(source.value) &+ UInt64(destination.value) &+ UInt64(proto) &+ UInt64(UInt16(length))
    }

    /// The TCP checksum of `segment` (header plus data, checksum field zero) sent from `source` to
    /// `destination` over IPv4.
    @inlinable
    public static func tcpChecksum(
        source: IPv4Address, destination: IPv4Address, segment: UnsafeRawBufferPointer
    ) -> UInt16 {
        let pseudo = pseudoHeaderSum(source: source, destination: destination, protocol: 6, length: segment.count)
        return finish(partialSum(segment, initial: pseudo))
    }

    /// The checksum a NAT found before it rewrote `original` into `rewritten` and adjusted the checksum
    /// incrementally to `adjusted` (RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), as Linux's NAT does for the
    /// transport checksums that cover the address): HC = ~(~HC' + ~m' + m).
    @inlinable
    public static func undoingRewrite(of original: IPv4Address, into rewritten: IPv4Address, adjusted: UInt16)
        -> UInt16
    {
        var sum = UInt64(~adjusted)
        sum &+= UInt64(~UInt16(truncatingIfNeeded: rewritten.value >> 16))
            &+ UInt64(~UInt16(truncatingIfNeeded: rewritten.value))
        sum &+= UInt64(original.value >> 16) &+ UInt64(original.value & 0xFFFF)
        return finish(sum)
    }

    /// `undoingRewrite` for addresses of either family (both of one): over IPv6 a NAT66 adjusts the
    /// checksum for all eight 16-bit words of the address.
    @inlinable
    public static func undoingRewrite(of original: IPAddress, into rewritten: IPAddress, adjusted: UInt16) -> UInt16 {
        if let o = original.ipv4, let r = rewritten.ipv4 { return undoingRewrite(of: o, into: r, adjusted: adjusted) }
        var sum = UInt64(~adjusted)
        for shift in stride(from: UInt64(48), through: 0, by: -16) {
            sum &+= UInt64(~UInt16(truncatingIfNeeded: rewritten.high >> shift))
                &+ UInt64(~UInt16(truncatingIfNeeded: rewritten.low >> shift))
            sum &+= UInt64(UInt16(truncatingIfNeeded: original.high >> shift))
                &+ UInt64(UInt16(truncatingIfNeeded: original.low >> shift))
        }
        return finish(sum)
    }
}
