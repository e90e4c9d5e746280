// One address type for both IP families, so that the engine's flow records, MACs and results never
// assume 32-bit addresses. An IPv4 address is held as its IPv4-mapped IPv6 form (::ffff:a.b.c.d,
// RFC 4291 §2.5.5.2): equality, hashing and ordering are then plain 128-bit operations, and the family
// is read from the bits. The wire code for one family keeps its own view (`IPv4Address`).

/// The IP version of an address, a probe or a route.
public enum IPFamily: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// IPv4.
    case v4 = 4
    /// IPv6.
    case v6 = 6

    /// `ipv4` or `ipv6`, as the JSON output spells it.
    public var description: String { self == .v4 ? "ipv4" : "ipv6" }
}

/// An IPv4 or IPv6 address, 128 bits in network order split into two host-order words.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// Bits 0...63 of the address (the first eight bytes on the wire).
    public let high: UInt64
    /// Bits 64...127 of the address (the last eight bytes on the wire).
    public let low: UInt64

    /// The top 96 bits of an IPv4-mapped address: ::ffff:0:0/96.
    @usableFromInline static let mappedMarker: UInt64 = 0xFFFF_0000_0000

    /// An IPv6 address from its two halves.
    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An IPv4 address, held as ::ffff:a.b.c.d.
    @inlinable public init(_ v4: IPv4Address) {
        high = 0
        low = Self.mappedMarker | UInt64(v4.value)
    }

    /// An address from its 16 network-order bytes (an IPv6 header's fields, `in6_addr`).
    @inlinable public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 16, "an IPv6 address is 16 bytes")
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[i]) }
        self.init(high: h, low: l)
    }

    /// IPv4 when the address is IPv4-mapped, IPv6 otherwise.
    @inlinable @inline(__always) public var family: IPFamily { high == 0 && low >> 32 == 0xFFFF ? .v4 : .v6 }

    /// The IPv4 address, when this is one.
    @inlinable @inline(__always) public var ipv4: IPv4Address? {
        family == .v4 ? IPv4Address(UInt32(truncatingIfNeeded: low)) : nil
    }

    /// The address's 16 network-order bytes, written to `buffer`.
    @inlinable public func write(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= 16, "an IPv6 address is 16 bytes")
        for i in 0..<8 { buffer[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i))) }
        for i in 0..<8 { buffer[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
    }

    /// Sixteen-bit group `i` (0...7) of the IPv6 form.
    @inlinable func group(_ i: Int) -> UInt16 {
        let word = i < 4 ? high : low
        return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(i & 3)))
    }

    /// Dotted quad for IPv4; for IPv6 the RFC 5952 form (lower case, the longest run of two or more zero
    /// groups as `::`, the first such run on a tie, no leading zeros).
    public var description: String {
        if let v4 = ipv4 { return v4.description }
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && group(i) == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength && i - runStart >= 2 { (bestStart, bestLength) = (runStart, i - runStart) }
                runStart = -1
            }
        }
        var text = ""
        var i = 0
        while i < 8 {
            if i == bestStart {
                text += i == 0 ? "::" : ":"
                i += bestLength
                continue
            }
            text += String(group(i), radix: 16)
            if i < 7 { text += ":" }
            i += 1
        }
        return text
    }

    /// Parses a dotted-quad IPv4 address (as `IPv4Address` does: decimal, no leading zeros) or an IPv6
    /// address in RFC 4291 text form (`2001:db8::1`, `::ffff:198.51.100.1`); no zone, no prefix. An IPv6
    /// text that spells an IPv4-mapped address is the IPv4 address.
    public init?(_ text: String) {
        if let v4 = IPv4Address(text) {
            self.init(v4)
            return
        }
        guard text.contains(":"), text.utf8.count <= 45 else { return nil }
        // At most one `::`; each side is colon-separated groups of 1-4 hex digits, and the last group of
        // the text may be a dotted quad (two groups).
        var halves: [String] = []
        var current = "", previousColon = false
        for character in text {
            if character == ":" && previousColon {
                current.removeLast()
                halves.append(current)
                current = ""
                previousColon = false
                continue
            }
            current.append(character)
            previousColon = character == ":"
        }
        halves.append(current)
        guard halves.count <= 2, !halves.contains(where: { $0.hasPrefix(":") || $0.hasSuffix(":") }) else {
            return nil
        }
        func groups(_ side: String, last: Bool) -> [UInt16]? {
            if side.isEmpty { return [] }
            var out: [UInt16] = []
            let parts = side.split(separator: ":", omittingEmptySubsequences: false)
            for (index, part) in parts.enumerated() {
                if last && index == parts.count - 1 && part.contains(".") {
                    guard let v4 = IPv4Address(String(part)) else { return nil }
                    out += [UInt16(v4.value >> 16), UInt16(truncatingIfNeeded: v4.value)]
                } else {
                    guard (1...4).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isHexDigit }),
                        let value = UInt16(part, radix: 16)
                    else { return nil }
                    out.append(value)
                }
            }
            return out
        }
        var all: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], last: false), let tail = groups(halves[1], last: true),
                head.count + tail.count <= 7
            else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(halves[0], last: true) else { return nil }
            all = only
        }
        guard all.count == 8 else { return nil }
        let groups = all
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<4 { h = h << 16 | UInt64(groups[i]) }
        for i in 4..<8 { l = l << 16 | UInt64(groups[i]) }
        self.init(high: h, low: l)
    }

    /// Address bits in its own family: 32 or 128.
    @inlinable public var bitCount: Int { family == .v4 ? 32 : 128 }

    /// The first `length` bits of the address (in its own family's terms: 0...32 for IPv4, 0...128 for
    /// IPv6), the rest zero: the network address of the prefix of that length containing it.
    @inlinable public func masked(length: Int) -> IPAddress {
        if let v4 = ipv4 { return IPAddress(IPv4Address(v4.value & IPv4Address.prefixMask(length: length))) }
        precondition((0...128).contains(length), "an IPv6 prefix length is 0...128")
        let highMask: UInt64 = length >= 64 ? ~0 : length == 0 ? 0 : ~0 << (64 - length)
        let lowMask: UInt64 = length <= 64 ? 0 : length == 128 ? ~0 : ~0 << (128 - length)
        return IPAddress(high: high & highMask, low: low & lowMask)
    }

    /// The address `offset` past this one, within the low 64 bits (IPv4: within its 32 bits), wrapping.
    @inlinable public func advanced(by offset: UInt64) -> IPAddress {
        if let v4 = ipv4 { return IPAddress(IPv4Address(v4.value &+ UInt32(truncatingIfNeeded: offset))) }
        return IPAddress(high: high, low: low &+ offset)
    }

    /// Orders by the 128-bit value: every IPv4 address sorts together, inside ::ffff:0:0/96.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

extension IPv4Address {
    /// This address as an `IPAddress`.
    @inlinable public var address: IPAddress { IPAddress(self) }
}
