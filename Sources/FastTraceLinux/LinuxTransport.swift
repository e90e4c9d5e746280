// The real transport: probes leave through a PACKET_TX_RING (one send() per batch, see TxRingSender)
// where it can be set up, else through raw IPv4 and IPv6 sockets (sendmmsg, one call per batch); replies
// arrive through an AF_PACKET TPACKET_V3 ring whose eBPF filter keeps only replies to our probes, read
// by a dedicated thread that polls the packet socket.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace
import FastTraceCore
import FastTraceWire
import Logging
import Synchronization

/// `ProbeTransport` over the Linux kernel. Create it on a thread that is already in the right network
/// namespace (sockets keep the namespace they were created in).
public final class LinuxTransport: ProbeTransport {
    /// What to open and how big.
    public struct Configuration: Sendable {
        /// The probes' TCP source ports. The reply filter keeps only SYN-ACK/RST to these ports and
        /// ICMP errors quoting a TCP header from them.
        public var sourcePorts: ClosedRange<UInt16>
        /// Send through this interface only (`SO_BINDTODEVICE` on the raw socket, so every probe leaves
        /// through it whatever the routing table says) and capture replies on it only; nil sends as the
        /// routing table says and captures on every interface of the namespace.
        public var interfaceName: String?
        /// Receive ring geometry.
        public var ring: RingGeometry
        /// Packets per `send` call (one `sendmmsg`).
        public var maxBatch: Int
        /// Largest probe, in bytes, from its IP header on: `-l`'s 1,500 plus the 22 an IPv6 probe adds (its
        /// header is 20 bytes longer; UDP carries 2 more bytes of the word).
        public var maxPacketLength: Int
        /// Socket send buffer requested for the raw socket (SO_SNDBUFFORCE, else SO_SNDBUF, which the
        /// kernel caps at net.core.wmem_max).
        public var sendBufferBytes: Int
        /// Bytes of each reply the filter keeps (IPv4 + ICMP + quoted IPv4 + TCP fit in 256).
        public var snapLength: Int
        /// Which send path to set up: the transmit ring (`ring`: or throw `SendPathUnavailable`), the
        /// raw socket (`socket`), or the ring where it can be set up (`auto`).
        public var sendPath: SendPathChoice
        /// The IPv4 routes probes take (restricted to `interfaceName`'s when one is given), for the ring's
        /// choice of interface and next hops; nil reads the main table when the ring is tried.
        public var routes: RouteTable?
        /// The same for IPv6.
        public var routes6: RouteTable6?
        /// The IP protocol the probes carry (6 TCP, 17 UDP, 1 ICMP echo): the reply filter keeps that
        /// protocol's answers and ICMP errors quoting it.
        public var probeProtocol: UInt8 = 6
        /// The run may send IPv4 probes (false for one that traces IPv6 only: `-6`, one IPv6 address). The
        /// ring then takes its interface from the IPv6 routes, and `--verbose` and the checks of what the
        /// ring would bypass (output firewall, policy rules) are about IPv6 alone.
        public var sendsIPv4 = true
        /// The run may send IPv6 probes (false for one that traces IPv4 only).
        public var sendsIPv6 = true
        /// How long the receive thread's poll waits when nothing arrives, ms: how often it looks again
        /// (a stop wakes it at once; see `Receiver`).
        public var receivePollTimeoutMilliseconds: Int32 = 50

        /// Makes a configuration; the defaults suit tens of thousands of targets.
        public init(
            sourcePorts: ClosedRange<UInt16>,
            interfaceName: String? = nil,
            ring: RingGeometry = .default,
            maxBatch: Int = 64,
            maxPacketLength: Int = 1524,
            sendBufferBytes: Int = 4 * 1024 * 1024,
            snapLength: Int = 256,
            sendPath: SendPathChoice = .auto,
            routes: RouteTable? = nil,
            routes6: RouteTable6? = nil
        ) {
            self.sendPath = sendPath
            self.routes = routes
            self.routes6 = routes6
            self.sourcePorts = sourcePorts
            self.interfaceName = interfaceName
            self.ring = ring
            self.maxBatch = maxBatch
            self.maxPacketLength = maxPacketLength
            self.sendBufferBytes = sendBufferBytes
            self.snapLength = snapLength
        }
    }

    public let maxBatch: Int
    public let maxPacketLength: Int
    /// The configuration the transport was opened with.
    public let configuration: Configuration

