// Counting a list ahead of the stream that traces it (issue 13, item 12): the progress line's total
// must be there from the first seconds, and must be the same count the stream arrives at.

import FastTraceWire
import Testing

@testable import FastTraceCore

@Suite struct TargetCounterTests {
    func count(_ text: String, chunk size: Int, maxPrefixAddresses: Int = TargetParser.defaultMaxPrefixAddresses)
        -> TargetCounter
    {
        var counter = TargetCounter(maxPrefixAddresses: maxPrefixAddresses)
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + size)
            bytes[start..<end].withUnsafeBytes { counter.count($0) }
            start = end
        }
        counter.finish()
        return counter
    }

    @Test(arguments: [1, 3, 7, 64, 65536])
    func prefixesCountTheirAddressesNamesOneAndBadLinesNothing(size: Int) {
        // A BOM, an address, a /30 (4), a /24 (256), a name (1), a comment, a blank line, an IPv6 address
        // (1), an IPv6 /126 (4), a typo (nothing), and a last line without a newline (1).
        let text = "\u{FEFF}198.51.100.7\r\n203.0.113.0/30\n198.18.1.0/24 # a lab block\nexample.net\n# comment\n\n"
            + "2001:db8::1\n2001:db8:1::/126\n198.51.100.300\n192.0.2.9"
        let counter = count(text, chunk: size)
        #expect(counter.addresses == 1 + 4 + 256 + 1 + 1 + 4 + 1)
        #expect(counter.lines == 10)
    }

    @Test func aPrefixWiderThanAllowedCountsNothing() {
        // The stream skips it as a bad line; the count must agree.
        #expect(count("198.18.0.0/16\n192.0.2.1\n", chunk: 4096, maxPrefixAddresses: 256).addresses == 1)
    }

    @Test func aLongListIsCountedInBoundedMemory() {
        // 20,000 lines, as in the issue: the count is exact, however the list is chunked.
        let text = (0..<20_000).map { "198.18.\($0 / 250).\($0 % 250 + 1)\n" }.joined()
        #expect(count(text, chunk: 65536).addresses == 20_000)
        #expect(count(text, chunk: 1000).addresses == 20_000)
    }
}
