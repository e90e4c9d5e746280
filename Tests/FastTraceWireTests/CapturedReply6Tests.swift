// Decoding real IPv6 replies: the exchanges in CapturedFixtures6.swift are fasttrace's own probes and the
// replies the lab's kernels sent them (scripts/capture-fixtures6.sh; see that file's header). Each reply is
// read by the kind that sent the probe, every field is asserted, and the word it gives back is the one
// the probe carried; the kind's writer, given what the reply names, writes the captured probe byte for
// byte, so the reply names exactly that probe. Truncated and altered replies are refused.

import Testing
import FastTraceWire

@Suite("Reply parsers on captured IPv6 replies")
struct CapturedReply6Tests {
    static let vantage = IPAddress("2001:db8:0:1::2")!
    static let r1 = IPAddress("2001:db8:0:1::1")!
    static let target = IPAddress("2001:db8:100::a")!

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let exchange: CapturedExchange
        /// The kind that sent the probe.
        let kind: any ProbeKind
        let expected: ParsedReply
        /// What the kind says of the port from this reply (destination answers), nil for a router's error.
        let state: PortState?
        /// Where the probe was sent (differs from what the reply quotes behind a NAT).
        let sentTo: IPAddress
        var testDescription: String { name }
    }

    static let syn = TCPProbeKind(flags: .syn)
    static let ack = TCPProbeKind(flags: .ack)
    static let udp = UDPProbeKind()
    static let echo = ICMPProbeKind()

    /// A router's ICMPv6 error about the probe of `exchange`, quoting its hop limit as `quotedTTL`.
    static func error(
        _ name: String, _ exchange: CapturedExchange, _ kind: any ProbeKind, _ response: Response,
        from responder: String, port: UInt16, sport: UInt16, to destination: IPAddress = target,
        quoting quotedDestination: IPAddress? = nil, replyTTL: UInt8, quotedTTL: UInt8, state: PortState? = nil
    ) -> Case {
        Case(name: name, exchange: exchange, kind: kind,
            expected: ParsedReply(response: response, responder: IPAddress(responder)!, probeSource: vantage,
                probeDestination: quotedDestination ?? destination, sourcePort: sport, destinationPort: port,
                tagWord: exchange.word, replyTTL: replyTTL, quotedTTL: quotedTTL),
            state: state, sentTo: destination)
    }

    /// The destination's own answer to the probe of `exchange`.
    static func answer(
        _ name: String, _ exchange: CapturedExchange, _ kind: any ProbeKind, _ response: Response, port: UInt16,
        sport: UInt16, state: PortState
    ) -> Case {
        Case(name: name, exchange: exchange, kind: kind,
            expected: ParsedReply(response: response, responder: target, probeSource: vantage,
                probeDestination: target, sourcePort: sport, destinationPort: port, tagWord: exchange.word,
                replyTTL: 58),
            state: state, sentTo: target)
    }

    static let cases: [Case] = [
        error("time exceeded quoting a TCP SYN", CapturedFixtures6.timeExceededTCPSyn, syn, .timeExceeded,
            from: "2001:db8:0:1::1", port: 443, sport: 41001, replyTTL: 64, quotedTTL: 1),
        error("time exceeded quoting a TCP ACK", CapturedFixtures6.timeExceededTCPAck, ack, .timeExceeded,
            from: "2001:db8:0:1::1", port: 443, sport: 41002, replyTTL: 64, quotedTTL: 1),
        error("time exceeded quoting a DNS query", CapturedFixtures6.timeExceededUDPDNS, udp, .timeExceeded,
            from: "2001:db8:0:1::1", port: 53, sport: 41003, replyTTL: 64, quotedTTL: 1),
        error("time exceeded quoting UDP to a closed port", CapturedFixtures6.timeExceededUDPClosed, udp,
            .timeExceeded, from: "2001:db8:0:1::1", port: 33434, sport: 41004, replyTTL: 64, quotedTTL: 1),
        error("time exceeded quoting an ICMPv6 echo request", CapturedFixtures6.timeExceededICMPEcho, echo,
            .timeExceeded, from: "2001:db8:0:1::1", port: 0, sport: 41005, replyTTL: 64, quotedTTL: 1),
        error("time exceeded from behind the NAT66, quoting the translated destination",
            CapturedFixtures6.timeExceededBehindNAT66, syn, .timeExceeded, from: "2001:db8:0:f::1", port: 443,
            sport: 41006, to: IPAddress("2001:db8:600::a")!, quoting: IPAddress("2001:db8:700::a")!, replyTTL: 57,
            quotedTTL: 1),
        error("port unreachable from the target (closed UDP port)", CapturedFixtures6.portUnreachable, udp,
            .portUnreachable, from: "2001:db8:100::a", port: 33434, sport: 41007, replyTTL: 58, quotedTTL: 1,
            state: .closed),
        error("administratively prohibited from the firewall", CapturedFixtures6.adminProhibited, syn,
            .unreachableV6(code: 1), from: "2001:db8:0:9::1", port: 8443, sport: 41008,
            to: IPAddress("2001:db8:200::a")!, replyTTL: 58, quotedTTL: 1),
        error("address unreachable from r6 (no neighbour)", CapturedFixtures6.addressUnreachable, syn,
            .unreachableV6(code: 3), from: "2001:db8:0:7::1", port: 443, sport: 41009,
            to: IPAddress("2001:db8:0:8::99")!, replyTTL: 59, quotedTTL: 4),
        error("no route from the NAT66 (echo it does not translate)", CapturedFixtures6.noRoute, echo,
            .unreachableV6(code: 0), from: "2001:db8:0:e::1", port: 0, sport: 41010,
            to: IPAddress("2001:db8:600::a")!, replyTTL: 58, quotedTTL: 1),
        answer("SYN-ACK from the listener on 443", CapturedFixtures6.synAck, syn, .synAck, port: 443, sport: 41011,
            state: .open),
        answer("RST-ACK to a SYN from the closed port 25", CapturedFixtures6.resetToSyn, syn, .reset, port: 25,
            sport: 41012, state: .closed),
        answer("RST to an ACK", CapturedFixtures6.resetToAck, ack, .reset, port: 443, sport: 41013,
            state: .unfiltered),
        answer("DNS answer from 53", CapturedFixtures6.dnsReply, udp, .udpReply, port: 53, sport: 41014,
            state: .open),
        answer("NTP answer from 123", CapturedFixtures6.ntpReply, udp, .udpReply, port: 123, sport: 41015,
            state: .open),
        answer("echo reply", CapturedFixtures6.echoReply, echo, .echoReply, port: 0, sport: 41016,
            state: .reachable),
    ]

    /// `c`'s reply read by its kind, from an allocation of exactly its size.
    static func parse(_ c: Case, _ packet: [UInt8]) -> ParsedReply? {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: packet.count, alignment: 1)
        defer { storage.deallocate() }
        storage.copyBytes(from: packet)
        return c.kind.parse(UnsafeRawBufferPointer(storage))
    }

    @Test("parses every field, and the word is the one the probe carried", arguments: cases)
    func parsesExchange(_ c: Case) {
        let reply = Self.parse(c, bytes(hex: c.exchange.reply))
        #expect(reply == c.expected)
        #expect(reply?.tagWord == c.exchange.word)
        #expect(reply?.unkeyed == false)
    }

    @Test("the kind's reading of the port: open, closed, unfiltered, reachable; nothing from a router", arguments: cases)
    func portState(_ c: Case) {
        let reply = Self.parse(c, bytes(hex: c.exchange.reply))
        #expect(reply.flatMap { c.kind.portState(for: $0.response) } == c.state)
        #expect(reply?.response.isICMPError == (c.state == nil || c.expected.response == .portUnreachable))
    }

    @Test("the kind writes the captured probe byte for byte from the flow and word the reply names", arguments: cases)
    func replyNamesTheProbe(_ c: Case) throws {
        let reply = try #require(Self.parse(c, bytes(hex: c.exchange.reply)))
        let probe = bytes(hex: c.exchange.probe)
        // What the reply names, with the destination the probe went to (a NAT66 rewrote the quoted one).
        let flow = ProbeFlow(source: reply.probeSource, destination: c.sentTo, sourcePort: reply.sourcePort,
            destinationPort: reply.destinationPort, protocolNumber: c.kind.protocolNumber, epoch: 1)
        let stamp = ProbeTagCodec.Stamp(sequence: reply.tagWord, ipID: UInt16(truncatingIfNeeded: reply.tagWord))
        var buffer = [UInt8](repeating: 0xEE, count: 1600)
        let n = buffer.withUnsafeMutableBytes {
            // fasttrace's default -l 40 (an IPv4 length; DNS and NTP requests keep their own).
            c.kind.write(ProbeSpec(flow: flow, ttl: probe[7], stamp: stamp, length: 40), into: $0)
        }
        #expect(hex(Array(buffer[0..<n])) == c.exchange.probe)
    }

    @Test("every prefix parses to nil or to the full result (a service answer cut short: unkeyed), never crashes",
        arguments: cases)
    func truncations(_ c: Case) {
        let full = bytes(hex: c.exchange.reply)
        var firstComplete = Int.max
        for length in 0...full.count {
            let reply = Self.parse(c, Array(full.prefix(length)))
            // A DNS or NTP answer cut before its word still says the port answered, naming no probe.
            let unkeyedAnswer = reply.map {
                $0.unkeyed && $0.response == .udpReply && $0.responder == c.expected.responder
                    && $0.destinationPort == c.expected.destinationPort
            } ?? false
            #expect(reply == nil || reply == c.expected || unkeyedAnswer, "prefix of \(length) bytes")
            if reply == c.expected { firstComplete = min(firstComplete, length) }
        }
        for length in firstComplete...full.count {
            #expect(Self.parse(c, Array(full.prefix(length))) == c.expected, "prefix of \(length) bytes")
        }
        #expect(firstComplete <= full.count)
    }

    @Test("link-layer padding after the datagram is ignored", arguments: cases)
    func trailingPadding(_ c: Case) {
        let padded = bytes(hex: c.exchange.reply) + [UInt8](repeating: 0xEE, count: 18)
        #expect(Self.parse(c, padded) == c.expected)
    }

    @Test("the probe itself, as a capture socket also sees it, names no probe", arguments: cases)
    func ownProbe(_ c: Case) {
        // A UDP probe reads as a datagram from its source port, which no service fasttrace speaks to
        // answers from: unkeyed (and from the run's own port, which the dispatcher refuses).
        let reply = Self.parse(c, bytes(hex: c.exchange.probe))
        #expect(reply == nil || reply?.unkeyed == true, "\(String(describing: reply))")
    }

    @Test("another IP version in the first nibble", arguments: cases)
    func wrongVersion(_ c: Case) {
        for version: UInt8 in [0x50, 0x70, 0xF0] {
            var packet = bytes(hex: c.exchange.reply)
            packet[0] = version | packet[0] & 0x0F
            #expect(Self.parse(c, packet) == nil, "version nibble \(version >> 4)")
        }
    }

    static let errors = cases.filter { $0.expected.response.isICMPError }
    /// The protocol the kind's probes carry over IPv6 (ICMP echo's is ICMPv6, 58).
    static func ownProtocol(_ kind: any ProbeKind) -> UInt8 { kind.protocolNumber == 1 ? 58 : kind.protocolNumber }
    static let answers = cases.filter { !$0.expected.response.isICMPError }

    @Test("an ICMPv6 error's type changed to one that answers no probe", arguments: errors)
    func otherICMPv6Types(_ c: Case) {
        // Packet too big, parameter problem, echo request, neighbour solicitation and advertisement.
        for type: UInt8 in [2, 4, 128, 135, 136] {
            var packet = bytes(hex: c.exchange.reply)
            packet[40] = type
            #expect(Self.parse(c, packet) == nil, "ICMPv6 type \(type)")
        }
    }

    @Test("time exceeded with code 1 (fragment reassembly) is not a hop", arguments: errors.filter {
        $0.expected.response == .timeExceeded
    })
    func reassemblyTimeExceeded(_ c: Case) {
        var packet = bytes(hex: c.exchange.reply)
        packet[41] = 1
        #expect(Self.parse(c, packet) == nil)
    }

    @Test("a quote of another protocol than the kind's", arguments: errors)
    func quotedOtherProtocol(_ c: Case) {
        // 40 bytes of outer header, 8 of ICMPv6: the quoted header's next header is byte 6 of the quote.
        for proto: UInt8 in [6, 17, 58, 50, 59] where proto != Self.ownProtocol(c.kind) {
            var packet = bytes(hex: c.exchange.reply)
            packet[48 + 6] = proto
            #expect(Self.parse(c, packet) == nil, "quoted next header \(proto)")
        }
    }

    @Test("an answer of another protocol than the kind's", arguments: answers)
    func answerOtherProtocol(_ c: Case) {
        for proto: UInt8 in [6, 17, 58, 50, 59] where proto != Self.ownProtocol(c.kind) {
            var packet = bytes(hex: c.exchange.reply)
            packet[6] = proto
            #expect(Self.parse(c, packet) == nil, "next header \(proto)")
        }
    }

    @Test("TCP answers without what names the probe: bare RST to a SYN, bare SYN, plain ACK, FIN-ACK")
    func tcpFlags() {
        let synAck = Self.cases.first { $0.exchange.reply == CapturedFixtures6.synAck.reply }!
        let rstToAck = Self.cases.first { $0.exchange.reply == CapturedFixtures6.resetToAck.reply }!
        // TCP flags are byte 13 of the segment, 40 + 13 into the packet.
        for flags: UInt8 in [TCPLayout.rst, TCPLayout.syn, TCPLayout.ack, TCPLayout.ack | TCPLayout.fin] {
            var packet = bytes(hex: CapturedFixtures6.synAck.reply)
            packet[53] = flags
            #expect(Self.parse(synAck, packet) == nil, "flags \(flags) to a SYN")
        }
        // An ACK probe is answered by a RST without SYN: a SYN-ACK or a plain ACK is no answer to it.
        for flags: UInt8 in [TCPLayout.syn | TCPLayout.ack, TCPLayout.ack, TCPLayout.syn | TCPLayout.rst] {
            var packet = bytes(hex: CapturedFixtures6.resetToAck.reply)
            packet[53] = flags
            #expect(Self.parse(rstToAck, packet) == nil, "flags \(flags) to an ACK")
        }
    }

    @Test("service answers that do not echo the word are unkeyed: a DNS query, a bad label, an NTP client packet")
    func unkeyedServiceAnswers() throws {
        let dns = Self.cases.first { $0.exchange.reply == CapturedFixtures6.dnsReply.reply }!
        let ntp = Self.cases.first { $0.exchange.reply == CapturedFixtures6.ntpReply.reply }!
        // DNS: 40 bytes of IPv6, 8 of UDP; QR is the top bit of message byte 2; the label starts at 13.
        var query = bytes(hex: CapturedFixtures6.dnsReply.reply)
        query[48 + 2] &= 0x7F
        var label = bytes(hex: CapturedFixtures6.dnsReply.reply)
        label[48 + 13] = UInt8(ascii: "g")
        // NTP: mode is the low 3 bits of message byte 0; 3 is a client's.
        var client = bytes(hex: CapturedFixtures6.ntpReply.reply)
        client[48] = client[48] & 0xF8 | 3
        for (c, packet) in [(dns, query), (dns, label), (ntp, client)] {
            let reply = try #require(Self.parse(c, packet))
            #expect(reply.unkeyed)
            #expect(reply.response == .udpReply)
        }
    }

    @Test("an echo reply whose sequence is not the word's high half names no probe")
    func echoSequenceMismatch() {
        let c = Self.cases.first { $0.exchange.reply == CapturedFixtures6.echoReply.reply }!
        var packet = bytes(hex: CapturedFixtures6.echoReply.reply)
        packet[40 + 6] ^= 0x01  // the echo header's sequence number
        #expect(Self.parse(c, packet) == nil)
    }

    @Test("random changes of one to three bytes never crash the kind's parser", arguments: cases)
    func mutations(_ c: Case) {
        var rng = SeededGenerator(seed: 0x6006)
        let original = bytes(hex: c.exchange.reply)
        for _ in 0..<2_000 {
            var mutated = original
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = Self.parse(c, mutated)
        }
    }
}
