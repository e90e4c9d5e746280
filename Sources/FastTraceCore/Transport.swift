// The seam between the engine and the world. The engine (scheduler + dispatcher) talks only to these
// protocols; FastTraceLinux implements them over the kernel, `SimulatedNetwork` over an in-process
// model for deterministic tests.

import FastTraceWire

/// Receives raw reply packets. Called on the transport's receive thread (for the Linux transport a
/// dedicated thread, never Swift's cooperative pool), one packet at a time, with no allocation.
public protocol ReplySink: AnyObject, Sendable {
    /// One captured packet starting at its IPv4 header, and the kernel's receive timestamp in
    /// nanoseconds on the same clock as `EngineClock.now()`. The bytes are valid only during the call.
    func handleReply(_ packet: UnsafeRawBufferPointer, timestampNanos: UInt64)

    /// Every packet the kernel stamped before `timestampNanos` has now been handed to `handleReply`.
    /// Transports call this as they catch up (at least whenever they find nothing left to read), so
    /// the engine can declare a probe lost only once its deadline is behind this mark: a reply judged
    /// by its kernel timestamp, however late user space got to it.
    func receivedThrough(_ timestampNanos: UInt64)
}

/// Sends probes and delivers replies.
public protocol ProbeTransport: AnyObject {
    /// The largest number of packets one `send` call takes.
    var maxBatch: Int { get }
    /// The largest packet, in bytes, `send` can carry.
    var maxPacketLength: Int { get }

    /// Sends `count` (≤ `maxBatch`) packets. `fill(i, buffer)` writes packet `i` (starting at its IP
    /// header) into `buffer` (at least `maxPacketLength` bytes) and returns its length and destination
    /// (of either family: a transport refuses a family it has no socket for).
    /// Returns how many were consumed: handed to the network, or refused for good by the kernel (a probe
    /// over the route's MTU, a local firewall), each of which is named by calling `refused(i)` before
    /// `send` returns. The rest were not sent (e.g. the socket buffer is full) and the caller may retry
    /// them. A refused probe never left: no answer can come for it, and its silence says nothing.
    func send(
        count: Int,
        fill: (Int, UnsafeMutableRawBufferPointer) -> (length: Int, destination: IPAddress),
        refused: (Int) -> Void
    ) throws -> Int

    /// Starts delivering replies to `sink`. The Linux transport starts its receive thread here.
    func startReceiving(_ sink: ReplySink) throws

    /// Stops receiving; returns after the receive thread has exited. Idempotent.
    func stopReceiving()

    /// Counters the transport keeps (ring packets, kernel drops, send errors).
    var counters: TransportCounters { get }
}

extension ProbeTransport {
    /// `send(count:fill:refused:)` for a caller that does not need to know which probes were refused.
    public func send(
        count: Int,
        fill: (Int, UnsafeMutableRawBufferPointer) -> (length: Int, destination: IPAddress)
    ) throws -> Int {
        try send(count: count, fill: fill, refused: { _ in })
    }
}

