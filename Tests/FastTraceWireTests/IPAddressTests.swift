// The address type for both families: parsing (RFC 4291 text forms), printing (RFC 5952), the
// IPv4-mapped representation and the bytes on the wire.

import Testing

@testable import FastTraceWire

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // the first of two equal runs
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // one zero group is not shortened
        ("fe80::1:2:3:4", "fe80::1:2:3:4"),
        ("2001:db8::198.51.100.7", "2001:db8::c633:6407"),
        ("::ffff:198.51.100.7", "198.51.100.7"),  // IPv4-mapped: the IPv4 address
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"),
    ])
    func parsesAndPrints(text: String, printed: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == printed)
        #expect(IPAddress(printed) == address)
    }

    @Test(arguments: ["", ":", ":::", "1:::2", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7::8", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", "::198.51.100", "198.51.100.7::",
        "2001:db8::1/64", "fe80::1%eth0", "198.51.100.007", "::ffff:1.2.3.4.5", " ::1"])
    func refusesWhatIsNotAnAddress(text: String) {
        #expect(IPAddress(text) == nil, "\(text)")
    }

    @Test func familiesAndIPv4Mapping() throws {
        let v4 = IPAddress(IPv4Address(198, 51, 100, 7))
        #expect(v4.family == .v4 && v4.ipv4 == IPv4Address(198, 51, 100, 7))
        #expect(v4 == IPAddress("::ffff:198.51.100.7"))
        let v6 = try #require(IPAddress("2001:db8::7"))
        #expect(v6.family == .v6 && v6.ipv4 == nil)
        // ::198.51.100.7 (the deprecated IPv4-compatible form) is an IPv6 address, not IPv4.
        #expect(try #require(IPAddress("::198.51.100.7")).family == .v6)
        #expect(v4 < v6 && !(v6 < v4))  // 2001:db8::/32 sorts after ::ffff:0:0/96
    }

    @Test func bytesRoundTripInNetworkOrder() throws {
        let address = try #require(IPAddress("2001:db8:102:304:506:708:90a:b0c"))
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { address.write(into: $0) }
        #expect(bytes == [0x20, 0x01, 0x0d, 0xb8, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c])
        #expect(bytes.withUnsafeBytes { IPAddress(bytes: $0) } == address)
    }
}

/// `IPv4Address(String)` reads UTF-8 bytes; this is the Character-level reading it replaced, kept as
/// the oracle: both must take and refuse exactly the same texts.
private func referenceIPv4(_ text: String) -> UInt32? {
    var octets: [UInt32] = []
    for part in text.split(separator: ".", omittingEmptySubsequences: false) {
        guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
            part.count == 1 || part.first != "0",
            let octet = UInt32(part), octet <= 255
        else { return nil }
        octets.append(octet)
    }
    guard octets.count == 4 else { return nil }
    return octets[0] << 24 | octets[1] << 16 | octets[2] << 8 | octets[3]
}

@Suite struct IPv4TextTests {
    @Test("Dotted-quad reading: the edge cases", arguments: [
        ("0.0.0.0", UInt32?(0)), ("255.255.255.255", 0xFFFF_FFFF), ("198.18.0.1", 0xC612_0001),
        ("256.1.1.1", nil), ("1.2.3", nil), ("1.2.3.4.", nil), (".1.2.3", nil), ("1..2.3", nil), ("01.2.3.4", nil),
        ("1.2.3.00", nil), ("1.2.3.0", 0x0102_0300), ("1000.1.1.1", nil), ("", nil), ("1.2.3.4 ", nil),
        ("1.2.3.٤", nil), ("1.2.3.４", nil), ("1.2.3.4\u{301}", nil), ("1.2.3.-4", nil), ("+1.2.3.4", nil),
    ])
    func edges(_ text: String, _ expected: UInt32?) {
        #expect(IPv4Address(text)?.value == expected)
        #expect(referenceIPv4(text) == expected)
    }

    @Test("Dotted-quad reading agrees with the Character-level reference on 200,000 random texts")
    func agreesWithReference() {
        // Texts made of the pieces an address is made of, and the near misses around them.
        let pieces = ["0", "1", "2", "5", "9", "25", "255", "256", "00", "01", "10", "199", "999", "1000", ".", ".",
                      ".", "", " ", "x", "-", "\u{301}", "٤", "\r"]
        var generator = SeededGenerator(seed: 0x1D_C0FF_EE)
        var accepted = 0
        for _ in 0..<200_000 {
            // Usually four numeric parts joined by dots; then as often as not a piece inserted somewhere.
            let numbers = pieces.prefix(14)
            var parts = (0..<(generator.next() % 4 == 0 ? Int(generator.next() % 6) : 4)).map { _ in
                numbers[Int(generator.next() % UInt64(numbers.count))]
            }
            if generator.next() % 2 == 0 {
                parts.insert(pieces[Int(generator.next() % UInt64(pieces.count))],
                             at: Int(generator.next() % UInt64(parts.count + 1)))
            }
            let text = parts.joined(separator: ".")
            let got = IPv4Address(text)?.value
            #expect(got == referenceIPv4(text), "\(text.debugDescription)")
            if got != nil { accepted += 1 }
            if got != referenceIPv4(text) { break }
        }
        #expect(accepted > 1_000, "the texts must include many addresses, not only refusals")
    }
}
