// The probe itself: one TCP segment (SYN, ACK or ECN-setup SYN) over IPv4, described by value (`TCPProbe`) and serialized by
// `TCPProbeWriter` into a caller-owned buffer, with no allocation, on the send hot path.

/// Parameters of one TCP SYN probe over IPv4.
public struct TCPProbe: Sendable, Equatable {
    /// Our source address.
    public var source: IPv4Address
    /// The target.
    public var destination: IPv4Address
    /// TCP source port (comes back as the destination port of a SYN-ACK/RST, and in ICMP quotes).
    public var sourcePort: UInt16
    /// TCP destination port (the service being traced towards, e.g. 443).
    public var destinationPort: UInt16
    /// TCP sequence number: the `ProbeTagCodec`-encoded tag.
    public var sequence: UInt32
    /// IP time to live.
    public var ttl: UInt8
    /// IP type of service byte.
    public var tos: UInt8
    /// IP identification.
    public var ipID: UInt16
    /// Whether to set the IP "don't fragment" flag.
    public var dontFragment: Bool
    /// Total IP length in bytes: 40 is a bare SYN (IPv4 20 + TCP 20, no options); more adds that
    /// many zero payload bytes after the TCP header (as tcptraceroute's `-l` does with filler).
    /// Must lie in `TCPProbeWriter.minimumLength...TCPProbeWriter.maximumLength`.
    public var length: Int
    /// TCP flags (SYN by default; `TCPProbeFlags.bits`).
    public var flags: UInt8
    /// Acknowledgement number (0 unless the ACK flag is set).
    public var acknowledgement: UInt32

    /// Makes a probe description.
    @inlinable
    public init(
        source: IPv4Address, destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16,
        sequence: UInt32, ttl: UInt8, tos: UInt8 = 0, ipID: UInt16 = 0, dontFragment: Bool = false,
        length: Int = 40, flags: UInt8 = TCPLayout.syn, acknowledgement: UInt32 = 0
    ) {
        self.flags = flags
        self.acknowledgement = acknowledgement
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        self.ttl = ttl
        self.tos = tos
        self.ipID = ipID
        self.dontFragment = dontFragment
        self.length = length
    }
}

/// Serializes a `TCPProbe` into bytes ready for a raw IPv4 send (from the IPv4 header on).
///
/// The packet: IPv4 version 4, IHL 5, the probe's TOS, total length, ID and DF flag, fragment offset
/// 0, protocol 6, header checksum; TCP with no options (data offset 5), the probe's ports and
/// sequence number, the probe's acknowledgement number (0 but for an ACK probe) and flags (SYN by default), window 5840 (the value tcptraceroute sends:
/// an ordinary-looking SYN, neither 0, which some middleboxes drop, nor a suspicious maximum),
/// urgent pointer 0, and the checksum over the IPv4 pseudo-header, header and zero payload.
public enum TCPProbeWriter {
    /// Smallest probe: IPv4 header plus TCP header.
    public static let minimumLength = 40
    /// Largest probe: a standard Ethernet MTU.
    public static let maximumLength = 1500
    /// The TCP receive window the probe advertises.
    @inlinable public static var window: UInt16 { 5840 }

    /// Writes the complete IPv4+TCP packet for `probe` into the start of `buffer` and returns the
    /// number of bytes written (`probe.length`).
    ///
    /// Preconditions: `probe.length` lies in `minimumLength...maximumLength` and
    /// `buffer.count >= probe.length`. Does not allocate.
    @inlinable @inline(__always)
    public static func write(_ probe: TCPProbe, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = probe.length
        precondition(length >= 40 && length <= 1500, "TCP probe length out of range")
        precondition(buffer.count >= length, "buffer too small for the probe")
        // SAFETY: both slices lie within buffer[0..<length], checked just above.
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let ipHeaderLength = IPv4Layout.minimumHeaderLength

        let ip = IPv4HeaderWriter(UnsafeMutableRawBufferPointer(rebasing: packet[0..<ipHeaderLength]))
        ip.setHeaderLength(ipHeaderLength)
        ip.setTOS(probe.tos)
        ip.setTotalLength(UInt16(length))
        ip.setIdentification(probe.ipID)
        ip.setFragmentation(dontFragment: probe.dontFragment)
        ip.setTTL(probe.ttl)
        ip.setProtocol(IPv4Layout.protocolTCP)
        ip.setSource(probe.source)
        ip.setDestination(probe.destination)
        // Both checksums from the values just written rather than by reading the bytes back: the narrow
        // stores above would stall the wide loads of a read-back (store forwarding fails), and the
        // one's-complement sum is the same (RFC 1071: any word grouping gives the same folded sum; the
        // zero payload adds nothing). Golden tests pin the bytes.
        let source = probe.source.value, destination = probe.destination.value
        let addressSum = UInt64(source >> 16) &+ UInt64(source & 0xFFFF) &+ UInt64(destination >> 16)
            &+ UInt64(destination & 0xFFFF)
        let fragmentation: UInt64 = probe.dontFragment ? UInt64(IPv4Layout.dontFragmentBit) : 0
        let ipSum = UInt64(0x45) << 8 &+ UInt64(probe.tos) &+ UInt64(UInt16(length)) &+ UInt64(probe.ipID)
            &+ fragmentation &+ UInt64(probe.ttl) << 8 &+ UInt64(IPv4Layout.protocolTCP) &+ addressSum
        ip.setChecksum(InternetChecksum.finish(ipSum))

        let segment = UnsafeMutableRawBufferPointer(rebasing: packet[ipHeaderLength...])
        let tcp = TCPHeaderWriter(segment)
        tcp.setSourcePort(probe.sourcePort)
        tcp.setDestinationPort(probe.destinationPort)
        tcp.setSequence(probe.sequence)
        tcp.setAcknowledgement(probe.acknowledgement)
        tcp.setHeaderLength(TCPLayout.minimumHeaderLength)
        tcp.setFlags(probe.flags)
        tcp.setWindow(window)
        tcp.setUrgentPointer(0)
        let payloadStart = ipHeaderLength + TCPLayout.minimumHeaderLength
        if length > payloadStart {
            // SAFETY: payloadStart..<length lies inside packet.
            UnsafeMutableRawBufferPointer(rebasing: packet[payloadStart..<length]).initializeMemory(as: UInt8.self, repeating: 0)
        }
        let segmentLength = length - ipHeaderLength
        let tcpSum = addressSum &+ UInt64(IPv4Layout.protocolTCP) &+ UInt64(UInt16(segmentLength))
            &+ UInt64(probe.sourcePort) &+ UInt64(probe.destinationPort)
            &+ UInt64(probe.sequence >> 16) &+ UInt64(probe.sequence & 0xFFFF)
            &+ UInt64(probe.acknowledgement >> 16) &+ UInt64(probe.acknowledgement & 0xFFFF)
            &+ (UInt64(TCPLayout.minimumHeaderLength / 4) << 12 | UInt64(probe.flags)) &+ UInt64(window)
        tcp.setChecksum(InternetChecksum.finish(tcpSum))
        return length
    }
}