/// What a transport counted. Read after `stopReceiving()` for exact values.
public struct TransportCounters: Sendable, Equatable {
    /// Packets the receive path handed to the sink.
    public var packetsReceived: UInt64 = 0
    /// Packets the kernel dropped because the ring was full (`PACKET_STATISTICS.tp_drops`).
    public var ringDrops: UInt64 = 0
    /// Packets the kernel accepted for sending.
    public var packetsSent: UInt64 = 0
    /// Packets the kernel refused for good (other than "would block"): EMSGSIZE for a probe larger
    /// than the route's MTU, EPERM from a local firewall, ENETUNREACH… and on the transmit ring frames
    /// it refused as malformed (`ringFramesRefused`, counted here too). The engine counted them as sent
    /// (their probes can get no answer); the run says so.
    public var sendErrors: UInt64 = 0
    /// The errno of the first of them (0: none).
    public var firstSendErrno: Int32 = 0
    /// Whether the first of them was refused on the transmit ring (its kick), not by `sendmmsg`.
    public var firstSendErrorOnRing = false
    /// Of `packetsSent`, those that left through a transmit ring (the Linux transport's PACKET_TX_RING)
    /// rather than a socket.
    public var packetsSentThroughRing: UInt64 = 0
    /// In a run with a transmit ring, the probes handed to the raw socket beside it instead (next hop not
    /// resolved yet, a route the ring does not follow, over the MTU), sent or refused there.
    public var packetsToSocketBesideRing: UInt64 = 0
    /// Of `packetsToSocketBesideRing`, those the socket refused (counted in `sendErrors` too).
    public var socketRefusedBesideRing: UInt64 = 0
    /// Transmit-ring frames the kernel refused as malformed (TP_STATUS_WRONG_FORMAT).
    public var ringFramesRefused: UInt64 = 0
    /// Packets the kernel's reply filter passed to the receive ring and dropped, summed over CPUs since it
    /// was attached (the Linux transport's eBPF `ft_stats` map); nil where there is no such filter or its
    /// counters cannot be read. What it dropped never reached user space.
    public var filterKept: UInt64?
    /// See `filterKept`.
    public var filterDropped: UInt64?
    public init() {}
}

/// The engine's notion of time. Deadlines and pacing run on a monotonic clock, which a step of the wall
/// clock cannot stall or fast-forward; send stamps are taken on the clock the transport delivers reply
/// timestamps on (the Linux transport converts the ring's CLOCK_REALTIME stamps to CLOCK_MONOTONIC),
/// so an RTT is one clock minus itself.
public protocol EngineClock: AnyObject {
    /// Now on the monotonic clock, in nanoseconds (CLOCK_MONOTONIC; virtual time in the simulator).
    func now() -> UInt64
    /// Now on the reply-timestamp clock, in nanoseconds: what a probe's send time is stamped with.
    func stampNow() -> UInt64
    /// Waits until monotonic `deadline` (or a little earlier, or not at all if it has passed). The
    /// simulator advances virtual time here and delivers replies that fall due.
    func sleep(until deadline: UInt64)
}

/// What a request source has for the engine when asked.
public enum SourcePoll: Sendable, Equatable {
    /// The next trace to run.
    case request(TraceRequest)
    /// Nothing ready now (a line still being read, a name still resolving); ask again later.
    case pending
    /// No more requests, ever.
    case finished
}

/// Where the engine takes new traces from. `poll` runs on the scheduler thread and must not block:
/// slow work (reading a long list, resolving names) belongs on another thread, behind `.pending`.
public protocol TraceRequestSource {
    /// The next request, `.pending` when none is ready yet, or `.finished`.
    mutating func poll() -> SourcePoll
    /// When a source that answered `.pending` will next have a request (engine clock, ns), if it knows:
    /// a schedule between rounds. The engine, with nothing in flight, sleeps until then (or its idle
    /// tick) instead of asking every poll interval. nil: unknown, ask again soon.
    var nextDueNanos: UInt64? { get }
    /// True for a source that asks for targets again (rounds, continuous mode): its `.pending` while
    /// traces are in flight is those traces' doing (a target's next round waits for its last one), so
    /// the run's time then goes to replies and timeouts, not to the list.
    var repeatsTargets: Bool { get }
}

extension TraceRequestSource {
    /// Unknown: a list still being read may have its next target at any moment.
    public var nextDueNanos: UInt64? { nil }
    public var repeatsTargets: Bool { false }
}

/// A source over an iterator whose `next()` is cheap (an in-memory list): never pending.
public struct IteratorRequestSource<Base: IteratorProtocol<TraceRequest>>: TraceRequestSource {
    /// The wrapped iterator.
    public var iterator: Base
    public init(_ iterator: Base) { self.iterator = iterator }
    public mutating func poll() -> SourcePoll { iterator.next().map { .request($0) } ?? .finished }
}
