// The --asn-db table: every accepted line form, range boundaries, overlaps (narrowest wins, then the
// later row), IPv6, malformed lines counted with the first one named, chunking, and a random cross-check
// of nested prefixes against a brute-force longest-prefix match.

import FastTraceWire
import Testing
import FastTraceTestSupport

@testable import FastTraceAnnotations
import FastTraceCore

@Suite struct ASNTableTests {
    /// A table from one file's text, and that file's report.
    func table(_ text: String) -> (ASNTable, ASNFileReport) {
        var builder = ASNTableBuilder()
        builder.feed(text)
        let report = builder.endFile()
        return (builder.build(), report)
    }

    func v4(_ text: String) -> UInt32 { IPv4Address(text)!.value }

    func v6(_ text: String) -> UInt128 {
        var text = text
        return text.withUTF8 { parseIPv6($0) }!
    }

    @Test func iptoasnRangesAnswerAtTheirBoundariesAndNowhereElse() {
        let (t, report) = table("""
            0.0.0.0\t0.255.255.255\t0\tNone\tNot routed
            1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET
            1.0.1.0\t1.0.3.255\t0\tNone\tNot routed
            1.0.4.0\t1.0.7.255\t38803\tAU\tGTELECOM-AUSTRALIA Gtelecom Pty Ltd
            1.0.16.0\t1.0.16.255\t13335\tUS\tCLOUDFLARENET
            255.255.255.0\t255.255.255.255\t64500\tZZ\tTOP

            """)
        #expect(report == { var r = ASNFileReport(); r.rows = 6; return r }())
        #expect(t.asn(v4: v4("0.0.0.0")) == nil)  // AS 0: not routed
        #expect(t.asn(v4: v4("0.255.255.255")) == nil)
        #expect(t.asn(v4: v4("1.0.0.0")) == 13335)
        #expect(t.asn(v4: v4("1.0.0.255")) == 13335)
        #expect(t.asn(v4: v4("1.0.1.0")) == nil)
        #expect(t.asn(v4: v4("1.0.4.0")) == 38803)
        #expect(t.asn(v4: v4("1.0.7.255")) == 38803)
        #expect(t.asn(v4: v4("1.0.8.0")) == nil)  // a gap between rows
        #expect(t.asn(v4: v4("1.0.15.255")) == nil)
        #expect(t.asn(v4: v4("1.0.16.0")) == 13335)
        #expect(t.asn(v4: v4("1.0.17.0")) == nil)
        #expect(t.asn(v4: v4("255.255.254.255")) == nil)
        #expect(t.asn(v4: v4("255.255.255.255")) == 64500)  // a row ending at the top of the space
        #expect(t.name(ofAS: 13335) == "CLOUDFLARENET")
        #expect(t.name(ofAS: 38803) == "GTELECOM-AUSTRALIA Gtelecom Pty Ltd")  // spaces kept
        #expect(t.name(ofAS: 0) == nil)
        #expect(t.name(ofAS: 64501) == nil)
        #expect(t.asn(v6: 0) == nil)  // no IPv6 rows
    }

    @Test func decimalRangesAsIptoasnU32WritesThem() {
        let (t, report) = table("16777216\t16777471\t13335\tUS\tCLOUDFLARENET\n")
        #expect(report.rows == 1 && report.badLines == 0)
        #expect(t.asn(v4: v4("1.0.0.0")) == 13335)
        #expect(t.asn(v4: v4("1.0.0.255")) == 13335)
        #expect(t.asn(v4: v4("1.0.1.0")) == nil)
    }

