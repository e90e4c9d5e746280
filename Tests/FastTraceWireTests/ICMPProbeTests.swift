// ICMP echo probes through the probe-kind seam: the probe as RFC 792 lays it out, with the checksum the
// same for every probe of a run (Paris: balancers read ICMP's first four bytes where ports would be)
// and still right (checked with a sum written here independently of InternetChecksum); the word in the
// sequence number, the IPv4 ID and the data; every reply read back: a router's error quoting the echo
// request, the destination's echo reply, and replies that are not answers to an echo request.

import Testing

@testable import FastTraceWire

@Suite struct ICMPProbeTests {
    static let source = IPv4Address(192, 0, 2, 1)
    static let destination = IPv4Address(198, 51, 100, 7)
    static let codec = ProbeTagCodec(key0: 31, key1: 32)
    static let flow = ProbeFlow(source: source, destination: destination, sourcePort: 41000, destinationPort: 0,
        protocolNumber: 1, epoch: 2)

    func written(_ tag: ProbeTag, length: Int = 40) -> (bytes: [UInt8], stamp: ProbeTagCodec.Stamp) {
        let stamp = Self.codec.encode(tag, digest: Self.codec.digest(Self.flow), layout: .splitWithID)
        var buffer = [UInt8](repeating: 0xEE, count: 1600)
        let n = buffer.withUnsafeMutableBytes {
            ICMPProbeKind().write(ProbeSpec(flow: Self.flow, ttl: tag.ttl, stamp: stamp, length: length), into: $0)
        }
        return (Array(buffer[0..<n]), stamp)
    }

    static func be16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }

    /// RFC 1071, written out: the message's 16-bit words, checksum included, sum to 0xFFFF.
    static func sumsRight(_ message: [UInt8]) -> Bool {
        var sum: UInt32 = 0
        for i in stride(from: 0, to: message.count, by: 2) {
            sum += UInt32(message[i]) << 8 | (i + 1 < message.count ? UInt32(message[i + 1]) : 0)
            sum = (sum & 0xFFFF) + (sum >> 16)
        }
        return sum == 0xFFFF
    }

    @Test("every probe has the same type, code and checksum, a right checksum, and the word", arguments: [34, 40, 41, 100])
    func layout(length: Int) throws {
        var checksums: Set<UInt16> = []
        for slot in stride(from: UInt16(0), to: 3000, by: 11) {
            let (p, stamp) = written(ProbeTag(slot: slot, ttl: UInt8(slot % 30 + 1), attempt: 1), length: length)
            #expect(p.count == length && p[9] == 1 && Int(Self.be16(p, 2)) == length)
            #expect(p[20] == 8 && p[21] == 0 && Self.be16(p, 24) == 41000)
            checksums.insert(Self.be16(p, 22))
            #expect(Self.sumsRight(Array(p[20...])))
            #expect(Self.be16(p, 4) == stamp.ipID && stamp.ipID != 0)
            #expect(UInt32(Self.be16(p, 26)) << 16 | UInt32(stamp.ipID) == stamp.sequence)
            #expect(UInt32(Self.be16(p, 28)) << 16 | UInt32(Self.be16(p, 30)) == stamp.sequence)
            #expect(p[34...].allSatisfy { $0 == 0 })
        }
        #expect(checksums == [ICMPProbeKind.checksum(identifier: 41000)])
    }

    @Test func errorsAndTheEchoReplyCarryTheWord() throws {
        let kind = ICMPProbeKind()
        let tag = ProbeTag(slot: 99, ttl: 4, attempt: 2)
        let (probe, stamp) = written(tag)
        let router = IPv4Address(198, 18, 0, 9)
        let exceeded = try #require(icmpError(type: 11, code: 0, from: router, quoting: probe).withUnsafeBytes {
            kind.parse($0)
        })
        #expect(exceeded.response == .timeExceeded && exceeded.tagWord == stamp.sequence)
        #expect(exceeded.sourcePort == 41000 && exceeded.destinationPort == 0 && exceeded.quotedTTL == 4)
        let unreachable = try #require(icmpError(type: 3, code: 13, from: router, quoting: probe).withUnsafeBytes {
            kind.parse($0)
        })
        #expect(unreachable.response == .unreachable(code: 13) && kind.portState(for: unreachable.response) == nil)
        // The host's echo reply: type 0, the rest as sent (checksum recomputed).
        var reply = probe
        reply.replaceSubrange(12..<16, with: probe[16..<20])
        reply.replaceSubrange(16..<20, with: probe[12..<16])
        reply[20] = 0
        reply[4] = 0x12; reply[5] = 0x34  // the host's own IPv4 ID
        let answer = try #require(reply.withUnsafeBytes { kind.parse($0) })
        #expect(answer.response == .echoReply && answer.tagWord == stamp.sequence && answer.responder == Self.destination)
        #expect(answer.probeSource == Self.source && answer.sourcePort == 41000)
        #expect(kind.portState(for: answer.response) == .reachable && answer.response.isFromDestination)
        let (read, mac) = Self.codec.identify(answer.tagWord, layout: .splitWithID)
        #expect(read == tag && Self.codec.verify(read, macBits: mac, quotedIPID: nil, digest: Self.codec.digest(Self.flow)))
        // A reply whose data does not repeat its sequence number is no answer to our probe; nor is an
        // echo request, a quote of a non-echo message, or a reply cut before the word.
        var mismatched = reply
        mismatched[27] ^= 1
        #expect(mismatched.withUnsafeBytes { kind.parse($0) } == nil)
        var request = reply
        request[20] = 8
        #expect(request.withUnsafeBytes { kind.parse($0) } == nil)
        var quotedReply = probe
        quotedReply[20] = 0
        #expect(icmpError(type: 11, code: 0, from: router, quoting: quotedReply).withUnsafeBytes { kind.parse($0) } == nil)
        var cut = Array(reply.prefix(30))
        cut[2] = 0; cut[3] = 30
        #expect(cut.withUnsafeBytes { kind.parse($0) } == nil)
    }
}
