// Golden tests for the probe writer and the checksum: expected bytes derived from the RFC 791 /
// RFC 793 layouts by hand, checksums cross-checked once with an independent Python computation.

import Testing
import FastTraceWire

@Suite("TCP probe writer")
struct ProbeWriterTests {
    static let source = IPv4Address(192, 0, 2, 1)
    static let destination = IPv4Address(198, 51, 100, 7)

    @Test("bare 40-byte SYN matches the RFC layout byte for byte")
    func goldenBareSYN() {
        let probe = TCPProbe(
            source: Self.source, destination: Self.destination, sourcePort: 40000, destinationPort: 443,
            sequence: 0x1234_5678, ttl: 5, ipID: 0x1234, dontFragment: true)
        // IPv4: 45 ver/IHL | 00 TOS | 0028 total length 40 | 1234 ID | 4000 DF, offset 0 | 05 TTL |
        //       06 TCP | 7760 header checksum | c0000201 192.0.2.1 | c6336407 198.51.100.7
        // TCP:  9c40 sport 40000 | 01bb dport 443 | 12345678 seq | 00000000 ack | 50 data offset 5 |
        //       02 SYN | 16d0 window 5840 | a62e checksum | 0000 urgent pointer
        // Checksums: by hand for the IPv4 header (sum 0x2889D -> 0x889F -> ~ 0x7760), and both
        // checked with python3's struct-based RFC 1071 sum including the pseudo-header.
        let expected = "45000028123440000506" + "7760" + "c0000201c6336407"
            + "9c4001bb12345678000000005002" + "16d0" + "a62e" + "0000"
        #expect(hex(write(probe)) == expected)
    }

    @Test("60-byte probe: 20 zero payload bytes, lengths and checksums cover them")
    func goldenSixtyBytes() {
        let probe = TCPProbe(
            source: Self.source, destination: Self.destination, sourcePort: 40000, destinationPort: 443,
            sequence: 0x1234_5678, ttl: 64, tos: 0x28, ipID: 0xBEEF, dontFragment: false, length: 60)
        let expected = "4528003cbeef00004006" + "cf68" + "c0000201c6336407"
            + "9c4001bb12345678000000005002" + "16d0" + "a61a" + "0000"
            + String(repeating: "00", count: 20)
        let packet = write(probe)
        #expect(packet.count == 60)
        #expect(hex(packet) == expected)
    }

    @Test("written probes verify: header checksum and TCP checksum sum to zero", arguments: [40, 41, 52, 576, 1500])
    func checksumsVerify(length: Int) {
        let probe = TCPProbe(
            source: IPv4Address(203, 0, 113, 9), destination: IPv4Address(198, 18, 0, 1), sourcePort: 1,
            destinationPort: 65535, sequence: 0xFFFF_FFFF, ttl: 255, tos: 0xFF, ipID: 0xFFFF,
            dontFragment: true, length: length)
        let packet = write(probe)
        #expect(packet.count == length)
        packet.withUnsafeBytes { raw in
            let ip = IPv4HeaderView(raw)!
            #expect(InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<20])) == 0)
            #expect(ip.totalLength == UInt16(length))
            #expect(ip.ttl == 255 && ip.tos == 0xFF && ip.identification == 0xFFFF && ip.dontFragment)
            let segment = ip.payload
            let pseudo = InternetChecksum.pseudoHeaderSum(
                source: ip.source, destination: ip.destination, protocol: 6, length: segment.count)
            #expect(InternetChecksum.finish(InternetChecksum.partialSum(segment, initial: pseudo)) == 0)
            let tcp = TCPHeaderView(segment)!
            #expect(tcp.flags == TCPLayout.syn && tcp.acknowledgement == 0 && tcp.headerLength == 20)
            #expect(tcp.sequence == 0xFFFF_FFFF && tcp.window == TCPProbeWriter.window)
            #expect(segment[20...].allSatisfy { $0 == 0 })
        }
    }

