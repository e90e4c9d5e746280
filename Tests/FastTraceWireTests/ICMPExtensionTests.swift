// RFC 4884 extensions and RFC 4950 MPLS label stacks in ICMP errors: golden bytes written from the RFCs'
// layouts (the extension checksum computed by hand, 0xbe13), read back by every probe kind's parser; the
// legacy placement at 128 bytes without the length field; and what must give no stack: a checksum that
// does not verify, an object that runs past the message, a cut-off structure, a wrong version.

import Testing

@testable import FastTraceWire

@Suite struct ICMPExtensionTests {
    /// The extension structure: version 2, checksum 0xbe13; one MPLS object (length 12, class 1,
    /// C-Type 1) of two entries: label 24001 TC 0 S 0 TTL 1, and label 16 TC 5 S 1 TTL 1.
    static let extensionHex = "2000be13" + "000c0101" + "05dc1001" + "00010b01"

    /// A time exceeded from 198.18.0.5 quoting `probe` zero-padded to 128 bytes, the length field set
    /// (32 words) or not (0: the pre-RFC 4884 placement), followed by `extensionHex`.
    static func extended(quoting probe: [UInt8], lengthField: UInt8 = 32, extensionHex: String = extensionHex) -> [UInt8] {
        var original = Array(probe.prefix(128))
        original += [UInt8](repeating: 0, count: 128 - original.count)
        let message = [11, 0, 0, 0, 0, lengthField, 0, 0] + original + bytes(hex: extensionHex)
        var packet = [UInt8](repeating: 0, count: 20) + message
        packet.withUnsafeMutableBytes { raw in
            let ip = IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[0..<20]))
            ip.setHeaderLength(20)
            ip.setTotalLength(UInt16(raw.count))
            ip.setTTL(63)
            ip.setProtocol(1)
            ip.setSource(IPv4Address(198, 18, 0, 5))
            ip.setDestination(IPv4Address(192, 0, 2, 1))
            ip.updateChecksum()
            ICMPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[20...])).updateChecksum()
        }
        return packet
    }

    static let flow = ProbeFlow(source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(198, 51, 100, 7),
        sourcePort: 40000, destinationPort: 443, epoch: 1)

    static func probe(_ kind: some ProbeKind, port: UInt16) -> [UInt8] {
        var flow = Self.flow
        flow.destinationPort = port
        flow.protocolNumber = kind.protocolNumber
        var buffer = [UInt8](repeating: 0, count: 200)
        let n = buffer.withUnsafeMutableBytes {
            kind.write(ProbeSpec(flow: flow, ttl: 2, stamp: .init(sequence: 0x1234_5678, ipID: 0x5678), length: 40),
                into: $0)
        }
        return Array(buffer[0..<n])
    }

    @Test("every kind's parser reads the stack", arguments: [0, 1, 2])
    func everyKind(which: Int) throws {
        let kind: any ProbeKind = [TCPProbeKind(flags: .syn), UDPProbeKind(), ICMPProbeKind()][which]
        let packet = Self.extended(quoting: Self.probe(kind, port: which == 2 ? 0 : 33434))
        let reply = try #require(packet.withUnsafeBytes { kind.parse($0) })
        #expect(reply.response == .timeExceeded && reply.mpls.depth == 2)
        #expect(reply.mpls.entries == [MPLSLabelEntry(label: 24001, tc: 0, bottom: false, ttl: 1),
            MPLSLabelEntry(label: 16, tc: 5, bottom: true, ttl: 1)])
        #expect(reply.mpls.entries.map(\.description) == ["L=24001,E=0,S=0,T=1", "L=16,E=5,S=1,T=1"])
        // The quote is read as usual: the tag word is the probe's.
        #expect(reply.tagWord == 0x1234_5678)
    }

    @Test func theLegacyPlacementAt128BytesIsReadWhenItsChecksumVerifies() throws {
        let kind = TCPProbeKind(flags: .syn)
        let legacy = Self.extended(quoting: Self.probe(kind, port: 443), lengthField: 0)
        #expect(legacy.withUnsafeBytes { kind.parse($0) }?.mpls.depth == 2)
        // Without the length field, a structure whose checksum does not verify is taken for quoted data.
        let bad = Self.extended(quoting: Self.probe(kind, port: 443), lengthField: 0,
            extensionHex: "2000be14" + "000c0101" + "05dc1001" + "00010b01")
        #expect(bad.withUnsafeBytes { kind.parse($0) }?.mpls == MPLSStack.none)
    }

    @Test("no stack from a broken structure", arguments: [
        "2000be14000c010105dc100100010b01",  // checksum off by one
        // (A checksum of 0 is "not computed" where the length field is set: these fail for their own reason.)
        "30000000000c010105dc100100010b01",  // version 3
        "20000000001001010" + "5dc100100010b01",  // an object longer than the message
        "20000000000c0101",  // cut off after the object header
        "20000000000c0201" + "05dc100100010b01",  // another class (2: interface information), no stack
    ])
    func broken(hex: String) throws {
        let kind = TCPProbeKind(flags: .syn)
        let packet = Self.extended(quoting: Self.probe(kind, port: 443), extensionHex: hex)
        let reply = try #require(packet.withUnsafeBytes { kind.parse($0) })
        #expect(reply.mpls == MPLSStack.none, "\(hex)")
        #expect(reply.response == .timeExceeded)
    }

    @Test func aLengthFieldBelow128BytesOrAnErrorWithoutExtensionsGivesNone() throws {
        let kind = TCPProbeKind(flags: .syn)
        let short = Self.extended(quoting: Self.probe(kind, port: 443), lengthField: 10)
        #expect(short.withUnsafeBytes { kind.parse($0) }?.mpls == MPLSStack.none)
        let plain = icmpError(type: 11, code: 0, from: IPv4Address(198, 18, 0, 1), quoting: Self.probe(kind, port: 443))
        #expect(plain.withUnsafeBytes { kind.parse($0) }?.mpls == MPLSStack.none)
    }

    @Test func aDeepStackKeepsItsTopTwoAndItsDepth() throws {
        // Four entries: object length 4 + 16 = 20; checksum recomputed here by the independent sum.
        var ext = bytes(hex: "20000000" + "00140101" + "05dc1000" + "00010a00" + "00020400" + "00030101")
        var sum: UInt32 = 0
        for i in stride(from: 0, to: ext.count, by: 2) { sum += UInt32(ext[i]) << 8 | UInt32(ext[i + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        ext[2] = UInt8(checksum >> 8); ext[3] = UInt8(checksum & 0xFF)
        let kind = UDPProbeKind()
        let packet = Self.extended(quoting: Self.probe(kind, port: 53), extensionHex: hex(ext))
        let stack = try #require(packet.withUnsafeBytes { kind.parse($0) }).mpls
        #expect(stack.depth == 4 && stack.entries.count == 2 && stack.entries[0].label == 24001 && stack.entries[1].label == 16)
    }
}
