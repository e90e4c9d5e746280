// The real transport: probes leave through a raw IPv4 socket (sendmmsg, one call per batch), replies
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
        /// Largest probe, in bytes, starting at the IPv4 header.
        public var maxPacketLength: Int
        /// Socket send buffer requested for the raw socket (SO_SNDBUFFORCE, else SO_SNDBUF, which the
        /// kernel caps at net.core.wmem_max).
        public var sendBufferBytes: Int
        /// Bytes of each reply the filter keeps (IPv4 + ICMP + quoted IPv4 + TCP fit in 256).
        public var snapLength: Int
        /// The IP protocol the probes carry (6 TCP, 17 UDP, 1 ICMP echo): the reply filter keeps that
        /// protocol's answers and ICMP errors quoting it.
        public var probeProtocol: UInt8 = 6

        /// Makes a configuration; the defaults suit tens of thousands of targets.
        public init(
            sourcePorts: ClosedRange<UInt16>,
            interfaceName: String? = nil,
            ring: RingGeometry = .default,
            maxBatch: Int = 64,
            maxPacketLength: Int = 1500,
            sendBufferBytes: Int = 4 * 1024 * 1024,
            snapLength: Int = 256
        ) {
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
    private let packetSocket: OwnedDescriptor
    private let filter: ReplyFilter
    private let batch: SendBatch
    private let receiver: Receiver
    private let thread = Mutex<pthread_t?>(nil)
    private let packetsSent = Atomic<UInt64>(0)
    private let sendErrors = Atomic<UInt64>(0)
    private let firstSendErrno = Atomic<Int32>(0)
    /// PACKET_STATISTICS resets on every read; the running total lives here.
    private let ringDropsTotal = Mutex<UInt64>(0)

    private static let logger = Logger(label: "fasttrace.linux")

    /// Opens the raw send socket and the filtered packet ring. Throws a `SystemError` naming the step
    /// that failed (with advice on capabilities when refused).
    public init(configuration: Configuration) throws(SystemError) {
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

        if let name = configuration.interfaceName {
            // As tcptraceroute does for -i (libnet binds its raw socket the same way): the kernel then
            // routes each probe through this interface only.
            try syscallBlocking("setsockopt(SO_BINDTODEVICE, \(name))") {
                name.withCString { setsockopt(sendSocket.raw, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0))) }
            }
        }

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
        try syscallBlocking("bind(AF_PACKET, ETH_P_IP, \(configuration.interfaceName ?? "any interface"))") {
            CFastTrace_packet_bind(fd, CFastTrace_ETH_P_IP(), interfaceIndex)
        }

        self.sendSocket = sendSocket
        self.packetSocket = packetSocket
        self.filter = filter
        self.receiver = Receiver(ring: ring, socket: fd)
        self.batch = SendBatch(count: configuration.maxBatch, packetLength: configuration.maxPacketLength)
        logger.debug(
            "transport open",
            metadata: [
                "sourcePorts": "\(configuration.sourcePorts)",
                "interface": "\(configuration.interfaceName ?? "any")",
                "ring": "\(configuration.ring.blockCount)x\(configuration.ring.blockSize)B",
                "retireMs": "\(configuration.ring.retireTimeoutMilliseconds)",
            ])
    }

    deinit {
        stopReceiving()
    }

    // MARK: Sending

    /// Fills up to `maxBatch` packets into preallocated buffers and sends them with one `sendmmsg`
    /// (more only if the kernel takes part of the batch). Returns how many packets were consumed: sent,
    /// or dropped with a hard error (counted in `sendErrors`; the engine sees them as lost). Stops at
    /// the first EAGAIN or ENOBUFS: the rest were not sent and may be retried.
    public func send(
        count: Int,
        fill: (Int, UnsafeMutableRawBufferPointer) -> (length: Int, destination: IPAddress)
    ) throws -> Int {
        precondition(count >= 0 && count <= maxBatch, "send(count:) exceeds maxBatch")
        guard count > 0 else { return 0 }
        let batch = self.batch
        for i in 0..<count {
            let buffer = batch.packet(i)
            let (length, destination) = fill(i, buffer)
            precondition(length >= 20 && length <= buffer.count, "probe length out of range")
            batch.prepare(i, length: length, destination: destination)
        }
        var consumed = 0
        var sent = 0
        var errors = 0
        // Each round either sends ≥ 1 message, skips one failed message, or stops; EINTR is bounded.
        var interrupts = 0
        while consumed < count {
            let rc = CFastTrace_sendmmsg(
                sendSocket.raw, batch.messages + consumed, UInt32(count - consumed), Int32(MSG_DONTWAIT))
            if rc > 0 {
                consumed += Int(rc)
                sent += Int(rc)
                continue
            }
            let code = errno
            if code == EINTR && interrupts < 100 {
                interrupts += 1
                continue
            }
            if code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS || code == EINTR { break }
            if code == EBADF || code == EFAULT {
                preconditionFailure("sendmmsg failed with \(SystemError.errnoText(code)): a bug in fasttrace")
            }
            // A per-packet refusal (EPERM from a firewall, ENETUNREACH, EMSGSIZE…): skip that packet.
            consumed += 1
            errors += 1
            _ = firstSendErrno.compareExchange(expected: 0, desired: code, ordering: .relaxed)
        }
        if sent > 0 { packetsSent.add(UInt64(sent), ordering: .relaxed) }
        if errors > 0 { sendErrors.add(UInt64(errors), ordering: .relaxed) }
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
            let context = Unmanaged.passRetained(ReceiveContext(receiver: receiver, sink: sink))
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                // SAFETY: `raw` is the retained ReceiveContext passed below; taken exactly once here.
                let context = Unmanaged<ReceiveContext>.fromOpaque(raw!).takeRetainedValue()
                context.receiver.run(sink: context.sink)
                return nil
            }, context.toOpaque())
            guard rc == 0 else {
                context.release()
                throw SystemError(operation: "pthread_create(receive thread)", errno: rc)
            }
            current = tid
        }
        Self.logger.debug("receive thread started")
    }

    /// Stops the receive thread and waits for it to exit (within one poll timeout, ~50 ms). Idempotent.
    public func stopReceiving() {
        let tid = thread.withLock { (current: inout pthread_t?) -> pthread_t? in
            defer { current = nil }
            return current
        }
        guard let tid else { return }
        receiver.stop.store(true, ordering: .releasing)
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
        counters.firstSendErrno = firstSendErrno.load(ordering: .relaxed)
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
    let stop = Atomic<Bool>(false)
    let packetsReceived = Atomic<UInt64>(0)

    /// Poll timeout: how promptly `stopReceiving` is honoured when no packets arrive.
    static let pollTimeoutMilliseconds: Int32 = 50

    init(ring: consuming UnsafePacketRing, socket: Int32) {
        self.ring = ring
        self.socket = socket
    }

    func run(sink: ReplySink) {
        let maxBlocks = ring.geometry.blockCount
        // A packet can sit in the block the kernel is still filling until that block retires: up to
        // about two retire timeouts. Allow that, plus 1 ms for packets stamped on other CPUs.
        let inFlightNanos = UInt64(2 * ring.geometry.retireTimeoutMilliseconds + 1) * 1_000_000
        let clock = SystemClock()
        while !stop.load(ordering: .acquiring) {
            var newest: UInt64 = 0
            // The ring stamps packets on CLOCK_REALTIME; the engine runs on CLOCK_MONOTONIC. Convert
            // with the clocks' offset read now: a wall-clock step skews only packets stamped before the
            // step and read after it, instead of every deadline in flight.
            let offset = SystemClock.realtimeMinusMonotonic()
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
            var pfd = pollfd(fd: socket, events: Int16(POLLIN | POLLERR), revents: 0)
            _ = poll(&pfd, 1, Self.pollTimeoutMilliseconds)  // EINTR: loop and poll again
        }
        // Deliver what is already in ready blocks, so counts read after stop include it.
        let finalOffset = SystemClock.realtimeMinusMonotonic()
        let delivered = ring.drain(maxBlocks: ring.geometry.blockCount) { bytes, realtime in
            sink.handleReply(bytes, timestampNanos: UInt64(bitPattern: Int64(bitPattern: realtime) &- finalOffset))
        }
        packetsReceived.add(UInt64(delivered), ordering: .relaxed)
    }
}