    private let sendSocket: OwnedDescriptor
    /// The IPv6 raw socket (IPPROTO_RAW: the whole IPv6 packet is ours, IPV6_HDRINCL implied); nil when
    /// the kernel has no IPv6, in which case every IPv6 probe is refused and counted.
    private let sendSocket6: OwnedDescriptor?
    /// `sendSocket6`'s descriptor, -1 when there is none.
    private let sendSocket6FD: Int32
    private var packetSocket: OwnedDescriptor
    private let filter: ReplyFilter
    private let batch: SendBatch
    /// The transmit ring, when the run sends through it.
    private let txRing: TxRingSender?
    /// Which send path runs, and why.
    public let sendPath: SendPathReport
    private let receiver: Receiver
    private let thread = Mutex<pthread_t?>(nil)
    private let packetsSent = Atomic<UInt64>(0)
    private let sendErrors = Atomic<UInt64>(0)
    /// Probes a ring run handed to the raw socket instead (sent or refused there).
    private let packetsToSocketBesideRing = Atomic<UInt64>(0)
    /// Of them, those the socket refused.
    private let socketRefusedBesideRing = Atomic<UInt64>(0)
    private let firstSendErrno = Atomic<Int32>(0)
    private let firstSendErrorOnRing = Atomic<Bool>(false)
    /// PACKET_STATISTICS resets on every read; the running total lives here.
    private let ringDropsTotal = Mutex<UInt64>(0)

    private static let logger = Logger(label: "fasttrace.linux")