    @Test func ipv6RangesAndPrefixes() {
        let (t, report) = table("""
            2001:db8::\t2001:db8:0:ffff:ffff:ffff:ffff:ffff\t64500\tZZ\tDOC-A
            2001:db8:1::/48 64501
            2001:db8:1:2::/64\t64502
            ::ffff:0.0.0.0\t::ffff:255.255.255.255\t0\tNone\tNot routed

            """)
        #expect(report.rows == 4 && report.badLines == 0, "\(report)")
        #expect(t.asn(v6: v6("2001:db8::")) == 64500)
        #expect(t.asn(v6: v6("2001:db8:0:ffff:ffff:ffff:ffff:ffff")) == 64500)
        #expect(t.asn(v6: v6("2001:db8:0:ffff:ffff:ffff:ffff:ffff") + 1) == 64501)
        #expect(t.asn(v6: v6("2001:db8:1:1::1")) == 64501)
        #expect(t.asn(v6: v6("2001:db8:1:2::1")) == 64502)
        #expect(t.asn(v6: v6("2001:db8:1:2:ffff:ffff:ffff:ffff")) == 64502)
        #expect(t.asn(v6: v6("2001:db8:1:3::")) == 64501)
        #expect(t.asn(v6: v6("2001:db8:2::")) == nil)
        #expect(t.asn(v6: v6("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")) == nil)
        #expect(t.asn(v6: v6("::ffff:192.0.2.1")) == nil)
        #expect(t.name(ofAS: 64500) == "DOC-A")
        // IPv6 rows say nothing about IPv4 addresses.
        #expect(t.asn(v4: v4("192.0.2.1")) == nil)
        #expect(t.segmentCounts.v4 == 0)
    }

    @Test func nestedPrefixesTakeTheLongestMatch() {
        // CAIDA pfx2as (tabs), CIDR lines (spaces) and an AS-prefixed, multi-origin and set AS.
        let (t, report) = table("""
            10.0.0.0\t8\t64500
            10.1.2.0/24 AS64502
            10.1.0.0\t16\t64501_64999
            10.1.2.128/25 64503,64998 extra fields are ignored
            11.0.0.0/32 64504

            """)
        #expect(report.rows == 5 && report.badLines == 0, "\(report)")
        #expect(t.asn(v4: v4("9.255.255.255")) == nil)
        #expect(t.asn(v4: v4("10.0.0.0")) == 64500)
        #expect(t.asn(v4: v4("10.0.255.255")) == 64500)
        #expect(t.asn(v4: v4("10.1.0.0")) == 64501)
        #expect(t.asn(v4: v4("10.1.1.255")) == 64501)
        #expect(t.asn(v4: v4("10.1.2.0")) == 64502)
        #expect(t.asn(v4: v4("10.1.2.127")) == 64502)
        #expect(t.asn(v4: v4("10.1.2.128")) == 64503)
        #expect(t.asn(v4: v4("10.1.2.255")) == 64503)
        #expect(t.asn(v4: v4("10.1.3.0")) == 64501)  // back in the /16 after the /24
        #expect(t.asn(v4: v4("10.2.0.0")) == 64500)  // back in the /8 after the /16
        #expect(t.asn(v4: v4("10.255.255.255")) == 64500)
        #expect(t.asn(v4: v4("11.0.0.0")) == 64504)
        #expect(t.asn(v4: v4("11.0.0.1")) == nil)
    }

    @Test func overlappingRangesNarrowestThenLatestWins() {
        var builder = ASNTableBuilder()
        builder.feed("""
            192.0.2.0\t192.0.2.99\t64500\tZZ\tWIDE
            192.0.2.50\t192.0.2.149\t64501\tZZ\tPARTIAL
            192.0.2.60\t192.0.2.69\t64502\tZZ\tNARROW

            """)
        _ = builder.endFile()
        // A second file: a row the same size as WIDE, covering it exactly: the later row wins.
        builder.feed("192.0.2.0/25 64600\n192.0.2.0\t192.0.2.99\t64599\tZZ\tLATER\n")
        let second = builder.endFile()
        #expect(second.rows == 2)
        let t = builder.build()
        #expect(t.rowCount == 5)
        #expect(t.asn(v4: v4("192.0.2.0")) == 64599)  // LATER (100 addresses) beats the /25 (128)
        #expect(t.asn(v4: v4("192.0.2.49")) == 64599)
        #expect(t.asn(v4: v4("192.0.2.50")) == 64599)  // LATER and PARTIAL both 100: the later row
        #expect(t.asn(v4: v4("192.0.2.60")) == 64502)
        #expect(t.asn(v4: v4("192.0.2.69")) == 64502)
        #expect(t.asn(v4: v4("192.0.2.70")) == 64599)
        #expect(t.asn(v4: v4("192.0.2.100")) == 64501)  // past LATER: PARTIAL (100) beats the /25 (128)
        #expect(t.asn(v4: v4("192.0.2.127")) == 64501)
        #expect(t.asn(v4: v4("192.0.2.149")) == 64501)
        #expect(t.asn(v4: v4("192.0.2.150")) == nil)
        // The first description seen for an AS names it.
        #expect(t.name(ofAS: 64599) == "LATER" && t.name(ofAS: 64600) == nil)
    }

