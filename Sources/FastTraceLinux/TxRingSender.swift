// The PACKET_TX_RING send path: probes leave as whole Ethernet frames written into a TPACKET_V2 ring
// on an AF_PACKET socket bound to the egress interface, one send() per batch. The frame is the IP
// packet the probe kind wrote behind an Ethernet header: the interface's own MAC as source, the next
// hop's MAC (from the kernel's ARP or NDP neighbour table) as destination, the EtherType of the
// destination's family (0x0800 or 0x86DD), checked against the packet's version nibble. Set up once,
// before privileges are dropped; used by the scheduler thread only.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace
import FastTraceWire
import Synchronization

/// Which send path a run asks for (`--send-path`).
public enum SendPathChoice: String, Sendable, CaseIterable {
    /// The transmit ring where it can be set up, else the raw socket (said in the summary).
    case auto
    /// The transmit ring, or an error when it cannot be set up.
    case ring
    /// The raw socket (`sendmmsg`), as before the ring existed.
    case socket
}

/// The send path a transport runs on, and why.
public struct SendPathReport: Sendable, Equatable {
    /// `ring`: probes leave through the TPACKET_V2 transmit ring (and through the raw socket only where
    /// the ring cannot follow the kernel: counted). `socket`: through the raw socket only.
    public var usesRing: Bool
    /// The interface the ring sends on (nil for the socket path).
    public var interfaceName: String?
    /// Why the ring is not used (socket path only): forced, or what refused it.
    public var reason: String?
    /// For `--verbose`: the ring's geometry, the interface's MAC and the next hops' neighbour entries.
    public var detail: String

    /// `TX ring on veth0` / `raw socket (TX ring not used: lo is not an Ethernet interface)`.
    public var summary: String {
        usesRing ? "TX ring on \(interfaceName ?? "?")" : "raw socket" + (reason.map { " (TX ring not used: \($0))" } ?? "")
    }
}

/// `--send-path ring` asked for the transmit ring and it cannot be set up.
public struct SendPathUnavailable: Error, CustomStringConvertible, Sendable {
    /// What refused it, as one clause (`lo is not an Ethernet interface (link type 772)`).
    public let reason: String
    public var description: String { "--send-path ring: the TX ring cannot be used: \(reason)" }
}

/// Why the ring could not be set up (the transport falls back to the socket, or throws for `ring`).
struct TxRingRefusal: Error {
    let reason: String
}

/// The transmit ring, the socket it belongs to, and what it needs to frame each probe.
final class TxRingSender {
    /// Bytes per frame: the TPACKET_V2 header (32) + Ethernet (14) + the largest probe (1500) fit.
    static let frameSize = 2048
    /// Frames: more than any batch, so a ring whose frames are all still in flight after a kick is rare;
    /// 1 MiB of mapping.
    static let frameCount = 512
    static let blockSize = 64 * 1024
    /// How soon the neighbour table is read again after a probe met a next hop without a usable entry
    /// (the kernel is resolving it: the probe went through the socket), and how often otherwise.
    static let unresolvedRefreshNanos: UInt64 = 10_000_000
    static let refreshNanos: UInt64 = 1_000_000_000

    let interfaceIndex: Int32
    let interfaceName: String
    let ownMAC: MACAddress
    let mtu: Int
    private var socket: OwnedDescriptor
    private var ring: UnsafeTxRing
    private let routes: NextHopRoutes
    private let routes6: NextHopRoutes6
    /// Which families' next hops `detail` names (those the run sends).
    private let namesIPv4: Bool
    private let namesIPv6: Bool
    private var neighbours = NeighbourTable()
    private var cachedHop: UInt32 = 0
    private var cachedMAC: MACAddress?
    private var cachedHop6 = IPAddress(high: 0, low: 0)
    private var cachedMAC6: MACAddress?
    private var unresolvedSeen = false
    private var lastRefresh: UInt64 = 0
    private let clock = SystemClock()

    /// Frames the kernel took.
    let framesSent = Atomic<UInt64>(0)
    /// Frames the kernel refused as malformed (TP_STATUS_WRONG_FORMAT), also counted as send errors.
    let framesRefused = Atomic<UInt64>(0)

