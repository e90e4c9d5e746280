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