    @Test func wholeSpaceRowsAndAdjacentRowsOfOneASMerge() {
        let (t, _) = table("0.0.0.0/0 64500\n::/0 64501\n")
        #expect(t.asn(v4: 0) == 64500 && t.asn(v4: .max) == 64500)
        #expect(t.asn(v6: 0) == 64501 && t.asn(v6: .max) == 64501)
        #expect(t.segmentCounts == (1, 1))
        let (merged, _) = table("198.51.100.0/25 64500\n198.51.100.128/25 64500\n")
        #expect(merged.segmentCounts.v4 == 3)  // before, the two rows as one, after
        #expect(merged.asn(v4: v4("198.51.100.200")) == 64500)
    }

    @Test func malformedLinesAreCountedAndTheFirstIsNamed() {
        let (t, report) = table("""
            # comment
            \u{20}
            198.51.100.0/24 64500\r
            198.51.100.1/24 64501
            203.0.113.0\t203.0.113.255\tASX\tZZ\tBAD
            203.0.113.0\t203.0.112.0\t64502\tZZ\tBACKWARDS
            2001:db8::\t203.0.113.255\t64503
            just-one-field
            198.51.100.010\t198.51.100.20\t64504
            10.0.0.0/33 64505
            2001:db8:::1/64 64506
            192.0.2.0/24 4294967296
            192.0.2.0\t24

            """)
        #expect(report.rows == 1)
        #expect(report.badLines == 10)
        #expect(report.firstBadLine == 4)
        #expect(report.firstBadReason == "198.51.100.1/24 has host bits set")
        #expect(t.asn(v4: v4("198.51.100.7")) == 64500)  // the CRLF line is fine
        // Each refusal, one at a time.
        func reason(_ line: String) -> String? { table(line + "\n").1.firstBadReason }
        #expect(reason("203.0.113.0\t203.0.113.255\tASX\tZZ\tBAD") == "'ASX' is not an AS number")
        #expect(reason("203.0.113.0\t203.0.112.0\t64502") == "range end 203.0.112.0 is below its start")
        #expect(reason("2001:db8::\t203.0.113.255\t64503") == "'203.0.113.255' is not an IPv6 address like the range's start")
        #expect(reason("just-one-field")?.hasPrefix("expected START END ASN") == true)
        #expect(reason("198.51.100.010\t198.51.100.20\t64504") == "'198.51.100.010' is not an IPv4 or IPv6 address")
        #expect(reason("10.0.0.0/33 64505") == "prefix length 33 is over 32")
        #expect(reason("2001:db8:::1/64 64506") == "'2001:db8:::1' is not an IPv4 or IPv6 address")
        #expect(reason("192.0.2.0/24 4294967296") == "'4294967296' is not an AS number")
        #expect(reason("192.0.2.0\t24") == "expected START END ASN, NETWORK LENGTH ASN or NETWORK/LENGTH ASN, got 2 field(s)")
        #expect(reason("192.0.2.0/24") == "a prefix without an AS number")
        // Control bytes from the file never reach a message raw.
        #expect(reason("192.0.2.0/24 6\u{1B}[2J") == "'6\\x1b[2J' is not an AS number")
        #expect(reason(String(repeating: "9", count: 2000)) == "line is longer than 1024 bytes")
    }

