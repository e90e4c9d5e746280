// What a new user's target lists hold and fasttrace used to trip over (issue 13): addresses no host
// has, IPv6 lines, a byte-order mark, bytes that are not UTF-8, repeated targets and ports.

import FastTraceWire
import Testing

@testable import FastTraceCore

@Suite struct NonHostAddressTests {
    @Test(arguments: [
        ("255.255.255.255", "'255.255.255.255' is the limited broadcast address, not a host's: nothing to trace"),
        ("0.0.0.0", "'0.0.0.0' is the unspecified address, not a host's: nothing to trace"),
        ("0.1.2.3", "'0.1.2.3' is a \"this network\" address (0.0.0.0/8), not a host's: nothing to trace"),
        ("224.0.0.1", "'224.0.0.1' is a multicast address (224.0.0.0/4), not a host's: nothing to trace"),
        ("239.255.255.250", "'239.255.255.250' is a multicast address (224.0.0.0/4), not a host's: nothing to trace"),
        ("240.0.0.1", "'240.0.0.1' is a reserved address (240.0.0.0/4), not a host's: nothing to trace"),
        ("255.255.255.254", "'255.255.255.254' is a reserved address (240.0.0.0/4), not a host's: nothing to trace"),
        ("255.255.255.255/32", "'255.255.255.255' is the limited broadcast address, not a host's: nothing to trace"),
        ("224.0.0.0/24", "'224.0.0.0/24' is in the multicast block 224.0.0.0/4: no host has these addresses"),
        ("0.0.0.0/16", "'0.0.0.0/16' is in the \"this network\" block 0.0.0.0/8: no host has these addresses"),
        ("2001:db8::/64", "'2001:db8::/64' expands to 2^64 addresses; the cap is 65536 (--max-prefix-addresses)"),
        ("2001:db8::/100", "'2001:db8::/100' expands to 268435456 addresses; the cap is 65536 (--max-prefix-addresses)"),
        ("2001:db8::/129", "'2001:db8::/129': prefix length must be 0...128 (got 129)"),
        ("2001:db8::/0120", "'2001:db8::/0120': prefix length '0120' has a leading zero; write /120"),
        ("2001:db8::/00", "'2001:db8::/00': prefix length '00' has a leading zero; write /0"),
        ("2001:db8::/", "'2001:db8::/': prefix length must be 0...128 (none after the '/')"),
        ("2001:db8:::1", "'2001:db8:::1': '2001:db8:::1' is not a valid IPv6 address"),
        ("2001:db8::g", "'2001:db8::g' is not a valid IPv6 address"),
        ("web.example:443", "'web.example:443': give the host alone ('web.example'); ports go in -p"),
        ("[2001:db8::1]:443", "'[2001:db8::1]:443': give the address alone ('2001:db8::1'); ports go in -p"),
        ("[2001:db8::1]", "'[2001:db8::1]': give the address without brackets ('2001:db8::1')"),
        ("::ffff:198.18.0.1", "'::ffff:198.18.0.1' is an IPv4-mapped IPv6 address: write the IPv4 address 198.18.0.1 itself"),
        ("::", "'::' is the unspecified address (::), not a host's: nothing to trace"),
        ("::1", "'::1' is the loopback address (::1), not a host's: nothing to trace"),
        ("ff02::1", "'ff02::1' is a multicast address (ff00::/8), not a host's: nothing to trace"),
        ("ff00::/120", "'ff00::/120' is in the multicast block ff00::/8: no host has these addresses"),
        ("fe80::1", "'fe80::1' is a link-local address (fe80::/10), not a host's: nothing to trace"),
        ("fe80::/112", "'fe80::/112' is in the link-local block fe80::/10: no host has these addresses"),
    ])
    func refusedInOneLine(text: String, reason: String) {
        #expect(TargetParser.parseTarget(Substring(text)) == .failure(ReasonError(reason)))
    }