    /// Opens the raw send socket and the filtered packet ring. Throws a `SystemError` naming the step
    /// that failed (with advice on capabilities when refused).
    public init(configuration: Configuration) throws {
        precondition(configuration.maxBatch > 0 && configuration.maxPacketLength >= 20)
        precondition(configuration.snapLength > 0)
        self.configuration = configuration
        self.maxBatch = configuration.maxBatch
        self.maxPacketLength = configuration.maxPacketLength
        let logger = Self.logger

        // Send side: IPPROTO_RAW implies IP_HDRINCL; we write whole IPv4 packets.
        let sendSocket = OwnedDescriptor(
            try syscallBlocking("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)", needsPrivilege: true) {
                socket(AF_INET, Int32(SOCK_RAW.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue),
                       Int32(IPPROTO_RAW))
            })
        let sendBuffer = Int32(clamping: configuration.sendBufferBytes)
        do {
            try setSocketOption(sendSocket.raw, SOL_SOCKET, SO_SNDBUFFORCE, sendBuffer, "setsockopt(SO_SNDBUFFORCE)")
        } catch {
            try setSocketOption(sendSocket.raw, SOL_SOCKET, SO_SNDBUF, sendBuffer, "setsockopt(SO_SNDBUF)")
        }

        // The IPv6 twin. A kernel without IPv6 refuses the socket: the run goes on for IPv4.
        var sendSocket6: OwnedDescriptor?
        let raw6 = socket(AF_INET6, Int32(SOCK_RAW.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue),
            Int32(IPPROTO_RAW))
        if raw6 >= 0 {
            sendSocket6 = OwnedDescriptor(raw6)
            do {
                try setSocketOption(raw6, SOL_SOCKET, SO_SNDBUFFORCE, sendBuffer, "setsockopt(SO_SNDBUFFORCE)")
            } catch {
                try setSocketOption(raw6, SOL_SOCKET, SO_SNDBUF, sendBuffer, "setsockopt(SO_SNDBUF)")
            }
        } else if errno != EAFNOSUPPORT {
            throw SystemError(operation: "socket(AF_INET6, SOCK_RAW, IPPROTO_RAW)", errno: errno, needsPrivilege: true)
        }

        if let name = configuration.interfaceName {
            // As tcptraceroute does for -i (libnet binds its raw socket the same way): the kernel then
            // routes each probe through this interface only.
            var descriptors = [sendSocket.raw]
            if let raw6 = sendSocket6?.raw { descriptors.append(raw6) }
            for fd in descriptors {
                try syscallBlocking("setsockopt(SO_BINDTODEVICE, \(name))") {
                    name.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0))) }
                }
            }
        }

        // The transmit ring is set up on a thread of its own meanwhile: each ring's setup waits for an
        // RCU grace period in the kernel (about 10 ms here), and the two waits overlap this way.
        let opening = ThreadJob { Result { try LinuxTransport.openSendPath(configuration) } }
        defer { opening.join() }  // an error below still waits for it (its ring, if any, is then closed)

        // Receive side. Protocol 0 at creation: the socket sees nothing until the bind at the end,
        // so no unfiltered packet slips in while the filter and ring are being set up.
        let packetSocket = OwnedDescriptor(
            try syscallBlocking("socket(AF_PACKET, SOCK_DGRAM)", needsPrivilege: true) {
                socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
            })
        let fd = packetSocket.raw
        try setSocketOption(fd, CFastTrace_SOL_PACKET(), CFastTrace_PACKET_VERSION(), Int32(CFastTrace_TPACKET_V3()),
                            "setsockopt(PACKET_VERSION, TPACKET_V3)")
        try setSocketOption(fd, CFastTrace_SOL_PACKET(), CFastTrace_PACKET_IGNORE_OUTGOING(), 1,
                            "setsockopt(PACKET_IGNORE_OUTGOING)")
        let filter = try ReplyFilter(sourcePorts: configuration.sourcePorts, probeProtocol: configuration.probeProtocol,
                                     snapLength: UInt32(clamping: configuration.snapLength))
        try setSocketOption(fd, SOL_SOCKET, CFastTrace_SO_ATTACH_BPF(), filter.programDescriptor,
                            "setsockopt(SO_ATTACH_BPF)", needsPrivilege: true)
        let ring = try UnsafePacketRing(socket: fd, geometry: configuration.ring)
        var interfaceIndex: Int32 = 0
        if let name = configuration.interfaceName {
            interfaceIndex = Int32(bitPattern: if_nametoindex(name))
            guard interfaceIndex != 0 else {
                throw SystemError(operation: "if_nametoindex(\(name))", errno: errno == 0 ? ENODEV : errno)
            }
        }
        // Every protocol: one ring for both families (the filter keeps IPv4 and IPv6 replies alike and
        // drops the rest, ARP and all, in the kernel).
        try syscallBlocking("bind(AF_PACKET, ETH_P_ALL, \(configuration.interfaceName ?? "any interface"))") {
            CFastTrace_packet_bind(fd, CFastTrace_ETH_P_ALL(), interfaceIndex)
        }

        // The raw socket stays open beside the ring: the ring hands it the probes it cannot send exactly
        // as the kernel would (a next hop not resolved yet, another interface, a multipath route).
        let (txRing, sendPath) = try opening.join().get()

        self.sendSocket = sendSocket
        self.sendSocket6FD = sendSocket6?.raw ?? -1
        self.sendSocket6 = sendSocket6
        self.packetSocket = packetSocket
        self.filter = filter
        self.receiver = Receiver(ring: ring, socket: fd,
                                 pollTimeoutMilliseconds: max(1, configuration.receivePollTimeoutMilliseconds))
        self.batch = SendBatch(count: configuration.maxBatch, packetLength: configuration.maxPacketLength)
        self.txRing = txRing
        self.sendPath = sendPath
        logger.debug(
            "transport open",
            metadata: [
                "sourcePorts": "\(configuration.sourcePorts)",
                "interface": "\(configuration.interfaceName ?? "any")",
                "ring": "\(configuration.ring.blockCount)x\(configuration.ring.blockSize)B",
                "retireMs": "\(configuration.ring.retireTimeoutMilliseconds)",
                "sendPath": "\(sendPath.summary)",
            ])
    }

    /// Sets up the transmit ring as `configuration.sendPath` asks: nil and the reason when the socket
    /// path runs. Throws `SendPathUnavailable` when `ring` was asked for and cannot be had.
    private static func openSendPath(_ configuration: Configuration) throws -> (TxRingSender?, SendPathReport) {
        let sockets = "raw sockets (IPv4: IPPROTO_RAW; IPv6: with the IPv6 header written), sendmmsg per batch"
        if configuration.sendPath == .socket {
            return (nil, SendPathReport(usesRing: false, interfaceName: nil, reason: "--send-path socket",
                detail: "\(sockets); TX ring not used: --send-path socket"))
        }
        do {
            let ring = try openRing(configuration)
            var detail = ring.detail + "; one send() per batch"
            // Where the ring would leave differently from the socket, `auto` keeps the socket and `ring`
            // (the user's choice) goes ahead, naming the difference in `--verbose`:
            // - the raw socket's probes pass this namespace's own netfilter output path; the ring's frames
            //   leave below it (where that path has rules, or cannot be read);
            // - the ring picks next hops from the main table, as fasttrace's routes and sources do; the
            //   kernel would apply `ip rule`s first.
            let (v4, v6) = (configuration.sendsIPv4, configuration.sendsIPv6)
            for bypassed in [outputFirewall(ipv4: v4, ipv6: v6), policyRules(ipv4: v4, ipv6: v6)].compactMap({ $0 }) {
                if configuration.sendPath == .auto { throw TxRingRefusal(reason: bypassed) }
                detail += " (note: \(bypassed))"
            }
            return (ring, SendPathReport(usesRing: true, interfaceName: ring.interfaceName, reason: nil, detail: detail))
        } catch let error as TxRingRefusal {
            if configuration.sendPath == .ring { throw SendPathUnavailable(reason: error.reason) }
            return (nil, SendPathReport(usesRing: false, interfaceName: nil, reason: error.reason,
                detail: "\(sockets); TX ring not used: \(error.reason)"))
        }
    }

    /// Why the ring's frames would leave differently from the socket's because of this namespace's own
    /// firewall, or nil: nftables base chains (inet, and ip or ip6 for the families the run sends) on the
    /// output or postrouting hook, or loaded legacy iptables (ip6tables) tables, which the raw socket's
    /// packets pass and the ring's frames bypass (they leave below the IP stack; tc and the qdisc still
    /// apply). Reading nftables needs CAP_NET_ADMIN.
    private static func outputFirewall(ipv4: Bool, ipv6: Bool) -> String? {
        let chains = CFastTrace_count_output_chains(ipv4 ? 1 : 0, ipv6 ? 1 : 0)
        if chains > 0 {
            return "\(chains) nftables output/postrouting chain\(chains == 1 ? "" : "s") in this namespace, which "
                + "the ring's frames would bypass"
        }
        if chains == -EPERM || chains == -EACCES {
            return "this namespace's nftables output chains cannot be read without CAP_NET_ADMIN, and the ring's "
                + "frames would bypass any"
        }
        // Legacy iptables: its tables are listed here once loaded (each has OUTPUT chains).
        for (sends, file, tool) in [(ipv4, "ip_tables_names", "iptables"), (ipv6, "ip6_tables_names", "ip6tables")] where sends {
            let tables = Privileges.readSmallFile("/proc/thread-self/net/\(file)")?
                .split(whereSeparator: { $0 == "\n" || $0 == " " }) ?? []
            if !tables.isEmpty {
                return "\(tool) (legacy) tables \(tables.joined(separator: ", ")) in this namespace, "
                    + "which the ring's frames would bypass"
            }
        }
        return nil
    }

    /// The policy-routing rules of this host's own (`ip rule`, `ip -6 rule`, for the families the run
    /// sends) the ring's next-hop choice, from the main table, would not follow, or nil when there are none.
    private static func policyRules(ipv4: Bool, ipv6: Bool) -> String? {
        for (sends, family, command) in [(ipv4, AF_INET, "ip rule"), (ipv6, AF_INET6, "ip -6 rule")] where sends {
            let rules = CFastTrace_count_policy_rules(family)
            // A kernel without IPv6 has no IPv6 rules to read (and no IPv6 route for the ring to follow).
            if rules == 0 || (family == AF_INET6 && rules == -EAFNOSUPPORT) { continue }
            return rules < 0
                ? "cannot read the policy-routing rules (netlink RTM_GETRULE: \(SystemError.errnoText(-rules)))"
                : "\(rules) policy-routing rule\(rules == 1 ? "" : "s") (\(command)) the ring's next-hop choice would not follow"
        }
        return nil
    }

    /// The ring on the interface probes leave through: `-i`'s, else the default route's, else the one
    /// interface every route uses; IPv4's routes decide when the run sends IPv4 (and have one), else IPv6's.
    private static func openRing(_ configuration: Configuration) throws(TxRingRefusal) -> TxRingSender {
        var routes: RouteTable
        if let given = configuration.routes {
            routes = given
        } else {
            do { routes = try RouteTable.load() } catch { throw TxRingRefusal(reason: "\(error)") }
        }
        var routes6: RouteTable6
        if let given = configuration.routes6 {
            routes6 = given
        } else if configuration.sendsIPv6 {
            // A kernel without IPv6 answers the dump with an error: no IPv6 route, so the ring takes none.
            routes6 = (try? RouteTable6.load()) ?? RouteTable6(entries: [], addresses: [])
        } else {
            routes6 = RouteTable6(entries: [], addresses: [])
        }
        let index: Int32
        if let name = configuration.interfaceName {
            guard let found = routes.interfaceIndex(named: name) else {
                throw TxRingRefusal(reason: "no interface named \(name)")
            }
            index = found
            if configuration.routes == nil { routes = routes.restricted(toInterface: found) }
            if configuration.routes6 == nil { routes6 = routes6.restricted(toInterface: found) }
        } else {
            // (routes as (prefix length, interface, metric), names) of each family the run sends, IPv4 first.
            var candidates: [([(length: Int, interface: Int32, metric: UInt32)], [Int32: String])] = []
            if configuration.sendsIPv4 {
                candidates.append((routes.entries.filter { $0.kind == .unicast && $0.interfaceIndex > 0 }
                    .map { ($0.prefixLength, $0.interfaceIndex, $0.metric) }, routes.interfaceNames))
            }
            if configuration.sendsIPv6 {
                // Every IPv6 interface has its own fe80::/64 route, and lo ::1/128: neither says where probes go.
                let loopback = IPAddress(high: 0, low: 1)
                candidates.append((routes6.entries.filter {
                    $0.kind == .unicast && $0.interfaceIndex > 0 && $0.destination.high >> 54 != 0x3FA
                        && !($0.prefixLength == 128 && $0.destination == loopback)
                }.map { ($0.prefixLength, $0.interfaceIndex, $0.metric) }, routes6.interfaceNames))
            }
            var chosen: Int32?
            var firstRefusal: String?
            for (unicast, names) in candidates {
                let interfaces = Set(unicast.map(\.interface))
                if let defaultRoute = unicast.filter({ $0.length == 0 }).min(by: { $0.metric < $1.metric }) {
                    chosen = defaultRoute.interface
                } else if interfaces.count == 1, let only = interfaces.first {
                    chosen = only
                } else if interfaces.isEmpty {
                    firstRefusal = firstRefusal ?? "no route"
                } else {
                    let list = interfaces.sorted().map { names[$0] ?? "if\($0)" }
                    firstRefusal = firstRefusal
                        ?? "no default route, and routes leave through \(list.joined(separator: ", "))"
                }
                if chosen != nil { break }
            }
            guard let chosen else { throw TxRingRefusal(reason: firstRefusal ?? "no route") }
            index = chosen
        }
        let name = routes.interfaceNames[index] ?? routes6.interfaceNames[index] ?? configuration.interfaceName ?? "if\(index)"
        return try TxRingSender(interfaceIndex: index, interfaceName: name, routes: routes, routes6: routes6,
            sendsIPv4: configuration.sendsIPv4, sendsIPv6: configuration.sendsIPv6,
            sendBufferBytes: configuration.sendBufferBytes, maxPacketLength: configuration.maxPacketLength)
    }

    deinit {
        stopReceiving()
        // The two packet sockets' releases each wait for RCU grace periods in the kernel (about 25 ms
        // each here, most of a short run's exit): unmap both rings first, which is quick while the
        // sockets are open, then close the sockets side by side so that the waits overlap.
        receiver.unmapRing()
        closeSideBySide(packetSocket.take(), txRing?.release() ?? -1)
    }

    // MARK: Sending

    /// Sends up to `count` probes: through the transmit ring when it is up (`sendThroughRing`), else
    /// through the raw socket (`flushSocket`). Returns how many were consumed: sent, or dropped
    /// with a hard error (counted in `sendErrors`; the engine sees them as lost). The rest were not
    /// sent (a full ring or socket buffer: back-pressure) and may be retried.
    public func send(
        count: Int,
        fill: (Int, UnsafeMutableRawBufferPointer) -> (length: Int, destination: IPAddress),
        refused: (Int) -> Void
    ) throws -> Int {
        precondition(count >= 0 && count <= maxBatch, "send(count:) exceeds maxBatch")
        guard count > 0 else { return 0 }
        if let txRing { return sendThroughRing(txRing, count: count, fill: fill, refused: refused) }
        let batch = self.batch
        for i in 0..<count {
            let buffer = batch.packet(i)
            let (length, destination) = fill(i, buffer)
            precondition(length >= 20 && length <= buffer.count, "probe length out of range")
            batch.prepare(i, length: length, destination: destination)
        }
        return flushSocket(count, first: 0, refused: refused)
    }

    /// Sends the first `count` packets prepared in `batch` with `sendmmsg` (more calls only if the
    /// kernel takes part of the batch). Returns how many were consumed: sent, or refused one by one
    /// with a hard error (counted, and named to `refused` as probe `first` + its place in the batch).
    /// Stops at the first EAGAIN or ENOBUFS: the rest were not sent.
    private func flushSocket(_ count: Int, first: Int, refused: (Int) -> Void) -> Int {
        var consumed = 0
        var sent = 0
        var errors = 0
        // Each round either sends ≥ 1 message, skips one failed message, or stops. A batch mixing the
        // families goes out as runs of one family, each through its own socket, in order.
        while consumed < count {
            let family = batch.families[consumed]
            var end = consumed + 1
            while end < count && batch.families[end] == family { end += 1 }
            let socket = family == 6 ? sendSocket6FD : sendSocket.raw
            guard socket >= 0 else {
                // No IPv6 in this kernel: the probe cannot be sent at all.
                consumed += 1
                errors += 1
                noteFirstSendError(EAFNOSUPPORT, onRing: false)
                continue
            }
            let result = hotSyscall("sendmmsg") {
                Int(CFastTrace_sendmmsg(socket, batch.messages + consumed, UInt32(end - consumed), Int32(MSG_DONTWAIT)))
            }
            switch result {
            case .done(let n) where n > 0:
                consumed += n
                sent += n
                continue
            case .done, .wouldBlock, .failed(ENOBUFS), .failed(EINTR):
                break
            case .failed(let code):
                // A per-packet refusal (EPERM from a firewall, ENETUNREACH, EMSGSIZE…): skip that packet.
                refused(first + consumed)
                consumed += 1
                errors += 1
                noteFirstSendError(code, onRing: false)
                continue
            }
            break
        }
        if sent > 0 { packetsSent.add(UInt64(sent), ordering: .relaxed) }
        if errors > 0 { sendErrors.add(UInt64(errors), ordering: .relaxed) }
        return consumed
    }

    /// Keeps the errno of the run's first refused probe (and which path refused it) for the summary.
    private func noteFirstSendError(_ code: Int32, onRing: Bool) {
        if firstSendErrno.compareExchange(expected: 0, desired: code == 0 ? EIO : code, ordering: .relaxed).exchanged {
            firstSendErrorOnRing.store(onRing, ordering: .relaxed)
        }
    }

    /// The ring path. Each probe is written straight into the frame at the ring's cursor; one the ring
    /// cannot send exactly as the kernel would (`TxRingSender.frame` says which) is copied into the
    /// socket batch instead. Consecutive probes of one path form a run; a run is flushed (one kick, or
    /// one sendmmsg) before a run of the other path starts, and the first run that falls short ends the
    /// call, so what was consumed is always a prefix of the batch, as the seam requires: nothing after
    /// a probe that was not sent has gone out. A full ring (its next frame still in flight) is
    /// back-pressure: the call stops there and the engine retries the rest.
    private func sendThroughRing(
        _ ring: TxRingSender, count: Int,
        fill: (Int, UnsafeMutableRawBufferPointer) -> (length: Int, destination: IPAddress),
        refused: (Int) -> Void
    ) -> Int {
        ring.refreshIfDue()
        let batch = self.batch
        let ipStart = EthernetLayout.headerLength
        var consumed = 0      // probes done, a prefix of the batch
        var socketRun = 0     // probes waiting in batch slots 0..<socketRun
        var ringRun = 0       // frames requested since the last kick

        /// Kicks the ring's run; false when it fell short (the call ends).
        func flushRing() -> Bool {
            guard ringRun > 0 else { return true }
            let result = ring.kick()
            var done = result.taken
            if result.taken < ringRun && (result.wrongFormat || result.hardError) {
                // That one probe is dropped and counted, as the socket path skips a refused packet.
                refused(consumed + done)
                done += 1
                sendErrors.add(1, ordering: .relaxed)
                noteFirstSendError(result.errno, onRing: true)
            }
            packetsSent.add(UInt64(result.taken), ordering: .relaxed)
            consumed += done
            let complete = done == ringRun
            ringRun = 0
            return complete
        }
        /// Sends the socket run; false when it fell short.
        func flushSocketRun() -> Bool {
            guard socketRun > 0 else { return true }
            let errorsBefore = sendErrors.load(ordering: .relaxed)  // only this thread adds to it
            let done = flushSocket(socketRun, first: consumed, refused: refused)
            // Sent or refused there: the summary counts both as going through the socket.
            if done > 0 { packetsToSocketBesideRing.add(UInt64(done), ordering: .relaxed) }
            let refusedThere = sendErrors.load(ordering: .relaxed) &- errorsBefore
            if refusedThere > 0 { socketRefusedBesideRing.add(refusedThere, ordering: .relaxed) }
            consumed += done
            let complete = done == socketRun
            socketRun = 0
            return complete
        }

        var stopped = false
        for i in 0..<count {
            guard let frame = ring.frameAtCursor() else { break }  // ring full: back-pressure
            // SAFETY: the frame area holds 14 + maxPacketLength bytes (TxRingSender.init checks it).
            let ipArea = UnsafeMutableRawBufferPointer(rebasing: frame[ipStart..<(ipStart + maxPacketLength)])
            let (length, destination) = fill(i, ipArea)
            precondition(length >= 20 && length <= maxPacketLength, "probe length out of range")
            if ring.frame(frame, length: length, destination: destination) {
                // Only one run is ever pending: a socket run goes out before a ring probe is requested.
                guard flushSocketRun() else { stopped = true; break }
                ring.submit(frameLength: ipStart + length)
                ringRun += 1
            } else {
                // Copied out first: flushing the ring's run may move its cursor.
                let slot = batch.packet(socketRun)
                // SAFETY: both regions hold `length` bytes (length ≤ maxPacketLength = the slot size).
                slot.baseAddress!.copyMemory(from: UnsafeRawPointer(ipArea.baseAddress!), byteCount: length)
                batch.prepare(socketRun, length: length, destination: destination)
                guard flushRing() else { stopped = true; break }
                socketRun += 1
            }
        }
        // After a short flush nothing is pending (each branch flushed the other run before stopping).
        if !stopped {
            _ = flushRing()
            _ = flushSocketRun()
        }
        return consumed
    }

    // MARK: Receiving

    /// Starts the receive thread, which delivers every packet the filter kept to `sink`. Throws if
    /// already receiving or if the thread cannot be created.
    public func startReceiving(_ sink: ReplySink) throws {
        try thread.withLock { (current: inout pthread_t?) throws(SystemError) in
            guard current == nil else {
                throw SystemError(operation: "startReceiving (already receiving)", errno: EBUSY)
            }
            receiver.stop.store(false, ordering: .releasing)
            receiver.clearWake()
            let receiver = receiver
            current = try startThread("receive thread") { receiver.run(sink: sink) }.get()
        }
        Self.logger.debug("receive thread started")
    }

    /// Stops the receive thread (waking it from its poll) and waits for it to exit. Idempotent.
    public func stopReceiving() {
        let tid = thread.withLock { (current: inout pthread_t?) -> pthread_t? in
            defer { current = nil }
            return current
        }
        guard let tid else { return }
        receiver.stop.store(true, ordering: .releasing)
        receiver.wake()
        pthread_join(tid, nil)
    }

    // MARK: Counters

    /// Packets delivered, kernel ring drops (accumulated across PACKET_STATISTICS reads), packets sent
    /// and send errors.
    public var counters: TransportCounters {
        var counters = TransportCounters()
        counters.packetsReceived = receiver.packetsReceived.load(ordering: .relaxed)
        counters.packetsSent = packetsSent.load(ordering: .relaxed)
        counters.sendErrors = sendErrors.load(ordering: .relaxed)
        counters.packetsSentThroughRing = txRing?.framesSent.load(ordering: .relaxed) ?? 0
        counters.packetsToSocketBesideRing = packetsToSocketBesideRing.load(ordering: .relaxed)
        counters.socketRefusedBesideRing = socketRefusedBesideRing.load(ordering: .relaxed)
        counters.ringFramesRefused = txRing?.framesRefused.load(ordering: .relaxed) ?? 0
        counters.firstSendErrno = firstSendErrno.load(ordering: .relaxed)
        counters.firstSendErrorOnRing = firstSendErrorOnRing.load(ordering: .relaxed)
        if let filter = filter.statistics() {
            counters.filterKept = filter.kept
            counters.filterDropped = filter.dropped
        }
        counters.ringDrops = ringDropsTotal.withLock { total in
            var packets: UInt64 = 0
            var drops: UInt64 = 0
            var frozen: UInt64 = 0
            if CFastTrace_packet_statistics(packetSocket.raw, &packets, &drops, &frozen) == 0 {
                total &+= drops
            }
            return total
        }
        return counters
    }

    /// Times the receive thread has gone to wait in poll (with nothing to read) since the transport
    /// opened: its wake-ups, each a context switch.
    public var receivePolls: UInt64 { receiver.polls.load(ordering: .relaxed) }

    /// What the eBPF filter kept and dropped so far; nil if its statistics map cannot be read.
    public var filterStatistics: ReplyFilterStatistics? { filter.statistics() }
}