    @Test(arguments: [1, 2, 3, 5, 17, 64, 100_000])
    func chunkingDoesNotChangeTheTable(size: Int) {
        let text = """
            1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET
            # a comment
            10.0.0.0/8 64500
            bad line here
            2001:db8::/32\t64501
            \(String(repeating: "x", count: 1500))
            10.1.0.0\t16\t64502
            192.0.2.0/24 64503
            """  // the last line has no newline
        var builder = ASNTableBuilder()
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + size)
            bytes[start..<end].withUnsafeBytes { builder.feed($0) }
            start = end
        }
        let report = builder.endFile()
        #expect(report.rows == 5)
        #expect(report.badLines == 2)
        #expect(report.firstBadLine == 4)
        let t = builder.build()
        #expect(t.asn(v4: v4("1.0.0.1")) == 13335)
        #expect(t.asn(v4: v4("10.1.0.1")) == 64502)
        #expect(t.asn(v4: v4("10.2.0.1")) == 64500)
        #expect(t.asn(v4: v4("192.0.2.255")) == 64503)
        #expect(t.asn(v6: v6("2001:db8:ffff::1")) == 64501)
        #expect(t.name(ofAS: 13335) == "CLOUDFLARENET")
    }

    @Test func randomNestedPrefixesMatchBruteForceLongestPrefix() {
        var rng = SeededRandom(seed: 2024)
        var prefixes: [(network: UInt32, length: Int, asn: UInt32)] = []
        var text = ""
        // Prefixes inside 10.0.0.0/16, lengths 16...28, so many nest and some repeat (later wins).
        for i in 0..<600 {
            let length = 16 + Int(rng.next() % 13)
            let mask = IPv4Address.prefixMask(length: length)
            let network = (0x0A00_0000 | UInt32(truncatingIfNeeded: rng.next()) & 0xFFFF) & mask
            let asn = UInt32(64500 + i)
            prefixes.append((network, length, asn))
            text += "\(IPv4Address(network))/\(length) \(asn)\n"
        }
        let (t, report) = table(text)
        #expect(report.rows == 600 && report.badLines == 0)
        func brute(_ address: UInt32) -> UInt32? {
            var best: (length: Int, index: Int)?
            for (index, p) in prefixes.enumerated()
            where address & IPv4Address.prefixMask(length: p.length) == p.network {
                if best == nil || p.length > best!.length || (p.length == best!.length && index > best!.index) {
                    best = (p.length, index)
                }
            }
            return best.map { prefixes[$0.index].asn }
        }
        var wrong = 0
        for _ in 0..<5_000 {
            let address = 0x0A00_0000 | UInt32(truncatingIfNeeded: rng.next()) & 0x1_FFFF  // some outside /16
            if t.asn(v4: address) != brute(address) { wrong += 1 }
        }
        // Every boundary, too.
        for p in prefixes {
            let last = p.network | ~IPv4Address.prefixMask(length: p.length)
            for address in [p.network &- 1, p.network, last, last &+ 1] where t.asn(v4: address) != brute(address) {
                wrong += 1
            }
        }
        #expect(wrong == 0)
    }

    @Test func aFullSizeTableStaysWithinAFewMegabytes() {
        // 100,000 adjacent /24s of 20,000 ASes (a full IPv4 table has about 500,000 rows): 8 bytes per
        // segment plus the names.
        var text = ""
        text.reserveCapacity(100_000 * 48)
        for i in 0..<100_000 {
            let start = UInt32(0x0100_0000) + UInt32(i) << 8
            text += "\(IPv4Address(start))\t\(IPv4Address(start | 0xFF))\t\(64512 + i % 20_000)\tZZ\tAS-NAME-\(i % 20_000)\n"
        }
        let (t, report) = table(text)
        #expect(report.rows == 100_000)
        #expect(t.segmentCounts.v4 == 100_002)  // a gap before, each row, a gap after
        #expect(t.memoryBytes < 100_002 * 8 + 20_000 * 8 + 20_000 * 14)
        #expect(t.asn(v4: 0x0100_0000 + 12_345 << 8 + 7) == UInt32(64512 + 12_345))
        #expect(t.name(ofAS: 64512 + 12_345) == "AS-NAME-12345")
    }

    @Test func ipv6TextForms() {
        func parse(_ text: String) -> UInt128? {
            var text = text
            return text.withUTF8 { parseIPv6($0) }
        }
        #expect(parse("::") == 0)
        #expect(parse("::1") == 1)
        #expect(parse("1::") == UInt128(1) << 112)
        #expect(parse("2001:DB8::8:800:200C:417A") == 0x2001_0db8_0000_0000_0008_0800_200c_417a)
        #expect(parse("2001:db8:0:0:8:800:200c:417a") == 0x2001_0db8_0000_0000_0008_0800_200c_417a)
        #expect(parse("::ffff:192.0.2.1") == 0xffff_c000_0201)
        #expect(parse("64:ff9b::198.51.100.7") == UInt128(0x64_ff9b) << 96 | 0xc633_6407)
        #expect(parse("1:2:3:4:5:6:7:8") == 0x0001_0002_0003_0004_0005_0006_0007_0008)
        for bad in ["", ":", ":::", "1:2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "12345::",
            "1:2:3:4:5:6:7:", ":1:2:3:4:5:6:7", "g::", "::ffff:1.2.3", "::1.2.3.4:5", "198.51.100.7", "1::2 "]
        {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }
}