    @Test func ipv6AddressesAndPrefixesParse() throws {
        #expect(try TargetParser.parseTarget("2001:db8::1").get() == .address(IPAddress("2001:db8::1")!))
        #expect(try TargetParser.parseTarget("2001:DB8:0:0:0:0:0:a").get() == .address(IPAddress("2001:db8::a")!))
        // A prefix is masked to its network address; the cap counts its addresses.
        let p = try TargetParser.parseTarget("2001:db8:1::ff/120").get()
        #expect(p == .prefix(IPAddress("2001:db8:1::")!, length: 120) && p.addressCount == 256)
        #expect(try TargetParser.parseTarget("2001:db8::5/128").get() == .address(IPAddress("2001:db8::5")!))
        #expect(TargetParser.parseTarget("2001:db8::/112", maxPrefixAddresses: 65_535)
            == .failure(ReasonError("'2001:db8::/112' expands to 65536 addresses; the cap is 65535 (--max-prefix-addresses)")))
        // (A list mixing the families expands in order, each prefix within its own family: TargetExpansionTests.)
    }

    @Test func seenTargetsTellIPv6RepeatsApart() {
        var seen = SeenTargets()
        #expect(seen.insert(IPAddress("2001:db8::1")!) && !seen.insert(IPAddress("2001:db8::1")!))
        seen.insertPrefix(IPAddress("2001:db8:5::")!, length: 120)
        #expect(seen.contains(IPAddress("2001:db8:5::7f")!) && !seen.contains(IPAddress("2001:db8:5::1:0")!))
        // The IPv4 address with the same low bits is another target.
        #expect(!seen.contains(IPAddress(IPv4Address(0, 0, 0, 1))) && seen.insert(IPAddress(IPv4Address(192, 0, 2, 1))))
        #expect(seen.count == 2)
    }

    @Test func hostAddressesAndWidePrefixesStillParse() throws {
        #expect(try TargetParser.parseTarget("223.255.255.255").get() == .address(IPv4Address(223, 255, 255, 255)))
        #expect(try TargetParser.parseTarget("1.0.0.0").get() == .address(IPv4Address(1, 0, 0, 0)))
        // A prefix only partly in a block: its addresses there are refused one by one (HostAddressCheck).
        #expect(try TargetParser.parseTarget("192.0.0.0/2", maxPrefixAddresses: 1 << 30).get()
            == .prefix(IPv4Address(192, 0, 0, 0), length: 2))
        // A host name with a colon-free shape is still a name.
        #expect(try TargetParser.parseTarget("cafe.example").get() == .hostname("cafe.example"))
    }

    @Test func onLinkNetworkAndBroadcastAddressesAreNoHosts() {
        let check = HostAddressCheck(onLink: [
            .init(address: IPv4Address(198, 18, 0, 2), length: 30, interface: "veth0"),
            .init(address: IPv4Address(192, 0, 2, 1), length: 31, interface: "p2p"),
            .init(address: IPv4Address(203, 0, 113, 9), length: 32, interface: "lo"),
        ])
        #expect(check.problem(IPv4Address(198, 18, 0, 3))
            == "the broadcast address of 198.18.0.0/30 (on veth0), not a host's: nothing to trace")
        #expect(check.problem(IPv4Address(198, 18, 0, 0))
            == "the network address of 198.18.0.0/30 (on veth0), not a host's: nothing to trace")
        for host in [IPv4Address(198, 18, 0, 1), IPv4Address(198, 18, 0, 4), IPv4Address(192, 0, 2, 0)] {
            #expect(check.problem(host) == nil, "\(host)")  // /31 and /32 have no network or broadcast address
        }
        // This host itself: its own addresses and loopback (a new user's trace to 127.0.0.1 named veth0).
        #expect(check.problem(IPv4Address(192, 0, 2, 1)) == "this host's own address (on p2p): nothing on the network to trace")
        #expect(check.problem(IPv4Address(203, 0, 113, 9)) == "this host's own address (on lo): nothing on the network to trace")
        #expect(check.problem(IPv4Address(198, 18, 0, 2)) == "this host's own address (on veth0): nothing on the network to trace")
        #expect(check.problem(IPv4Address(127, 0, 0, 1))
            == "a loopback address (127.0.0.0/8): this host itself, nothing on the network to trace")
        #expect(check.problem(IPv4Address(255, 255, 255, 255))
            == "the limited broadcast address, not a host's: nothing to trace")
    }
}

