// Helpers shared by the FastTraceWire tests: hex conversion, a seeded generator, and packet
// builders that play the part of a router or target answering a probe.

import FastTraceWire

/// Bytes from a hex string (whitespace ignored); traps on malformed input, which is a test bug.
func bytes(hex: String) -> [UInt8] {
    let digits = hex.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd hex length")
    var out: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        out.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return out
}

/// Lowercase hex of `bytes`.
func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Parses `packet` from an allocation of exactly its size, so that a read past the end would hit
/// the bounds checks of the (debug-built) raw buffer accessors.
func parse(_ packet: [UInt8]) -> ParsedReply? {
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: packet.count, alignment: 1)
    defer { storage.deallocate() }
    storage.copyBytes(from: packet)
    return ReplyParser.parse(UnsafeRawBufferPointer(storage))
}

/// Writes `probe` and returns its bytes.
func write(_ probe: TCPProbe) -> [UInt8] {
    var buffer = [UInt8](repeating: 0xAA, count: TCPProbeWriter.maximumLength)
    let n = buffer.withUnsafeMutableBytes { TCPProbeWriter.write(probe, into: $0) }
    return Array(buffer[..<n])
}

/// SplitMix64: a small deterministic generator, so the randomized tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension ProbeTag {
    /// A uniformly random tag.
    static func random(using rng: inout SeededGenerator) -> ProbeTag {
        ProbeTag(
            slot: UInt16.random(in: 0..<UInt16(ProbeTag.slotCount), using: &rng),
            ttl: UInt8.random(in: 0...255, using: &rng),
            attempt: UInt8.random(in: 0..<UInt8(ProbeTag.attemptCount), using: &rng))
    }
}

/// Builds what a router sends back for an expired or undeliverable probe: an IPv4 header (no
/// options) from `responder` to the probe's source, an ICMP header, and the first `quoteLength`
/// bytes of `probe` (28 = IPv4 header + 8 bytes of TCP, the RFC 792 minimum). Checksums are filled
/// in, as a real router would.
func icmpError(
    type: UInt8, code: UInt8, from responder: IPv4Address, quoting probe: [UInt8], quoteLength: Int = 28,
    ttl: UInt8 = 64
) -> [UInt8] {
    let quote = Array(probe.prefix(quoteLength))
    let ipHeader = IPv4View.sourceAndDestination(probe)
    var packet = [UInt8](repeating: 0, count: 20 + 8 + quote.count)
    packet.withUnsafeMutableBytes { raw in
        let ip = IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[0..<20]))
        ip.setHeaderLength(20)
        ip.setTotalLength(UInt16(raw.count))
        ip.setIdentification(0x0BAD)
        ip.setFragmentation(dontFragment: false)
        ip.setTTL(ttl)
        ip.setProtocol(IPv4Layout.protocolICMP)
        ip.setSource(responder)
        ip.setDestination(ipHeader.source)
        ip.updateChecksum()
        let message = UnsafeMutableRawBufferPointer(rebasing: raw[20...])
        UnsafeMutableRawBufferPointer(rebasing: message[8...]).copyBytes(from: quote)
        let icmp = ICMPHeaderWriter(message)
        icmp.setType(type)
        icmp.setCode(code)
        icmp.setRestOfHeader(0)
        icmp.updateChecksum()
    }
    return packet
}

/// Builds the target's TCP answer to `probe`: flags (SYN+ACK, RST+ACK, ...) acknowledging its
/// sequence number plus one, addresses and ports swapped.
func tcpAnswer(to probe: [UInt8], flags: UInt8, ttl: UInt8 = 63) -> [UInt8] {
    let (source, destination) = IPv4View.sourceAndDestination(probe)
    let (sport, dport, seq) = probe.withUnsafeBytes { raw -> (UInt16, UInt16, UInt32) in
        let tcp = TCPHeaderView(UnsafeRawBufferPointer(rebasing: raw[20...]))!
        return (tcp.sourcePort, tcp.destinationPort, tcp.sequence)
    }
    var packet = [UInt8](repeating: 0, count: 40)
    packet.withUnsafeMutableBytes { raw in
        let ip = IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[0..<20]))
        ip.setHeaderLength(20)
        ip.setTotalLength(40)
        ip.setFragmentation(dontFragment: true)
        ip.setTTL(ttl)
        ip.setProtocol(IPv4Layout.protocolTCP)
        ip.setSource(destination)
        ip.setDestination(source)
        ip.updateChecksum()
        let tcp = TCPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: raw[20...]))
        tcp.setSourcePort(dport)
        tcp.setDestinationPort(sport)
        tcp.setSequence(0x5555_0000)
        tcp.setAcknowledgement(seq &+ 1)
        tcp.setHeaderLength(20)
        tcp.setFlags(flags)
        tcp.setWindow(64240)
        tcp.updateChecksum(source: destination, destination: source)
    }
    return packet
}

enum IPv4View {
    /// Source and destination of the IPv4 packet in `bytes`.
    static func sourceAndDestination(_ bytes: [UInt8]) -> (source: IPv4Address, destination: IPv4Address) {
        bytes.withUnsafeBytes { raw in
            let ip = IPv4HeaderView(raw)!
            return (ip.source, ip.destination)
        }
    }
}

/// A parsed reply's addresses (either family) against an IPv4 address the test wrote.
func == (lhs: IPAddress, rhs: IPv4Address) -> Bool { lhs == IPAddress(rhs) }
func == (lhs: IPAddress?, rhs: IPv4Address) -> Bool { lhs == IPAddress(rhs) }