/// What the receive thread is started with.
private final class ReceiveContext: @unchecked Sendable {
    // @unchecked Sendable: handed to exactly one new thread, never touched by the creator after.
    let receiver: Receiver
    let sink: ReplySink
    init(receiver: Receiver, sink: ReplySink) {
        self.receiver = receiver
        self.sink = sink
    }
}

/// Preallocated send state: packet buffers, iovecs, destinations and mmsghdrs for one batch, wired
/// together once so `send` allocates nothing.
private final class SendBatch {
    let buffers: UnsafeMutableRawPointer
    let iovecs: UnsafeMutablePointer<iovec>
    let addresses: UnsafeMutablePointer<sockaddr_in>
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
        messages = .allocate(capacity: count)
        for i in 0..<count {
            iovecs[i] = iovec(iov_base: buffers + i * packetLength, iov_len: 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            addresses[i] = address
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
        // The raw socket is IPv4 (IPPROTO_RAW); targets of the other family are refused before any
        // trace starts, so none reaches the send path.
        guard let destination = address.ipv4 else { preconditionFailure("IPv6 destination on the IPv4 send socket") }
        // SAFETY: i < count; the arrays were allocated and initialised with `count` elements.
        iovecs[i].iov_len = length
        addresses[i].sin_addr.s_addr = destination.value.bigEndian
        messages[i].msg_len = 0
    }

    deinit {
        buffers.deallocate()
        iovecs.deallocate()
        addresses.deallocate()
        messages.deallocate()
    }
}