@Suite struct RepeatedTargetTests {
    @Test func portsGivenTwiceAreSaid() throws {
        let services: [Substring: UInt16] = ["https": 443, "ssh": 22]
        let parse = { (text: String) in try TargetParser.parsePortList(text, service: { services[$0] }).get() }
        let one = try parse("https,443")
        #expect(one.ports == [443])
        #expect(one.repeatsNote == "port 443 is listed twice ('https' and '443'): it is traced once")
        #expect(try parse("443,443").repeatsNote == "port 443 is listed twice ('443' twice): it is traced once")
        let many = try parse("80-90,85-95,ssh,22")
        #expect(many.ports == Array(80...95) + [22])
        #expect(many.repeatsNote == "7 ports are listed more than once (85: '80-90' and '85-95'; 86: '80-90' and "
            + "'85-95'; 87: '80-90' and '85-95'; …): each is traced once")
        #expect(try parse("443,22").repeatsNote == nil)
        #expect(TargetParser.parsePortList("443,nosuch", service: { services[$0] })
            == .failure(ReasonError("bad port 'nosuch': not a number, and no TCP service of that name")))
    }

    @Test func anAddressIsSeenAgainAsItselfOrInsideAPrefix() {
        var seen = SeenTargets()
        let first = seen.insert(IPv4Address(198, 18, 0, 9)), again = seen.insert(IPv4Address(198, 18, 0, 9))
        #expect(first && !again)
        #expect(seen.contains(IPv4Address(198, 18, 0, 9)) && !seen.contains(IPv4Address(198, 18, 0, 10)))
        // A prefix after the address: the address is in it.
        #expect(seen.contains(IPv4Address(198, 18, 0, 9)))
        seen.insertPrefix(IPv4Address(203, 0, 113, 7), length: 24)  // host bits masked
        #expect(seen.contains(IPv4Address(203, 0, 113, 0)) && seen.contains(IPv4Address(203, 0, 113, 255)))
        #expect(!seen.contains(IPv4Address(203, 0, 114, 0)))
        let inside = seen.insert(IPv4Address(203, 0, 113, 77))
        #expect(!inside)
        seen.insertPrefix(IPv4Address(192, 0, 2, 0), length: 30)
        #expect(seen.contains(IPv4Address(192, 0, 2, 3)) && !seen.contains(IPv4Address(192, 0, 2, 4)))
        // Prefixes are one entry each, never their addresses.
        #expect(seen.count == 1)
    }

    @Test func pastItsLimitTheCheckSaysItIsFull() {
        var seen = SeenTargets(limit: 2)
        let one = seen.insert(IPv4Address(1)), two = seen.insert(IPv4Address(2))
        #expect(one && two && !seen.full)
        let three = seen.insert(IPv4Address(3))
        #expect(three && seen.full && seen.count == 2)
        let oneAgain = seen.insert(IPv4Address(1))
        #expect(!oneAgain)
    }
}

@Suite struct ListEncodingTests {
    func split(_ bytes: [UInt8], chunk size: Int) -> [InputLine] { chunkedLines(bytes, chunk: size) }

    @Test(arguments: [1, 2, 3, 64])
    func aByteOrderMarkBeforeLineOneIsNotPartOfIt(size: Int) throws {
        let lines = split([0xEF, 0xBB, 0xBF] + Array("198.18.0.9\n\u{FEFF}198.18.0.10\n".utf8), chunk: size)
        #expect(lines.map(\.text) == ["198.18.0.9", "\u{FEFF}198.18.0.10"])
        #expect(try TargetParser.parseLine(lines[0]).get() == .address(IPv4Address(198, 18, 0, 9)))
        // Only at the very start: one on a later line is a character in that line, and refused.
        guard case .failure = TargetParser.parseLine(lines[1]) else {
            Issue.record("a BOM inside the file was taken")
            return
        }
    }

    @Test func bytesThatAreNotUTF8AreShownAsTheyAre() throws {
        let lines = split(Array("caf".utf8) + [0xE9] + Array(".example\n".utf8) + [0xFF, 0xFE, 0x31, 0x0A]
            + Array("198.18.0.9 # caf".utf8) + [0xE9, 0x0A], chunk: 5)
        #expect(lines.count == 3)
        #expect(TargetParser.parseLine(lines[0])
            == .failure(ReasonError("'caf\\xe9.example' is not valid UTF-8 (invalid bytes shown as \\xNN)")))
        #expect(TargetParser.parseLine(lines[1])
            == .failure(ReasonError("'\\xff\\xfe1' is not valid UTF-8 (invalid bytes shown as \\xNN)")))
        // Latin-1 in a comment does not matter.
        #expect(try TargetParser.parseLine(lines[2]).get() == .address(IPv4Address(198, 18, 0, 9)))
    }

    @Test func decodingEscapesOnlyWhatIsInvalid() {
        #expect(decodingUTF8EscapingInvalid(Array("é ok".utf8)) == ("é ok", false))
        #expect(decodingUTF8EscapingInvalid([0x61, 0xC3, 0x62]) == ("a\\xc3b", true))
        #expect(decodingUTF8EscapingInvalid([0xED, 0xA0, 0x80]).invalid)  // a surrogate, CESU-8
    }
}

@Suite struct PortLikeSuffixTests {
    @Test("An IPv6 address that reads as another with a port appended is recognised; a host numbered 53 or a full address is not")
    func recognised() {
        #expect(TargetParser.portLikeSuffix("2001:db8::1:443")! == ("2001:db8::1", 443))
        #expect(TargetParser.portLikeSuffix("2001:db8:100::10:53")! == ("2001:db8:100::10", 53))
        #expect(TargetParser.portLikeSuffix("2001:db8::53") == nil)  // before it, "2001:db8::" ends in ::
        #expect(TargetParser.portLikeSuffix("2001:db8::1:444") == nil)  // not a common service port
        #expect(TargetParser.portLikeSuffix("2001:db8:0:0:0:0:1:443") == nil)  // no ::, eight groups
        #expect(TargetParser.portLikeSuffix("2001:db8::1:1bb") == nil)  // hex, not a decimal port
        #expect(TargetParser.portLikeSuffix("198.51.100.1") == nil)
    }
}