/// State the receive thread owns while it runs: the ring (only that thread touches it between
/// `startReceiving` and the join in `stopReceiving`), the socket to poll, the stop flag, the count.
private final class Receiver: @unchecked Sendable {
    // @unchecked Sendable: `ring` is touched only by the receive thread while it runs; start and stop
    // are serialised by the transport's thread mutex and the join, so there is never a second user.
    private var ring: UnsafePacketRing
    private let socket: Int32
    /// An eventfd polled beside the socket: `wake` makes it readable, so a stop is seen at once
    /// instead of at the poll's timeout (which held every run's end up by up to 50 ms). -1 if the
    /// kernel refused one: stops then wait for the timeout, as before.
    private let wakeDescriptor: Int32
    let stop = Atomic<Bool>(false)
    let packetsReceived = Atomic<UInt64>(0)
    /// Times the thread went to wait in poll.
    let polls = Atomic<UInt64>(0)

    /// Poll timeout: how often the thread looks again when nothing arrives (and how promptly a stop
    /// is seen without the eventfd).
    private let pollTimeoutMilliseconds: Int32

    init(ring: consuming UnsafePacketRing, socket: Int32, pollTimeoutMilliseconds: Int32) {
        self.ring = ring
        self.socket = socket
        self.pollTimeoutMilliseconds = pollTimeoutMilliseconds
        wakeDescriptor = CFastTrace_wake_eventfd()
    }

