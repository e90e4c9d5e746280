// Decoding real replies: the fixtures in CapturedFixtures.swift were captured from a Linux netns
// lab by scripts/capture-fixtures.sh (see that file's header). Every field is asserted, and the
// tag words decode with the key the probes' sequence numbers were made with.

import Testing
import FastTraceWire

@Suite("Reply parser on captured replies")
struct CapturedReplyTests {
    static let vantage = IPv4Address(192, 0, 2, 2)
    static let router = IPv4Address(192, 0, 2, 1)
    static let target = IPv4Address(198, 51, 100, 10)

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let hex: String
        let expected: ParsedReply
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "time exceeded from the router (hping3 -t 1)", hex: CapturedFixtures.timeExceeded,
            expected: ParsedReply(
                response: .timeExceeded, responder: router, probeSource: vantage, probeDestination: target,
                sourcePort: 40001, destinationPort: 443, tagWord: 659_328_528, replyTTL: 64, quotedIPID: 4097, quotedTTL: 1)),
        Case(
            name: "SYN-ACK from the listener on 443", hex: CapturedFixtures.synAck,
            expected: ParsedReply(
                response: .synAck, responder: target, probeSource: vantage, probeDestination: target,
                sourcePort: 40002, destinationPort: 443, tagWord: 340_262_749, replyTTL: 63)),
        Case(
            name: "RST-ACK from the closed port 81", hex: CapturedFixtures.reset,
            expected: ParsedReply(
                response: .reset, responder: target, probeSource: vantage, probeDestination: target,
                sourcePort: 40003, destinationPort: 81, tagWord: 2_081_780_872, replyTTL: 63)),
        Case(
            name: "host unreachable from the router's reject rule", hex: CapturedFixtures.hostUnreachable,
            expected: ParsedReply(
                response: .unreachable(code: 1), responder: router, probeSource: vantage, probeDestination: target,
                sourcePort: 40004, destinationPort: 82, tagWord: 560_714_626, replyTTL: 64, quotedIPID: 4100, quotedTTL: 63)),
        Case(
            name: "time exceeded quoting a header with a record-route option",
            hex: CapturedFixtures.timeExceededQuotingOptions,
            expected: ParsedReply(
                response: .timeExceeded, responder: router, probeSource: vantage, probeDestination: target,
                sourcePort: 40005, destinationPort: 443, tagWord: 424_415_921, replyTTL: 64, quotedIPID: 4101, quotedTTL: 1)),
        Case(
            name: "admin-prohibited from the target's reject rule", hex: CapturedFixtures.adminProhibited,
            expected: ParsedReply(
                response: .unreachable(code: 13), responder: target, probeSource: vantage, probeDestination: target,
                sourcePort: 40006, destinationPort: 83, tagWord: 1_930_870_991, replyTTL: 63, quotedIPID: 4102, quotedTTL: 63)),
    ]

    @Test("parses every field", arguments: cases)
    func parsesFixture(_ c: Case) {
        let reply = parse(bytes(hex: c.hex))
        #expect(reply == c.expected)
    }

    @Test("the options fixture really has options in both the outer and the quoted header")
    func optionsFixtureHasOptions() {
        bytes(hex: CapturedFixtures.timeExceededQuotingOptions).withUnsafeBytes { raw in
            let outer = IPv4HeaderView(raw)!
            #expect(outer.headerLength == 60)
            let icmp = ICMPHeaderView(outer.payload)!
            let quoted = IPv4HeaderView(icmp.payload)!
            #expect(quoted.headerLength == 60)
            #expect(quoted.options.first == 7)  // record route
        }
    }

    @Test("every prefix parses to nil or to the full result, never crashes", arguments: cases)
    func truncations(_ c: Case) {
        let full = bytes(hex: c.hex)
        var firstComplete = Int.max
        for length in 0...full.count {
            let reply = parse(Array(full.prefix(length)))
            #expect(reply == nil || reply == c.expected, "prefix of \(length) bytes")
            if reply != nil { firstComplete = min(firstComplete, length) }
        }
        // Shorter than the fields correlation needs is nil; from there on the result is stable.
        for length in firstComplete...full.count {
            #expect(parse(Array(full.prefix(length))) == c.expected, "prefix of \(length) bytes")
        }
        #expect(firstComplete <= full.count)
    }

    @Test("link-layer padding after the datagram is ignored", arguments: cases)
    func trailingPadding(_ c: Case) {
        let padded = bytes(hex: c.hex) + [UInt8](repeating: 0xEE, count: 18)
        #expect(parse(padded) == c.expected)
    }
}