    /// Sets up the ring on interface `interfaceIndex` for destinations routed by `routes` (IPv4) and
    /// `routes6` (IPv6); `sendsIPv4`/`sendsIPv6` say which families' next hops `detail` names. Throws a
    /// refusal naming what stands in the way.
    init(interfaceIndex: Int32, interfaceName: String, routes: RouteTable, routes6: RouteTable6,
         sendsIPv4: Bool = true, sendsIPv6: Bool = true, sendBufferBytes: Int, maxPacketLength: Int) throws(TxRingRefusal) {
        var link = cfasttrace_link()
        let rc = CFastTrace_link_info(interfaceIndex, &link)
        guard rc == 0 else {
            throw TxRingRefusal(reason: "cannot read \(interfaceName) (netlink RTM_GETLINK: \(SystemError.errnoText(-rc)))")
        }
        let mac = withUnsafeBytes(of: link.address) { Array($0.prefix(Int(link.address_len))) }
        guard link.type == CFastTrace_ARPHRD_ETHER(), mac.count == 6, let ownMAC = MACAddress(bytes: mac) else {
            let what = switch link.type {
            case 772: "is a loopback interface (link type 772), not Ethernet"
            case 0xFFFE: "has no link-layer header (link type 65534, a tun device)"
            default: "is not an Ethernet interface (link type \(link.type))"
            }
            throw TxRingRefusal(reason: "\(interfaceName) \(what)")
        }
        guard link.flags & UInt32(IFF_UP) != 0 else { throw TxRingRefusal(reason: "\(interfaceName) is down") }
        guard maxPacketLength + EthernetLayout.headerLength <= Self.frameSize - Int(CFastTrace_TPACKET2_TX_DATA_OFFSET()) else {
            throw TxRingRefusal(reason: "probes of \(maxPacketLength) bytes do not fit a \(Self.frameSize)-byte frame")
        }
        do {
            // SOCK_RAW: we write the link-layer header. Protocol 0: the socket receives nothing; the
            // kernel reads each frame's EtherType for the packet's protocol.
            let socket = OwnedDescriptor(
                try syscallBlocking("socket(AF_PACKET, SOCK_RAW)", needsPrivilege: true) {
                    Glibc.socket(AF_PACKET, Int32(SOCK_RAW.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
                })
            try setSocketOption(socket.raw, CFastTrace_SOL_PACKET(), CFastTrace_PACKET_VERSION(),
                                Int32(CFastTrace_TPACKET_V2()), "setsockopt(PACKET_VERSION, TPACKET_V2)")
            // Each frame in flight holds about 1 KB of send buffer; without room the kernel leaves frames
            // requested (back-pressure, not loss). 512 frames need ~512 KB: forced where allowed.
            let sendBuffer = Int32(clamping: sendBufferBytes)
            do {
                try setSocketOption(socket.raw, SOL_SOCKET, SO_SNDBUFFORCE, sendBuffer, "setsockopt(SO_SNDBUFFORCE)")
            } catch {
                try setSocketOption(socket.raw, SOL_SOCKET, SO_SNDBUF, sendBuffer, "setsockopt(SO_SNDBUF)")
            }
            let ring = try UnsafeTxRing(socket: socket.raw, frameSize: Self.frameSize, frameCount: Self.frameCount,
                                        blockSize: Self.blockSize)
            try syscallBlocking("bind(AF_PACKET, \(interfaceName))") {
                CFastTrace_packet_bind(socket.raw, 0, interfaceIndex)
            }
            self.socket = socket
            self.ring = ring
        } catch {
            throw TxRingRefusal(reason: "\(error)")
        }
        self.interfaceIndex = interfaceIndex
        self.interfaceName = interfaceName
        self.ownMAC = ownMAC
        self.mtu = Int(link.mtu)
        self.routes = NextHopRoutes(table: routes, interfaceIndex: interfaceIndex)
        self.routes6 = NextHopRoutes6(table: routes6, interfaceIndex: interfaceIndex)
        self.namesIPv4 = sendsIPv4
        self.namesIPv6 = sendsIPv6
        do {
            try neighbours.reload(interfaceIndex: interfaceIndex)
        } catch {
            throw TxRingRefusal(reason: "\(error)")
        }
        lastRefresh = clock.now()
    }

    /// One line for `--verbose`: the ring, the interface and each gateway's neighbour entry (of the
    /// families the run sends).
    var detail: String {
        let gateways = (namesIPv4 ? routes.gateways.map { IPAddress(IPv4Address($0)) } : [])
            + (namesIPv6 ? routes6.gateways : [])
        let hops = gateways.map { address -> String in
            guard let entry = neighbours.entries.first(where: { $0.address == address }) else {
                return "\(address) not in the neighbour table yet (its first probes go through the raw socket, which resolves it)"
            }
            return "\(address) at \(entry.mac?.description ?? "no address") (\(NeighbourTable.stateName(entry.state)))"
        }
        return "TPACKET_V2 ring of \(Self.frameCount) frames × \(Self.frameSize) B on \(interfaceName) "
            + "(\(ownMAC), MTU \(mtu)), next hop " + (hops.isEmpty ? "on the link" : hops.joined(separator: ", "))
    }

    /// Ends the ring's mapping and hands over its socket for the caller to close (see
    /// `LinuxTransport`'s teardown). The sender must not be used after.
    func release() -> Int32 {
        ring.unmap()
        return socket.take()
    }

    // MARK: The hot path (scheduler thread)

    /// Reads the neighbour table again when a next hop was missing (10 ms at most after) or once a
    /// second. Not per packet: the read allocates.
    func refreshIfDue() {
        let now = clock.now()
        let since = now &- lastRefresh
        guard since >= Self.refreshNanos || (unresolvedSeen && since >= Self.unresolvedRefreshNanos) else { return }
        lastRefresh = now
        unresolvedSeen = false
        // A failed read keeps the entries we have; the next one is due in a second.
        if (try? neighbours.reload(interfaceIndex: interfaceIndex)) != nil {
            cachedMAC = nil
            cachedMAC6 = nil
        }
    }

    /// The frame area at the ring's cursor if it is free, else nil (the ring is full).
    @inline(__always)
    func frameAtCursor() -> UnsafeMutableRawBufferPointer? { ring.frameAtCursor() }

    /// Frames the probe in `frame` (its IP packet at offset 14, `length` bytes, for `destination`): the
    /// Ethernet header written, and an IPv4 header finished as the raw socket would finish it (an IPv6
    /// packet, which the raw IPv6 socket sends as it stands, is only checked to be whole). True when the
    /// frame is ready for `submit`; false when the probe must go through the raw socket instead: its next
    /// hop is not resolved yet (the socket makes the kernel resolve it), its route is one the ring cannot
    /// follow as the kernel would (another interface, multipath, reject, none), it exceeds the MTU, or
    /// the socket would send it differently (an IPv4 ID or source of 0, which it rewrites; an IPv6 packet
    /// whose payload length is not its length).
    @inline(__always)
    func frame(_ frame: UnsafeMutableRawBufferPointer, length: Int, destination: IPAddress) -> Bool {
        guard length <= mtu else { return false }
        let ipStart = EthernetLayout.headerLength
        // SAFETY: the frame area holds 14 + maxPacketLength bytes (checked in init), and length ≤ that.
        let packet = UnsafeMutableRawBufferPointer(rebasing: frame[ipStart..<(ipStart + length)])
        let mac: MACAddress
        let etherType: UInt16
        if let v4 = destination.ipv4 {
            guard let found = nextHopMAC(v4.value), RawIPv4Send.finish(packet, length: length) == nil else { return false }
            (mac, etherType) = (found, EthernetLayout.etherTypeIPv4)
        } else {
            guard let found = nextHopMAC6(destination), RawIPv6Send.check(UnsafeRawBufferPointer(packet), length: length) == nil
            else { return false }
            (mac, etherType) = (found, EthernetLayout.etherTypeIPv6)
        }
        EthernetFrameWriter.writeHeader(into: frame, destination: mac, source: ownMAC, etherType: etherType)
        return true
    }

    /// The MAC of the next hop toward IPv4 `destination`, or nil (the socket takes the probe).
    @inline(__always)
    private func nextHopMAC(_ destination: UInt32) -> MACAddress? {
        switch routes.nextHop(destination) {
        case .socketOnly:
            return nil
        case .address(let hop):
            if hop == cachedHop, let cached = cachedMAC { return cached }
            guard let found = neighbours.macs[hop] else {
                unresolvedSeen = true
                return nil
            }
            cachedHop = hop
            cachedMAC = found
            return found
        }
    }

    /// The MAC of the next hop toward IPv6 `destination` (from the NDP table), or nil.
    @inline(__always)
    private func nextHopMAC6(_ destination: IPAddress) -> MACAddress? {
        switch routes6.nextHop(destination) {
        case .socketOnly:
            return nil
        case .address(let hop):
            if hop == cachedHop6, let cached = cachedMAC6 { return cached }
            guard let found = neighbours.macs6[hop] else {
                unresolvedSeen = true
                return nil
            }
            cachedHop6 = hop
            cachedMAC6 = found
            return found
        }
    }

    /// Requests the frame at the cursor (prepared by `frame`) be sent at the next kick.
    @inline(__always)
    func submit(frameLength: Int) { ring.submit(length: frameLength) }

    /// Frames requested since the last kick.
    var pending: Int { ring.pending }

    /// What one kick did with the frames requested since the last.
    struct KickResult {
        /// Frames the kernel took, in order.
        var taken: Int
        /// The frame after them was refused as malformed (TP_STATUS_WRONG_FORMAT): drop that one probe.
        var wrongFormat: Bool
        /// The kick failed with an error that is neither back-pressure nor a malformed frame (the
        /// interface went down…): drop the first probe not taken, as the socket path skips a refused one.
        var hardError: Bool
        /// The kick's errno when it failed (EMSGSIZE or EINVAL with a malformed frame), else 0.
        var errno: Int32 = 0
    }

    /// One send(): the kernel takes every requested frame it can. Frames it did not take are the
    /// caller's again (see `UnsafeTxRing.reclaimUntaken`).
    func kick() -> KickResult {
        guard ring.pending > 0 else { return KickResult(taken: 0, wrongFormat: false, hardError: false) }
        let result = hotSyscall("send(PACKET_TX_RING)") { CFastTrace_packet_tx_kick(socket.raw) }
        let (taken, wrongFormat) = ring.reclaimUntaken()
        var hardError = false
        var code: Int32 = 0
        if case .failed(let failed) = result {
            code = failed
            hardError = !wrongFormat && failed != ENOBUFS
        }
        if taken > 0 { framesSent.add(UInt64(taken), ordering: .relaxed) }
        if wrongFormat { framesRefused.add(1, ordering: .relaxed) }
        return KickResult(taken: taken, wrongFormat: wrongFormat, hardError: hardError, errno: code)
    }
}