    deinit { if wakeDescriptor >= 0 { close(wakeDescriptor) } }

    /// Wakes the thread from its poll (after `stop` is set).
    func wake() {
        guard wakeDescriptor >= 0 else { return }
        var one: UInt64 = 1
        _ = write(wakeDescriptor, &one, MemoryLayout<UInt64>.size)
    }

    /// Empties the eventfd, so that a stop's wake does not end the next start's polls early (a
    /// transport can receive again after a stop).
    func clearWake() {
        guard wakeDescriptor >= 0 else { return }
        var count: UInt64 = 0
        _ = read(wakeDescriptor, &count, MemoryLayout<UInt64>.size)  // EAGAIN when already empty
    }

    /// Ends the ring's mapping (the thread has been joined; nothing drains it again).
    func unmapRing() { ring.unmap() }

    func run(sink: ReplySink) {
        let maxBlocks = ring.geometry.blockCount
        // A packet can sit in the block the kernel is still filling until that block retires: up to
        // about two retire timeouts. Allow that, plus 1 ms for packets stamped on other CPUs.
        let inFlightNanos = UInt64(2 * ring.geometry.retireTimeoutMilliseconds + 1) * 1_000_000
        let clock = SystemClock()
        var offsets = ClockOffset.Tracker(SystemClock.bracketedOffset())
        while !stop.load(ordering: .acquiring) {
            var newest: UInt64 = 0
            // The ring stamps packets on CLOCK_REALTIME; the engine runs on CLOCK_MONOTONIC. Convert
            // with the clocks' offset as read now (kept from earlier readings unless the wall clock was
            // stepped: `ClockOffset.Tracker`): a step skews only packets stamped before the step and read
            // after it, instead of every deadline in flight.
            offsets.update(SystemClock.bracketedOffset())
            let offset = offsets.offset
            let delivered = ring.drain(maxBlocks: maxBlocks) { bytes, realtime in
                let nanos = UInt64(bitPattern: Int64(bitPattern: realtime) &- offset)
                sink.handleReply(bytes, timestampNanos: nanos)
                newest = max(newest, nanos)
            }
            if delivered > 0 {
                packetsReceived.add(UInt64(delivered), ordering: .relaxed)
                if newest > 1_000_000 { sink.receivedThrough(newest - 1_000_000) }
                continue
            }
            if ring.hasReadyBlock { continue }  // a block of zero packets (retired empty)
            // Nothing ready: everything stamped before the oldest packet that could still be waiting in
            // an unretired block has been delivered.
            sink.receivedThrough(clock.stampNow() - inFlightNanos)
            var pfds = (pollfd(fd: socket, events: Int16(POLLIN | POLLERR), revents: 0),
                        pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0))
            polls.add(1, ordering: .relaxed)
            // EINTR: loop and poll again. (A negative descriptor is skipped by poll.)
            _ = withUnsafeMutablePointer(to: &pfds) {
                $0.withMemoryRebound(to: pollfd.self, capacity: 2) { poll($0, 2, pollTimeoutMilliseconds) }
            }
        }
        // Deliver what is already in ready blocks, so counts read after stop include it.
        offsets.update(SystemClock.bracketedOffset())
        let finalOffset = offsets.offset
        let delivered = ring.drain(maxBlocks: ring.geometry.blockCount) { bytes, realtime in
            sink.handleReply(bytes, timestampNanos: UInt64(bitPattern: Int64(bitPattern: realtime) &- finalOffset))
        }
        packetsReceived.add(UInt64(delivered), ordering: .relaxed)
    }
}

