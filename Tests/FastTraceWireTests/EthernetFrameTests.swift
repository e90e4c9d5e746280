// The transmit ring's framing: the Ethernet header (golden bytes from the IEEE 802.3 / Ethernet II
// layout: destination, source, EtherType), the EtherType read from the IP version nibble, and the
// finishing the raw IPv4 socket does to a header (net/ipv4/raw.c raw_send_hdrinc), which the ring path
// must reproduce so both paths put the same packet on the wire.

import Testing
import FastTraceWire

@Suite("Ethernet framing and raw-socket header finishing")
struct EthernetFrameTests {
    @Test("the header is destination MAC, source MAC, EtherType, in that order, big-endian")
    func goldenHeader() {
        var frame = [UInt8](repeating: 0xAA, count: 16)
        frame.withUnsafeMutableBytes { buffer in
            EthernetFrameWriter.writeHeader(into: buffer, destination: MACAddress(0x36E3_5A4F_C755),
                source: MACAddress(0x0200_0000_0001), etherType: EthernetLayout.etherTypeIPv4)
        }
        #expect(hex(frame) == "36e35a4fc755" + "020000000001" + "0800" + "aaaa", "bytes past the header untouched")
    }

    @Test("MAC addresses read from bytes and print as ip(8) prints them")
    func macText() {
        let mac = MACAddress(bytes: [0x36, 0xE3, 0x5A, 0x4F, 0xC7, 0x05])
        #expect(mac?.value == 0x36E3_5A4F_C705)
        #expect(mac?.description == "36:e3:5a:4f:c7:05")
        #expect(MACAddress(bytes: [1, 2, 3]) == nil)
        #expect(MACAddress(0xFFFF_0200_0000_0001).value == 0x0200_0000_0001, "only 48 bits")
    }

    @Test("the EtherType comes from the packet's version nibble: 4 is IPv4, 6 is IPv6, else none")
    func etherTypeFromVersion() {
        func etherType(_ bytes: [UInt8]) -> UInt16? {
            bytes.withUnsafeBytes { EthernetFrameWriter.etherType(ofIPPacket: $0) }
        }
        #expect(etherType([0x45, 0]) == 0x0800)
        #expect(etherType([0x60, 0]) == 0x86DD)
        #expect(etherType([0x55]) == nil)
        #expect(etherType([]) == nil)
    }

    @Test("finishing sets the total length and the header checksum the kernel would, and nothing else")
    func finishMatchesTheKernel() {
        // The golden SYN of ProbeWriterTests with its total length and checksum spoiled.
        var packet = bytes(hex: "45000099123440000506" + "beef" + "c0000201c6336407"
            + "9c4001bb12345678000000005002" + "16d0" + "a62e" + "0000")
        let refusal = packet.withUnsafeMutableBytes { RawIPv4Send.finish($0, length: 40) }
        #expect(refusal == nil)
        #expect(hex(packet) == "45000028123440000506" + "7760" + "c0000201c6336407"
            + "9c4001bb12345678000000005002" + "16d0" + "a62e" + "0000")
    }

    @Test("a packet the socket would rewrite otherwise (ID 0, source 0) or refuse is refused")
    func finishRefuses() {
        let good = "45000028123440000506" + "7760" + "c0000201c6336407" + String(repeating: "00", count: 20)
        func finish(_ text: String, length: Int = 40) -> RawIPv4Send.Refusal? {
            var packet = bytes(hex: text)
            return packet.withUnsafeMutableBytes { RawIPv4Send.finish($0, length: length) }
        }
        #expect(finish(good) == nil)
        #expect(finish("45000028" + "0000" + String(good.dropFirst(12))) == .zeroIdentification)
        #expect(finish(String(good.prefix(24)) + "00000000" + String(good.dropFirst(32))) == .zeroSource)
        #expect(finish("44" + String(good.dropFirst(2))) == .malformed, "header length 16")
        #expect(finish("65" + String(good.dropFirst(2))) == .malformed, "version 6")
        #expect(finish(good, length: 19) == .malformed)
        #expect(finish(good, length: 41) == .malformed, "longer than the buffer")
    }

    @Test("an IPv6 packet goes out as it stands: whole (version 6, payload length = the bytes after the header) or refused")
    func ipv6CheckChangesNothing() {
        // A 60-byte TCP SYN from 2001:db8:0:1::2 to 2001:db8:100::1 (payload length 20, next header 6, hop limit 3).
        let good = "6000000000140603" + "20010db8000000010000000000000002" + "20010db8010000000000000000000001"
            + "9c4001bb12345678000000005002" + "16d0" + "a62e" + "0000"
        func check(_ text: String, length: Int = 60) -> (RawIPv6Send.Refusal?, String) {
            let packet = bytes(hex: text)
            let refusal = packet.withUnsafeBytes { RawIPv6Send.check($0, length: length) }
            return (refusal, hex(packet))
        }
        let (refusal, after) = check(good)
        #expect(refusal == nil)
        #expect(after == good, "nothing rewritten: the raw IPv6 socket sends the bytes as they are")
        #expect(check("600000000015" + String(good.dropFirst(12))).0 == .payloadLengthMismatch, "says 21")
        #expect(check(good + "00", length: 61).0 == .payloadLengthMismatch, "one byte more than it says")
        #expect(check("4" + String(good.dropFirst(1))).0 == .malformed, "version 4")
        #expect(check(good, length: 39).0 == .malformed, "shorter than the header")
        #expect(check(good, length: 61).0 == .malformed, "longer than the buffer")
    }
}