    /// The writer sums both checksums from the values it writes (not by reading the bytes back): over
    /// random probes, each checksum equals the one computed from the bytes with the field zeroed.
    @Test("checksums summed from the values equal the ones read back from the bytes, over random probes")
    func checksumsFromValuesMatchReadBack() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for _ in 0..<2_000 {
            let r = next(), r2 = next(), r3 = next()
            let probe = TCPProbe(
                source: IPv4Address(UInt32(truncatingIfNeeded: r)),
                destination: IPv4Address(UInt32(truncatingIfNeeded: r >> 32)),
                sourcePort: UInt16(truncatingIfNeeded: r2), destinationPort: UInt16(truncatingIfNeeded: r2 >> 16),
                sequence: UInt32(truncatingIfNeeded: r2 >> 32), ttl: UInt8(truncatingIfNeeded: r3),
                tos: UInt8(truncatingIfNeeded: r3 >> 8), ipID: UInt16(truncatingIfNeeded: r3 >> 16),
                dontFragment: r3 >> 32 & 1 == 1, length: 40 + Int(r3 >> 33 & 0x3FF),
                flags: UInt8(truncatingIfNeeded: r3 >> 48), acknowledgement: UInt32(truncatingIfNeeded: next()))
            var packet = write(probe)
            packet.withUnsafeMutableBytes { raw in
                let ipSum = UInt16(raw[10]) << 8 | UInt16(raw[11])
                raw[10] = 0
                raw[11] = 0
                #expect(ipSum == InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<20])))
                let tcpSum = UInt16(raw[36]) << 8 | UInt16(raw[37])
                raw[36] = 0
                raw[37] = 0
                #expect(tcpSum == InternetChecksum.tcpChecksum(source: probe.source, destination: probe.destination,
                    segment: UnsafeRawBufferPointer(rebasing: raw[20...])))
            }
        }
    }

    @Test("writes only probe.length bytes into a larger buffer")
    func leavesRestOfBufferAlone() {
        var buffer = [UInt8](repeating: 0xAA, count: 100)
        let probe = TCPProbe(
            source: Self.source, destination: Self.destination, sourcePort: 1, destinationPort: 2, sequence: 3,
            ttl: 4, length: 48)
        let n = buffer.withUnsafeMutableBytes { TCPProbeWriter.write(probe, into: $0) }
        #expect(n == 48)
        #expect(buffer[48...].allSatisfy { $0 == 0xAA })
        #expect(buffer[40..<48].allSatisfy { $0 == 0 })
    }

    @Test("RFC 1071 section 3 example, odd lengths, and piecewise sums")
    func checksumBasics() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum ~ = 220d).
        let rfc: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        rfc.withUnsafeBytes { #expect(InternetChecksum.checksum($0) == 0x220D) }
        // An odd trailing byte is padded with zero: [0x01] is the word 0x0100.
        [UInt8(0x01)].withUnsafeBytes { #expect(InternetChecksum.checksum($0) == 0xFEFF) }
        [UInt8]().withUnsafeBytes { #expect(InternetChecksum.checksum($0) == 0xFFFF) }
        // Sums of pieces starting at even offsets add up to the sum of the whole.
        var rng = SeededGenerator(seed: 7)
        for length in 0..<64 {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            data.withUnsafeBytes { raw in
                let whole = InternetChecksum.checksum(raw)
                let cut = (length / 2) & ~1
                let first = InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: raw[..<cut]))
                let both = InternetChecksum.partialSum(UnsafeRawBufferPointer(rebasing: raw[cut...]), initial: first)
                #expect(InternetChecksum.finish(both) == whole)
                #expect(whole == referenceChecksum(data))
            }
        }
    }

    /// Straightforward 16-bit-word RFC 1071 sum, independent of the 32-bit-load implementation.
    func referenceChecksum(_ data: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i < data.count {
            let hi = UInt32(data[i]) << 8
            let lo = i + 1 < data.count ? UInt32(data[i + 1]) : 0
            sum += hi | lo
            i += 2
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