/// Preallocated send state: packet buffers, iovecs, destinations and mmsghdrs for one batch, wired
/// together once so `send` allocates nothing.
private final class SendBatch {
    let buffers: UnsafeMutableRawPointer
    let iovecs: UnsafeMutablePointer<iovec>
    /// One sockaddr_in6-sized slot per message: a sockaddr_in or a sockaddr_in6, as `families` says.
    let addresses: UnsafeMutablePointer<sockaddr_in6>
    /// Per message: 4 or 6, the family of its destination (and so the socket it goes through).
    let families: UnsafeMutablePointer<UInt8>
    let messages: UnsafeMutablePointer<CFastTrace_mmsghdr>
    let count: Int
    let packetLength: Int

    init(count: Int, packetLength: Int) {
        self.count = count
        self.packetLength = packetLength
        buffers = .allocate(byteCount: count * packetLength, alignment: 16)
        buffers.initializeMemory(as: UInt8.self, repeating: 0, count: count * packetLength)
        iovecs = .allocate(capacity: count)
        addresses = .allocate(capacity: count)
        families = .allocate(capacity: count)
        families.initialize(repeating: 4, count: count)
        messages = .allocate(capacity: count)
        for i in 0..<count {
            iovecs[i] = iovec(iov_base: buffers + i * packetLength, iov_len: 0)
            addresses[i] = sockaddr_in6()
            var header = msghdr()
            header.msg_name = UnsafeMutableRawPointer(addresses + i)
            header.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            header.msg_iov = iovecs + i
            header.msg_iovlen = 1
            messages[i] = CFastTrace_mmsghdr(msg_hdr: header, msg_len: 0)
        }
    }

