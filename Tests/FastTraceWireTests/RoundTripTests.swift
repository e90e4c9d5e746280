// End to end within the module: write a probe carrying a tag, answer it the way a router or the
// target would, parse the answer, and get the tag back.

import Testing
import FastTraceWire

@Suite("Probe -> reply -> tag round trip")
struct RoundTripTests {
    static let codec = ProbeTagCodec(key0: 42, key1: 4242)
    static let us = IPv4Address(192, 0, 2, 2)
    static let target = IPv4Address(203, 0, 113, 80)
    static let router = IPv4Address(198, 18, 7, 1)

    func flow(_ tag: ProbeTag) -> ProbeFlow {
        ProbeFlow(source: Self.us, destination: Self.target, sourcePort: 33_000 + UInt16(tag.slot % 1000),
            destinationPort: 443, epoch: 3)
    }

    func probe(_ tag: ProbeTag, length: Int = 40) -> (TCPProbe, [UInt8]) {
        let stamp = Self.codec.encode(tag, flow: flow(tag))
        let p = TCPProbe(
            source: Self.us, destination: Self.target, sourcePort: 33_000 + UInt16(tag.slot % 1000),
            destinationPort: 443, sequence: stamp.sequence, ttl: tag.ttl, ipID: stamp.ipID,
            dontFragment: true, length: length)
        return (p, write(p))
    }

    /// The tag `reply` names, if it verifies as a probe of `flow` (with the quoted ID for ICMP).
    func verified(_ reply: ParsedReply, _ flow: ProbeFlow) -> ProbeTag? {
        let (tag, mac) = Self.codec.identify(reply.tagWord)
        return Self.codec.verify(tag, macBits: mac, quotedIPID: reply.quotesProbe ? reply.quotedIPID : nil, flow: flow)
            ? tag : nil
    }

    @Test("ICMP time exceeded quoting the probe (28-byte RFC 792 quote and a whole-packet quote)",
          arguments: [28, 40, 60])
    func timeExceeded(quoteLength: Int) throws {
        let tag = ProbeTag(slot: 16_383, ttl: 7, attempt: 5)
        let (p, bytes) = probe(tag, length: 60)
        let reply = try #require(parse(icmpError(
            type: ICMPLayout.typeTimeExceeded, code: 0, from: Self.router, quoting: bytes, quoteLength: quoteLength,
            ttl: 250)))
        #expect(reply == ParsedReply(
            response: .timeExceeded, responder: Self.router, probeSource: Self.us,
            probeDestination: Self.target, sourcePort: p.sourcePort, destinationPort: 443, tagWord: p.sequence,
            replyTTL: 250, quotedIPID: p.ipID, quotedTTL: tag.ttl))
        #expect(verified(reply, flow(tag)) == tag)
    }

    @Test("ICMP port/host/admin unreachable keep their code", arguments: [UInt8(1), 3, 10, 13])
    func unreachable(code: UInt8) throws {
        let tag = ProbeTag(slot: 5, ttl: 30, attempt: 0)
        let (_, bytes) = probe(tag)
        let reply = try #require(parse(icmpError(
            type: ICMPLayout.typeDestinationUnreachable, code: code, from: Self.target, quoting: bytes)))
        #expect(reply.response == .unreachable(code: code) && reply.responder == Self.target)
        #expect(verified(reply, flow(tag)) == tag)
    }

    @Test("SYN-ACK and RST-ACK acknowledge sequence + 1, including across the 2^32 wrap")
    func tcpAnswers() throws {
        var rng = SeededGenerator(seed: 9)
        var tags = (0..<500).map { _ in ProbeTag.random(using: &rng) }
        // Find a tag whose word is 0xFFFFFFFF-ish is unlikely; instead test the wrap explicitly below.
        tags.append(ProbeTag(slot: 0, ttl: 64, attempt: 0))
        for tag in tags {
            let (p, bytes) = probe(tag)
            for (flags, kind) in [(TCPLayout.syn | TCPLayout.ack, Response.synAck),
                                  (TCPLayout.rst | TCPLayout.ack, Response.reset)] {
                let reply = try #require(parse(tcpAnswer(to: bytes, flags: flags)))
                #expect(reply == ParsedReply(
                    response: kind, responder: Self.target, probeSource: Self.us,
                    probeDestination: Self.target, sourcePort: p.sourcePort, destinationPort: 443,
                    tagWord: p.sequence, replyTTL: 63))
                #expect(verified(reply, flow(tag)) == tag)
            }
        }
        // Sequence 0xFFFFFFFF is acknowledged as 0.
        let wrap = write(TCPProbe(
            source: Self.us, destination: Self.target, sourcePort: 1, destinationPort: 2, sequence: .max, ttl: 1))
        let answer = tcpAnswer(to: wrap, flags: TCPLayout.syn | TCPLayout.ack)
        answer.withUnsafeBytes { #expect(TCPHeaderView(UnsafeRawBufferPointer(rebasing: $0[20...]))!.acknowledgement == 0) }
        #expect(parse(answer)?.tagWord == .max)
    }

    @Test("the probe parses through the views as written")
    func viewsReadWhatWriterWrote() {
        let tag = ProbeTag(slot: 1234, ttl: 12, attempt: 3)
        let (p, bytes) = probe(tag, length: 44)
        bytes.withUnsafeBytes { raw in
            let ip = IPv4HeaderView(raw)!
            #expect(ip.version == 4 && ip.headerLength == 20 && ip.totalLength == 44)
            #expect(ip.identification == p.ipID && ip.dontFragment && !ip.moreFragments && ip.fragmentOffset == 0)
            #expect(ip.ttl == 12 && ip.proto == IPv4Layout.protocolTCP)
            #expect(ip.source == Self.us && ip.destination == Self.target && ip.options.isEmpty)
            let tcp = TCPHeaderView(ip.payload)!
            #expect(tcp.sourcePort == p.sourcePort && tcp.destinationPort == 443 && tcp.sequence == p.sequence)
            let quote = TCPQuoteView(ip.payload)!
            #expect(quote.sequence == p.sequence && quote.sourcePort == p.sourcePort)
        }
    }

    @Test("newtypes order and print as their values")
    func newtypes() {
        #expect(Port(80) < Port(443) && Port(443).description == "443")
        #expect(TTL(1) < TTL(2) && TTL(64).value == 64)
        #expect(Set([Port(1), Port(1), Port(2)]).count == 2)
    }
}
