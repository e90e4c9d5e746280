// The link layer the transmit ring needs: a probe sent through PACKET_TX_RING is a whole Ethernet frame,
// so the send path writes the 14-byte Ethernet header in front of the IP packet the probe kind wrote,
// and does to an IPv4 header what the kernel does to one sent through the raw IPPROTO_RAW socket (to an
// IPv6 packet that socket does nothing, so it is only checked to be whole), so both send paths put the
// same IP packet on the wire. Pure: no kernel, no allocation.

/// A 48-bit IEEE 802 MAC address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    /// The six bytes in wire order, the first in the high bits: 02:00:00:00:00:01 is 0x0200_0000_0001.
    public let value: UInt64

    /// The address whose six bytes, in wire order, are the low 48 bits of `value`.
    @inlinable public init(_ value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    /// The address in the first six bytes of `bytes`; nil when there are fewer than six.
    @inlinable public init?(bytes: some Collection<UInt8>) {
        guard bytes.count >= 6 else { return nil }
        var value: UInt64 = 0
        for byte in bytes.prefix(6) { value = value << 8 | UInt64(byte) }
        self.value = value
    }

    /// `02:00:00:00:00:01`.
    public var description: String {
        (0..<6).map { i in
            let byte = UInt8(truncatingIfNeeded: value >> (40 - 8 * i))
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined(separator: ":")
    }
}

/// Offsets and values of the Ethernet II header.
public enum EthernetLayout {
    /// Destination MAC (6 bytes), at the start.
    @inlinable public static var destination: Int { 0 }
    /// Source MAC (6 bytes).
    @inlinable public static var source: Int { 6 }
    /// EtherType (16 bits).
    @inlinable public static var etherType: Int { 12 }
    /// The header's length; the IP packet starts here.
    @inlinable public static var headerLength: Int { 14 }
    /// EtherType of IPv4.
    @inlinable public static var etherTypeIPv4: UInt16 { 0x0800 }
    /// EtherType of IPv6.
    @inlinable public static var etherTypeIPv6: UInt16 { 0x86DD }
}

/// Writes Ethernet headers in front of IP packets.
public enum EthernetFrameWriter {
    /// The EtherType for the IP packet starting at `packet`, read from its version nibble: IPv4 or
    /// IPv6; nil for an empty buffer or another version. The transport stays kind-agnostic this way:
    /// it frames whatever IP packet the probe kind wrote.
    @inlinable
    public static func etherType(ofIPPacket packet: UnsafeRawBufferPointer) -> UInt16? {
        guard packet.count >= 1 else { return nil }
        switch packet.wireUInt8(at: 0) >> 4 {
        case 4: return EthernetLayout.etherTypeIPv4
        case 6: return EthernetLayout.etherTypeIPv6
        default: return nil
        }
    }

    /// Writes the 14-byte header at the start of `frame` (at least 14 bytes; traps otherwise).
    @inlinable
    public static func writeHeader(
        into frame: UnsafeMutableRawBufferPointer, destination: MACAddress, source: MACAddress, etherType: UInt16
    ) {
        precondition(frame.count >= EthernetLayout.headerLength, "buffer too short for an Ethernet header")
        storeMAC(destination, into: frame, at: EthernetLayout.destination)
        storeMAC(source, into: frame, at: EthernetLayout.source)
        frame.storeWireUInt16(etherType, at: EthernetLayout.etherType)
    }

    @inlinable @inline(__always)
    static func storeMAC(_ mac: MACAddress, into frame: UnsafeMutableRawBufferPointer, at offset: Int) {
        frame.storeWireUInt16(UInt16(truncatingIfNeeded: mac.value >> 32), at: offset)
        frame.storeWireUInt32(UInt32(truncatingIfNeeded: mac.value), at: offset + 2)
    }
}

/// What the kernel's raw IPv4 socket (`IPPROTO_RAW`, which implies `IP_HDRINCL`) does to the header of
/// every packet it sends (net/ipv4/raw.c, `raw_send_hdrinc`): the total length becomes the length
/// handed to `send`, and the header checksum is recomputed; an ID of 0 is replaced with one the kernel
/// picks, and a source of 0 with the route's. A packet sent any other way (the transmit ring) gets the
/// same first two here, so it leaves exactly as it would have through the socket; the last two cannot
/// be reproduced, so such a packet is refused and must go through the socket.
public enum RawIPv4Send {
    /// Why a packet cannot leave byte-for-byte as the raw socket would send it.
    public enum Refusal: Sendable, Equatable {
        /// Shorter than its header, or a header length below 20 bytes: the socket refuses it (EINVAL).
        case malformed
        /// An ID of 0, which the socket replaces with one the kernel picks.
        case zeroIdentification
        /// A source of 0.0.0.0, which the socket replaces with the route's source.
        case zeroSource
    }

    /// Sets the total length to `length` and recomputes the header checksum of the IPv4 packet at the
    /// start of `packet` (`length` bytes of it are the packet), as the raw socket would; nil when it
    /// did, else why the packet cannot go out any way but through the socket.
    @inlinable
    public static func finish(_ packet: UnsafeMutableRawBufferPointer, length: Int) -> Refusal? {
        guard length >= IPv4Layout.minimumHeaderLength, length <= packet.count, length <= 0xFFFF else {
            return .malformed
        }
        let versionAndIHL = packet.load(fromByteOffset: IPv4Layout.versionAndIHL, as: UInt8.self)
        let headerLength = Int(versionAndIHL & 0x0F) * 4
        guard versionAndIHL >> 4 == 4, headerLength >= IPv4Layout.minimumHeaderLength, headerLength <= length else {
            return .malformed
        }
        let header = UnsafeMutableRawBufferPointer(rebasing: packet[0..<headerLength])
        if UnsafeRawBufferPointer(header).wireUInt16(at: IPv4Layout.identification) == 0 { return .zeroIdentification }
        if UnsafeRawBufferPointer(header).wireUInt32(at: IPv4Layout.source) == 0 { return .zeroSource }
        let writer = IPv4HeaderWriter(header)
        writer.setTotalLength(UInt16(length))
        writer.updateChecksum()
        return nil
    }
}

/// What the kernel's raw IPv6 socket (`IPPROTO_RAW`, the header included) does to a packet it sends
/// (net/ipv6/raw.c, `rawv6_send_hdrinc`): nothing. It copies the bytes as they are (no length is set,
/// no checksum exists in the header) after checking the packet fits the route's MTU. A packet sent any
/// other way (the transmit ring) leaves the same only if it is already whole: this checks that it is,
/// and changes nothing.
public enum RawIPv6Send {
    /// Why a packet is not a whole IPv6 packet the ring can send as it stands.
    public enum Refusal: Sendable, Equatable {
        /// Shorter than the 40-byte header, or not version 6.
        case malformed
        /// The header's payload length is not the bytes after the header (the socket would send it as it
        /// is; the ring leaves such a packet to the socket rather than frame what the receiver drops).
        case payloadLengthMismatch
    }

    /// Nil when the first `length` bytes of `packet` are an IPv6 packet whose payload length field says
    /// `length - 40`, else why not.
    @inlinable
    public static func check(_ packet: UnsafeRawBufferPointer, length: Int) -> Refusal? {
        guard length >= IPv6Layout.headerLength, length <= packet.count,
            packet.load(fromByteOffset: IPv6Layout.versionClassLabel, as: UInt8.self) >> 4 == 6
        else { return .malformed }
        guard Int(packet.wireUInt16(at: IPv6Layout.payloadLength)) == length - IPv6Layout.headerLength else {
            return .payloadLengthMismatch
        }
        return nil
    }
}
