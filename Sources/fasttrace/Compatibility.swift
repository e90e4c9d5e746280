// tcptraceroute habits the command line accepts: ports given as service names (/etc/services), the
// type of service in hex as well as decimal, and tcptraceroute's rule for which hop names are looked
// up (never RFC 1918 addresses unless -N).

import FastTraceCore
import FastTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// The TCP port of service `name` in the services database (/etc/services), or nil.
func tcpServicePort(_ name: Substring) -> UInt16? {
    guard let entry = getservbyname(String(name), "tcp") else { return nil }
    return UInt16(bigEndian: UInt16(truncatingIfNeeded: entry.pointee.s_port))
}

/// The UDP port of service `name` in the services database (/etc/services), or nil.
func udpServicePort(_ name: Substring) -> UInt16? {
    guard let entry = getservbyname(String(name), "udp") else { return nil }
    return UInt16(bigEndian: UInt16(truncatingIfNeeded: entry.pointee.s_port))
}

/// `--payload-hex`: hex digits, two per byte (a leading 0x allowed, nothing else), 1...1470 bytes.
func parsePayloadHex(_ text: String) throws -> [UInt8] {
    var digits = Substring(text)
    if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isHexDigit }) else {
        let shown = text.count > 40 ? text.prefix(40) + "…" : Substring(text)
        throw UsageFailure("--payload-hex: '\(shown)' is not hex digits (two per byte, no spaces; a leading 0x is allowed)")
    }
    guard digits.count % 2 == 0 else {
        throw UsageFailure("--payload-hex: an odd number of hex digits (\(digits.count)): two per byte")
    }
    guard digits.count / 2 <= 1470 else {
        throw UsageFailure("--payload-hex: \(digits.count / 2) bytes; at most 1470 fit a 1500-byte packet")
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// `-t`: decimal (`16`) or hex (`0x10`), 0...255. A decimal with a leading zero (`010`) is refused:
/// octal to some tools, decimal to others.
func parseTOS(_ text: String) -> Result<UInt8, ReasonError> {
    let value: Int?
    let lower = text.lowercased()
    if lower.hasPrefix("0x") {
        let digits = lower.dropFirst(2)
        let valid = !digits.isEmpty && digits.count <= 4 && digits.allSatisfy(\.isHexDigit)
        value = valid ? Int(digits, radix: 16) : nil
    } else if !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }) {
        if text.count > 1 && text.first == "0" {
            return .failure(ReasonError("'\(text)' is ambiguous (octal to some tools); write it in decimal or as 0x…"))
        }
        value = Int(text)
    } else {
        value = nil
    }
    guard let value else { return .failure(ReasonError("TOS must be 0...255, decimal or 0x hex (got '\(text)')")) }
    guard value <= 255 else { return .failure(ReasonError("TOS must be 0...255 (got \(text))")) }
    return .success(UInt8(value))
}

extension IPv4Address {
    /// In RFC 1918 private space (10/8, 172.16/12, 192.168/16): tcptraceroute does not look up names
    /// for these unless -N (their reverse zones are not public, and asking leaks them to the root).
    var isRFC1918: Bool {
        value >> 24 == 10 || value >> 20 == 0xAC1 || value >> 16 == 0xC0A8
    }
}

/// A number as the user would have typed it: `-1`, `0.5`.
func formatNumber(_ value: Double) -> String {
    if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    return String(value)
}
