// The command line's tcptraceroute habits and terminal hygiene, tested on the functions themselves.
// (Running the binary, for argument errors, help and exit statuses, is in FastTraceLabTests.)

import FastTraceCore
import FastTraceWire
import Testing

@testable import fasttrace

@Suite struct CompatibilityTests {
    @Test func unreachableMarksAreTcptraceroutes() {
        // tcptraceroute 1.5beta7, capture.c: the letter for each ICMP destination unreachable code.
        let expected = ["!N", "!H", "!P", "!p", "!F", "!S", "!U", "!U", "!I", "!A", "!C", "!T", "!T", "!A",
            "!<14>", "!<15>", "!<16>", "!<255>"]
        let codes: [UInt8] = Array(0...16) + [255]
        #expect(codes.map { unreachableMark($0) } == expected)
        // ICMPv6's codes are its own (RFC 4443), marked as traceroute marks them over IPv6.
        let expected6 = ["!N", "!X", "!S", "!H", "!p", "!<5>", "!<6>", "!<7>"]
        #expect((0...7).map { unreachableMark(UInt8($0), family: .v6) } == expected6)
    }
}

extension CompatibilityTests {
    @Test func typeOfServiceInDecimalOrHex() {
        #expect(parseTOS("0") == .success(0))
        #expect(parseTOS("16") == .success(16))
        #expect(parseTOS("0x10") == .success(16))
        #expect(parseTOS("0XfF") == .success(255))
        #expect(parseTOS("255") == .success(255))
        let refused: [(String, String)] = [
            ("256", "TOS must be 0...255 (got 256)"),
            ("0x100", "TOS must be 0...255 (got 0x100)"),
            ("-1", "TOS must be 0...255, decimal or 0x hex (got '-1')"),
            ("0x", "TOS must be 0...255, decimal or 0x hex (got '0x')"),
            ("lowdelay", "TOS must be 0...255, decimal or 0x hex (got 'lowdelay')"),
            ("010", "'010' is ambiguous (octal to some tools); write it in decimal or as 0x…"),
        ]
        for (text, reason) in refused { #expect(parseTOS(text) == .failure(ReasonError(reason)), "\(text)") }
    }

    @Test func serviceNamesComeFromTheServicesDatabase() throws {
        // /etc/services (Debian's netbase) has these for tcp.
        #expect(tcpServicePort("https") == 443)
        #expect(tcpServicePort("ssh") == 22)
        #expect(tcpServicePort("smtp") == 25)
        #expect(tcpServicePort("no-such-service-here") == nil)
        #expect(try TargetParser.parsePorts("ssh,https-444", service: tcpServicePort).get() == [22, 443, 444])
    }

    @Test func privateAddressesGetNoNamesUnlessAsked() {
        let private_ = ["10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1"]
        let public_ = ["9.255.255.255", "11.0.0.1", "172.15.255.255", "172.32.0.1", "192.167.1.1", "198.18.0.1"]
        for text in private_ { #expect(IPv4Address(text)!.isRFC1918, "\(text)") }
        for text in public_ { #expect(!IPv4Address(text)!.isRFC1918, "\(text)") }
        #expect(!looksUpName(of: IPv4Address(10, 1, 2, 3), includePrivate: false))
        #expect(looksUpName(of: IPv4Address(198, 18, 0, 1), includePrivate: false))
        #expect(looksUpName(of: IPv4Address(10, 1, 2, 3), includePrivate: true))
    }
}

@Suite struct TerminalTests {
    @Test func controlCharactersAreWrittenOut() {
        #expect(escapingControlCharacters("plain text, tabs\tstay") == "plain text, tabs\tstay")
        #expect(escapingControlCharacters("a\u{1b}]0;pwned\u{07}b") == "a\\x1b]0;pwned\\x07b")
        #expect(escapingControlCharacters("\u{1b}[2J\r\n\u{7f}") == "\\x1b[2J\\x0d\\x0a\\x7f")
        #expect(escapingControlCharacters("c1 \u{9b}31m é") == "c1 \\u{9b}31m é")
    }

    @Test func theProgressLineIsWipedBeforeResultsAndDrawnAgainAfter() {
        var progress = ProgressLine()
        #expect(progress.clear() == "" && progress.redraw == "")
        #expect(progress.draw("[fasttrace] 10 traces done, 5 probes/s") == "\r[fasttrace] 10 traces done, 5 probes/s")
        // A shorter line covers the rest of the longer one.
        #expect(progress.draw("[fasttrace] 11 traces done") == "\r[fasttrace] 11 traces done" + String(repeating: " ", count: 12))
        #expect(progress.clear() == "\r" + String(repeating: " ", count: 26) + "\r")
        #expect(progress.redraw == "\r[fasttrace] 11 traces done")
        progress.reset()
        #expect(progress.clear() == "" && progress.redraw == "")
    }

    @Test func theRateIsOverTheLastSecond() {
        var rate = RecentRate()
        let quarter: UInt64 = 250_000_000
        #expect(rate.update(probes: 0, at: 10 * quarter) == 0)
        // 1000 probes in the first half second, then nothing: the rate falls to 0 once that half
        // second has left the window, not after the average since the start decays.
        #expect(rate.update(probes: 500, at: 11 * quarter) == 2000)
        #expect(rate.update(probes: 1000, at: 12 * quarter) == 2000)
        #expect(rate.update(probes: 1000, at: 13 * quarter) == 1000 / 0.75)
        #expect(rate.update(probes: 1000, at: 14 * quarter) == 1000)
        #expect(rate.update(probes: 1000, at: 15 * quarter) == 500)
        #expect(rate.update(probes: 1000, at: 16 * quarter) == 0)
        #expect(rate.update(probes: 1250, at: 17 * quarter) == 250)
    }

    @Test func parserMessagesBecomeOneLine() {
        #expect(usageErrorLine("Unknown option '--bogus'") == "unknown option '--bogus'")
        #expect(usageErrorLine("Missing value for '-q <probes>'\nHelp:  -q <probes>  Probes per hop")
            == "missing value for '-q <probes>'; Help:  -q <probes>  Probes per hop")
        #expect(usageErrorLine("") == "bad arguments (see --help)")
        #expect(usageErrorLine("UDP is not TCP") == "UDP is not TCP")
    }
}