    /// The buffer for packet `i`.
    func packet(_ i: Int) -> UnsafeMutableRawBufferPointer {
        // SAFETY: i < count, so the slice lies inside the allocation of count * packetLength bytes.
        UnsafeMutableRawBufferPointer(start: buffers + i * packetLength, count: packetLength)
    }

    /// Sets the length and destination of packet `i`.
    func prepare(_ i: Int, length: Int, destination address: IPAddress) {
        // SAFETY: i < count; the arrays were allocated and initialised with `count` elements. The slot is
        // a sockaddr_in6, large and aligned enough for a sockaddr_in.
        iovecs[i].iov_len = length
        if let destination = address.ipv4 {
            UnsafeMutableRawPointer(addresses + i).withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                $0.pointee.sin_family = sa_family_t(AF_INET)
                $0.pointee.sin_port = 0
                $0.pointee.sin_addr.s_addr = destination.value.bigEndian
            }
            messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            families[i] = 4
        } else {
            addresses[i].sin6_family = sa_family_t(AF_INET6)
            addresses[i].sin6_port = 0
            addresses[i].sin6_flowinfo = 0
            addresses[i].sin6_scope_id = 0
            withUnsafeMutableBytes(of: &addresses[i].sin6_addr) { address.write(into: $0) }
            messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
            families[i] = 6
        }
        messages[i].msg_len = 0
    }

    deinit {
        buffers.deallocate()
        iovecs.deallocate()
        addresses.deallocate()
        families.deallocate()
        messages.deallocate()
    }
}
