// IPv4 addresses as a value type in host byte order, so the engine never juggles raw UInt32s whose
// byte order is unclear.

/// An IPv4 address. `value` is in host byte order (`192.0.2.1` is `0xC000_0201`).
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// The address as a host-order integer.
    public var value: UInt32

    /// Makes an address from a host-order integer.
    @inlinable public init(_ value: UInt32) { self.value = value }

    /// Makes an address from its four octets, most significant first.
    @inlinable public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self.value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad decimal text (`"198.51.100.7"`); nil for anything else: no shorthand forms,
    /// no hex, and no leading zeros (`010` is 10 to some tools and 8, octal, to inet_aton and those
    /// built on it, so it is refused rather than guessed).
    public init?(_ text: String) {
        // Byte by byte over the UTF-8 (a target list's every line comes through here, twice: the
        // counter and the reader): four parts of 1-3 ASCII digits, no leading zero, each at most 255.
        // Anything else, non-ASCII included, is not an address.
        var value: UInt32 = 0, octet: UInt32 = 0, digits = 0, dots = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                dots += 1
                octet = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                guard digits < 3, digits == 0 || octet != 0 else { return nil }  // "01" has a leading zero
                octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
                guard octet <= 255 else { return nil }
                digits += 1
            } else {
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        self.value = value << 8 | octet
    }

    /// Dotted-quad text.
    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }

    /// The netmask of a prefix length (0...32) as a host-order integer: `/24` is `0xFFFF_FF00`.
    @inlinable public static func prefixMask(length: Int) -> UInt32 {
        precondition(length >= 0 && length <= 32, "prefix length out of range")
        return length == 0 ? 0 : ~UInt32(0) << (32 - length)
    }

    /// The unspecified address `0.0.0.0`.
    public static let any = IPv4Address(0)
}
