// An in-process network for deterministic engine tests without root: it reads the probes the engine
// writes, decides what a modelled path would answer (time exceeded, silence, unreachable, SYN-ACK,
// RST, loss, ECMP by 5-tuple), builds real reply bytes and delivers them on a virtual clock. It speaks
// every probe kind (TCP, UDP, ICMP echo) in both families: the model's IPv4 addresses stand for IPv6
// ones in 2001:db8:ff00::/96 (`SimulatedNetwork.ipv6`), so every scenario runs over IPv6 too, answered
// with ICMPv6 and IPv6 replies.

import FastTraceCore
import FastTraceWire

/// One router position on a simulated path.
public enum SimulatedHop: Sendable, Equatable {
    /// True for the kinds that answer destination unreachable.
    public var isUnreachable: Bool {
        switch self {
        case .unreachable, .rateLimitedUnreachable: true
        default: false
        }
    }

    /// A router answering time exceeded from this address.
    case router(IPv4Address)
    /// A router that forwards but never sends ICMP.
    case silent
    /// Equal-cost routers: which one a probe meets depends on a hash of its 5-tuple.
    case ecmp([IPv4Address])
    /// A router that answers destination unreachable (with code) and forwards nothing. Like a router with
    /// no route, it answers every probe that reaches it, whatever TTL the probe has left (its quote says
    /// how much).
    case unreachable(IPv4Address, code: UInt8)
    /// The same, limiting its ICMP errors to us with a token bucket as `rateLimited` does.
    case rateLimitedUnreachable(IPv4Address, code: UInt8, perSecond: Double, burst: Double)
    /// A router that answers time exceeded, but limits its ICMP errors to us with a token bucket
    /// (`perSecond` refill, `burst` deep) shared by every path it is on, as Linux does per destination.
    case rateLimited(IPv4Address, perSecond: Double, burst: Double)
}

/// What the destination does with a SYN.
public enum SimulatedDestination: Sendable, Equatable {
    /// Answers SYN-ACK on these ports, RST on all others.
    case listening(ports: Set<UInt16>)
    /// Never answers (or is behind a filter dropping everything).
    case blackHole
}

/// A path to a destination.
public struct SimulatedPath: Sendable, Equatable {
    /// Routers at TTL 1, 2, …
    public var hops: [SimulatedHop]
    /// The destination's behaviour; it answers at TTL `hops.count + 1`.
    public var destination: SimulatedDestination
    /// Probability (0...1) that a probe is lost on the way, per probe.
    public var loss: Double
    /// The loss applies to probes sent with at least this TTL: a lossy link between router
    /// `lossFromTTL − 1` and router `lossFromTTL` (1: from the first link on, every probe).
    public var lossFromTTL = 1
    /// A NAT at TTL `afterTTL` rewrites the destination to `to` (over IPv6 to `to`'s IPv6 form: a NAT66);
    /// routers past it quote the rewritten address (a NAT that does not fix up ICMP quotes), the
    /// destination still answers as the target.
    public var dnat: (afterTTL: Int, to: IPv4Address)?
    /// A middlebox at TTL `afterTTL` rewrites every probe's IPv4 ID to `to` (some NATs and scrubbers
    /// do): routers past it quote an ID the prober never sent.
    public var ipIDRewrite: (afterTTL: Int, to: UInt16)?
    /// The destination's ICMP errors (a UDP port unreachable) are limited as a Linux host limits them:
    /// a token bucket per `host` (one host may answer for many addresses, as the lab's do).
    public var destinationICMPLimit: (host: IPv4Address, perSecond: Double, burst: Double)?

    public init(hops: [SimulatedHop], destination: SimulatedDestination, loss: Double = 0,
        dnat: (afterTTL: Int, to: IPv4Address)? = nil, ipIDRewrite: (afterTTL: Int, to: UInt16)? = nil)
    {
        self.hops = hops
        self.destination = destination
        self.loss = loss
        self.dnat = dnat
        self.ipIDRewrite = ipIDRewrite
    }

    public static func == (a: SimulatedPath, b: SimulatedPath) -> Bool {
        a.hops == b.hops && a.destination == b.destination && a.loss == b.loss && a.lossFromTTL == b.lossFromTTL
            && a.dnat?.afterTTL == b.dnat?.afterTTL && a.dnat?.to == b.dnat?.to
            && a.ipIDRewrite?.afterTTL == b.ipIDRewrite?.afterTTL && a.ipIDRewrite?.to == b.ipIDRewrite?.to
    }
}

/// The simulated network, acting as both transport and clock.
public final class SimulatedNetwork: ProbeTransport, EngineClock {
    /// One probe as the network saw it.
    public struct SentProbe: Sendable, Equatable {
        public var source: IPv4Address, destination: IPv4Address
        public var sourcePort: UInt16, destinationPort: UInt16
        public var sequence: UInt32
        public var ttl: UInt8
        public var time: UInt64
        /// TCP flags and acknowledgement number (SYN probes: SYN, 0).
        public var flags: UInt8 = TCPLayout.syn
        public var acknowledgement: UInt32 = 0
        /// The IP protocol (6 TCP, 17 UDP). For UDP, `sequence` is the checksum (high half) and the
        /// IPv4 ID (low half): the word the probe carries.
        public var protocolNumber: UInt8 = 6
        /// The probe's family. Over IPv6 `source` and `destination` are the model's IPv4 addresses the
        /// IPv6 ones stand for (their low 32 bits), and ICMP echo's protocol reads 1 as over IPv4.
        public var family: IPFamily = .v4
    }

    /// The IPv6 address a model address stands for: 2001:db8:ff00::a.b.c.d.
    public static func ipv6(_ address: IPv4Address) -> IPAddress {
        IPAddress(high: 0x2001_0db8_ff00_0000, low: UInt64(address.value))
    }

    /// The model address an IPv6 address stands for (its low 32 bits).
    static func model(_ address: IPAddress) -> IPv4Address { IPv4Address(UInt32(truncatingIfNeeded: address.low)) }

    private let paths: (IPv4Address) -> SimulatedPath?
    private var sink: ReplySink?
    private var clockNanos: UInt64
    private var pendingReplies: [(at: UInt64, order: Int, bytes: [UInt8])] = []
    private var order = 0
    private var random: UInt64
    /// Nanoseconds each hop adds to a round trip.
    public var perHopDelayNanos: UInt64 = 200_000
    /// Every probe sent, in order.
    public private(set) var sent: [SentProbe] = []
    /// The transport's counters.
    public private(set) var counters = TransportCounters()
    /// Limit on probes one `send` accepts (to exercise partial sends); nil means all.
    public var acceptLimit: Int?
    /// The MTU of the route to a destination (nil: any length): a longer probe is refused for good, as Linux
    /// refuses a probe over the route's MTU with EMSGSIZE; it is counted as a send error, named to the
    /// engine, and never reaches the network.
    public var mtu: (IPv4Address) -> Int? = { _ in nil }
    /// Extra delay for the reply to a probe (nil: none): late replies, across slot reuse.
    public var extraReplyDelay: ((SentProbe) -> UInt64?)?
    /// Called once per probe sent, after it is recorded: tests inject replies or step clocks here.
    public var onSend: ((SentProbe) -> Void)?
    /// ICMP token buckets of rate-limited routers, by address: (tokens, last refill).
    private var icmpBuckets: [IPv4Address: (tokens: Double, last: UInt64)] = [:]
    /// When set, every probe's IPv4 ID is rewritten to this value on the way out (as some stacks and
    /// middleboxes do), so ICMP errors quote an ID the prober never sent.
    public var rewrittenIPID: UInt16?
    /// Routers whose time exceeded carries an MPLS label stack in RFC 4884 extensions (RFC 4950): the
    /// entries, top first, as they are on the wire.
    public var mplsStacks: [IPv4Address: [UInt32]] = [:]
    /// ICMP errors rate-limited routers did not send.
    public private(set) var rateLimitedDrops = 0
    /// Tokens a rate-limited router's bucket holds when first probed: its burst (nil, a rested router),
    /// or fewer (0: a cold start, the budget already spent by earlier traffic to us).
    public var initialICMPTokens: Double?
    /// Another prober on this host, sharing our address and so every rate-limited router's budget to us:
    /// it takes `perSecond` of each router's refill (first) until the clock reaches `untilNanos`.
    public var competingICMP: (perSecond: Double, untilNanos: UInt64)?

    public let maxBatch: Int
    public let maxPacketLength = 1500
    private var scratch: [UInt8]

    /// Makes a network whose paths come from `paths` (nil: no route, nothing answers). `seed` fixes
    /// the loss pattern.
    public init(startNanos: UInt64 = 1_700_000_000_000_000_000, seed: UInt64 = 1, maxBatch: Int = 64,
        paths: @escaping (IPv4Address) -> SimulatedPath?)
    {
        self.paths = paths
        self.clockNanos = startNanos
        self.random = seed | 1
        self.maxBatch = maxBatch
        self.scratch = Array(repeating: 0, count: 1500)
    }

    // MARK: EngineClock

    public func now() -> UInt64 { clockNanos }

    /// The wall clock's offset from the monotonic one, in ns. Tests step it to model a wall-clock step
    /// (NTP, an operator). Like the kernel's ring, the network stamps replies on the wall clock as they
    /// arrive, and like the Linux receive thread it converts them back to the monotonic clock with the
    /// offset in force when the receiver reads them.
    public private(set) var wallOffsetNanos: Int64 = 0
    /// When the wall clock was last stepped (monotonic ns) and its offset before that step.
    private var stepAt: UInt64 = 0
    private var offsetBeforeStep: Int64 = 0

    /// Steps the wall clock by `nanos` now.
    public func stepWallClock(by nanos: Int64) {
        offsetBeforeStep = wallOffsetNanos
        stepAt = clockNanos
        wallOffsetNanos &+= nanos
    }

    public func stampNow() -> UInt64 { clockNanos }

    public func sleep(until deadline: UInt64) {
        if deadline > clockNanos { clockNanos = deadline }
        deliverDue()
    }

    // MARK: ProbeTransport

    public func send(count: Int, fill: (Int, UnsafeMutableRawBufferPointer) -> (length: Int, destination: IPAddress),
        refused: (Int) -> Void) throws -> Int
    {
        let accepted = min(count, acceptLimit ?? count)
        for i in 0..<accepted {
            let (length, destination) = scratch.withUnsafeMutableBytes { fill(i, $0) }
            if let mtu = mtu(destination.ipv4 ?? Self.model(destination)), length > mtu {
                counters.sendErrors += 1
                if counters.firstSendErrno == 0 { counters.firstSendErrno = 90 }  // EMSGSIZE on Linux
                refused(i)
                continue
            }
            counters.packetsSent += 1
            respond(to: Array(scratch[0..<length]))
        }
        return accepted
    }

    public func startReceiving(_ sink: ReplySink) throws { self.sink = sink }

    public func stopReceiving() { sink = nil }

    /// Delivers arbitrary bytes to the receiver at `at` (for forged, malformed or duplicate replies).
    public func inject(_ bytes: [UInt8], at: UInt64) {
        order += 1
        pendingReplies.append((at, order, bytes))
    }

    // MARK: the model

    private func nextRandom() -> Double {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return Double(random >> 11) / Double(1 << 53)
    }

    private func respond(to packet: [UInt8]) {
        let v6 = packet.first.map { $0 >> 4 == 6 } ?? false
        let parsed: SentProbe? = packet.withUnsafeBytes { (bytes) -> SentProbe? in
            if v6 { return Self.parseProbe6(bytes, time: clockNanos) }
            guard let ip = IPv4HeaderView(bytes), ip.version == 4 else { return nil }
            if ip.proto == 17, ip.payload.count >= 8 {
                let udp = ip.payload
                func word(_ at: Int) -> UInt16 { UInt16(udp[at]) << 8 | UInt16(udp[at + 1]) }
                return SentProbe(source: ip.source, destination: ip.destination,
                    sourcePort: word(0), destinationPort: word(2),
                    sequence: UInt32(word(6)) << 16 | UInt32(ip.identification), ttl: ip.ttl,
                    time: clockNanos, flags: 0, protocolNumber: 17)
            }
            if ip.proto == 1, ip.payload.count >= 8, ip.payload[0] == 8 {
                let echo = ip.payload
                func word(_ at: Int) -> UInt16 { UInt16(echo[at]) << 8 | UInt16(echo[at + 1]) }
                return SentProbe(source: ip.source, destination: ip.destination, sourcePort: word(4),
                    destinationPort: 0, sequence: UInt32(word(6)) << 16 | UInt32(ip.identification), ttl: ip.ttl,
                    time: clockNanos, flags: 0, protocolNumber: 1)
            }
            guard ip.proto == 6, let tcp = TCPHeaderView(ip.payload) else { return nil }
            return SentProbe(source: ip.source, destination: ip.destination, sourcePort: tcp.sourcePort,
                destinationPort: tcp.destinationPort, sequence: tcp.sequence, ttl: ip.ttl, time: clockNanos,
                flags: tcp.flags, acknowledgement: tcp.acknowledgement)
        }
        guard let probe = parsed else { return }
        sent.append(probe)
        onSend?(probe)
        guard let path = paths(probe.destination) else { return }
        let ttl = Int(probe.ttl)
        if path.loss > 0 && ttl >= path.lossFromTTL && nextRandom() < path.loss { return }
        let delay = perHopDelayNanos * UInt64(min(ttl, path.hops.count + 1))
        let original = packet
        var packet = packet
        // (IPv4 IDs are IPv4's: an IPv6 probe has no ID. A NAT rewrites either family.)
        if let rewrittenIPID, !v6 {
            packet.withUnsafeMutableBytes { IPv4HeaderWriter($0).setIdentification(rewrittenIPID) }
        }
        if let rewrite = path.ipIDRewrite, ttl > rewrite.afterTTL, !v6 {
            packet.withUnsafeMutableBytes { IPv4HeaderWriter($0).setIdentification(rewrite.to) }
        }
        if let dnat = path.dnat, ttl > dnat.afterTTL {
            // What routers past the NAT see (and quote): the rewritten destination. Over IPv6 (a NAT66 as
            // Linux's nftables does it, not RFC 6296's checksum-neutral NPTv6) the model address's IPv6
            // form: it differs from the original in the same low 32 bits as the model addresses do.
            if v6 {
                packet.withUnsafeMutableBytes {
                    Self.ipv6(dnat.to).write(into: UnsafeMutableRawBufferPointer(rebasing: $0[24..<40]))
                }
            } else {
                packet.withUnsafeMutableBytes { IPv4HeaderWriter($0).setDestination(dnat.to) }
            }
            // A UDP checksum covers the destination: the NAT adjusts it (RFC 1624 eqn. 3, as Linux does;
            // 0, "no checksum", stays 0).
            if probe.protocolNumber == 17 {
                let ihl = v6 ? 40 : Int(packet[0] & 0x0F) * 4
                let old = UInt16(packet[ihl + 6]) << 8 | UInt16(packet[ihl + 7])
                if old != 0 {
                    var sum = UInt32(~old)
                    for (from, to) in [(probe.destination.value >> 16, dnat.to.value >> 16),
                        (probe.destination.value & 0xFFFF, dnat.to.value & 0xFFFF)]
                    {
                        sum += UInt32(~UInt16(from)) + to
                    }
                    while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
                    var new = ~UInt16(sum)
                    if new == 0 { new = 0xFFFF }
                    packet[ihl + 6] = UInt8(new >> 8)
                    packet[ihl + 7] = UInt8(new & 0xFF)
                }
            }
        }
        // A router quotes the probe as it got it: with `ttl - hop + 1` left.
        func quote(atHop hop: Int) -> [UInt8] {
            var quoted = packet
            if v6 {
                quoted[7] = UInt8(ttl - hop + 1)
            } else {
                quoted.withUnsafeMutableBytes { IPv4HeaderWriter($0).setTTL(UInt8(ttl - hop + 1)) }
            }
            return quoted
        }
        // An ICMP error in the probe's family: ICMPv6 for IPv6 (time exceeded 3/0; unreachables 1 with
        // the code that means the same: no route 0, prohibited 1, address 3, port 4).
        func error(type: UInt8, code: UInt8, from: IPv4Address, quoting quoted: [UInt8], mpls: [UInt32] = []) -> [UInt8] {
            guard v6 else { return Self.icmpError(type: type, code: code, from: from, quoting: quoted, mpls: mpls) }
            let code6: UInt8 = switch code {
            case 3: 4
            case 1: 3
            case 9, 10, 13: 1
            default: 0
            }
            return type == 11 ? Self.icmp6Error(type: 3, code: 0, from: Self.ipv6(from), quoting: quoted)
                : Self.icmp6Error(type: 1, code: code6, from: Self.ipv6(from), quoting: quoted)
        }
        // The first unreachable router the probe reaches answers it, whatever TTL it has left.
        if let u = path.hops.prefix(ttl).firstIndex(where: \.isUnreachable) {
            let hop = u + 1
            let reply: (IPv4Address, UInt8)?
            switch path.hops[u] {
            case .unreachable(let address, let code): reply = (address, code)
            case .rateLimitedUnreachable(let address, let code, let perSecond, let burst):
                reply = takeICMPToken(address, perSecond: perSecond, burst: burst) ? (address, code) : nil
            default: reply = nil
            }
            if let (address, code) = reply {
                schedule(error(type: 3, code: code, from: address, quoting: quote(atHop: hop)),
                    delay: perHopDelayNanos * UInt64(hop) + (extraReplyDelay?(probe) ?? 0))
            }
            return
        }
        if ttl <= path.hops.count {
            switch path.hops[ttl - 1] {
            case .router(let address):
                schedule(error(type: 11, code: 0, from: address, quoting: quote(atHop: ttl),
                    mpls: mplsStacks[address] ?? []), delay: delay + (extraReplyDelay?(probe) ?? 0))
            case .silent, .unreachable, .rateLimitedUnreachable:
                break
            case .ecmp(let routers):
                var h = UInt64(probe.source.value) &* 0x9E37_79B9_7F4A_7C15
                h ^= UInt64(probe.destination.value) &* 0xC2B2_AE3D_27D4_EB4F
                h ^= UInt64(probe.sourcePort) << 16 | UInt64(probe.destinationPort)
                h = (h ^ (h >> 29)) &* 0xBF58_476D_1CE4_E5B9
                let router = routers[Int((h >> 32) % UInt64(routers.count))]
                schedule(error(type: 11, code: 0, from: router, quoting: quote(atHop: ttl)), delay: delay)
            case .rateLimited(let address, let perSecond, let burst):
                if takeICMPToken(address, perSecond: perSecond, burst: burst) {
                    schedule(error(type: 11, code: 0, from: address, quoting: quote(atHop: ttl)),
                        delay: delay + (extraReplyDelay?(probe) ?? 0))
                }
            }
            return
        }
        switch path.destination {
        case .blackHole: return
        case .listening where probe.protocolNumber == 1:
            // A host answers an echo request with an echo reply returning its data.
            schedule(v6 ? Self.echoReply6(to: original) : Self.echoReply(to: original), delay: delay)
        case .listening(let ports) where probe.protocolNumber == 17:
            // A UDP service answers on its port (echoing the request, as DNS and NTP do); elsewhere the
            // host says port unreachable, quoting the probe as it got it.
            // Behind a NAT the answer goes back through its connection tracking (from the address we
            // sent to); its ICMP is not tracked (as in the lab), so the error comes from the host's own
            // address and quotes the rewritten probe.
            if ports.contains(probe.destinationPort) {
                schedule(v6 ? Self.udpServiceAnswer6(to: original) : Self.udpServiceAnswer(to: original), delay: delay)
            } else {
                let host = path.dnat.map { ttl > $0.afterTTL ? $0.to : probe.destination } ?? probe.destination
                if let limit = path.destinationICMPLimit,
                    !takeICMPToken(limit.host, perSecond: limit.perSecond, burst: limit.burst)
                {
                    return
                }
                schedule(error(type: 3, code: 3, from: host, quoting: quote(atHop: path.hops.count + 1)),
                    delay: delay)
            }
        case .listening(_) where probe.flags & TCPLayout.syn == 0:
            // An ACK with no connection behind it: the host resets it, open port or not, taking the RST's
            // sequence number from the segment's acknowledgement (RFC 9293 3.10.7.1; no ACK flag), as Linux does.
            schedule(Self.tcpReply(from: probe.destination, to: probe.source, sourcePort: probe.destinationPort,
                destinationPort: probe.sourcePort, acknowledgement: 0, flags: TCPLayout.rst,
                sequence: probe.acknowledgement, v6: v6), delay: delay)
        case .listening(let ports):
            let open = ports.contains(probe.destinationPort)
            // A SYN-ACK acknowledges the SYN only (data on a SYN is not accepted without TCP Fast Open); a
            // RST acknowledges everything the segment carried (RFC 9293 3.10.7.1), as Linux does.
            let payload = UInt32(packet.count - (v6 ? 60 : 40))
            schedule(Self.tcpReply(from: probe.destination, to: probe.source, sourcePort: probe.destinationPort,
                destinationPort: probe.sourcePort, acknowledgement: probe.sequence &+ 1 &+ (open ? 0 : payload),
                flags: open ? TCPLayout.syn | TCPLayout.ack : TCPLayout.rst | TCPLayout.ack, v6: v6), delay: delay)
        }
    }

    /// Takes one token from a rate-limited router's ICMP bucket (shared by every path it is on); false,
    /// counted as a rate-limited drop, when it is empty.
    private func takeICMPToken(_ address: IPv4Address, perSecond: Double, burst: Double) -> Bool {
        var bucket = icmpBuckets[address] ?? (initialICMPTokens.map { min($0, burst) } ?? burst, clockNanos)
        var refill = Double(clockNanos - bucket.last) * perSecond / 1e9
        if let (taken, until) = competingICMP, bucket.last < until {
            refill = max(0, refill - Double(min(clockNanos, until) - bucket.last) * taken / 1e9)
        }
        bucket.tokens = min(burst, bucket.tokens + refill)
        bucket.last = clockNanos
        defer { icmpBuckets[address] = bucket }
        guard bucket.tokens >= 1 else {
            rateLimitedDrops += 1
            return false
        }
        bucket.tokens -= 1
        return true
    }

    private func schedule(_ bytes: [UInt8], delay: UInt64) {
        order += 1
        pendingReplies.append((clockNanos + delay, order, bytes))
    }

    /// How long after its timestamp a reply reaches the receiver (user-space lag; timestamps stay true).
    public var receiveLagNanos: UInt64 = 0

    private func deliverDue() {
        defer { sink?.receivedThrough(clockNanos >= receiveLagNanos ? clockNanos - receiveLagNanos : 0) }
        guard !pendingReplies.isEmpty else { return }
        pendingReplies.sort { ($0.at, $0.order) < ($1.at, $1.order) }
        var delivered = 0
        for reply in pendingReplies {
            guard reply.at + receiveLagNanos <= clockNanos else { break }
            counters.packetsReceived += 1
            // Stamped on the wall clock when it arrived, converted with today's offset when read.
            let stamped = Int64(bitPattern: reply.at) &+ (reply.at <= stepAt ? offsetBeforeStep : wallOffsetNanos)
            let converted = UInt64(bitPattern: stamped &- wallOffsetNanos)
            reply.bytes.withUnsafeBytes { sink?.handleReply($0, timestampNanos: converted) }
            delivered += 1
        }
        pendingReplies.removeFirst(delivered)
    }

    // MARK: reply bytes (also used by tests to forge and replay replies)

    /// An ICMP error from `from` quoting the IPv4 header and first 8 bytes of `probe`, as a router sends it.
    public static func icmpError(type: UInt8, code: UInt8, from: IPv4Address, quoting probe: [UInt8],
        mpls: [UInt32] = []) -> [UInt8]
    {
        if !mpls.isEmpty { return extendedICMPError(type: type, code: code, from: from, quoting: probe, mpls: mpls) }
        let quotedLength = min(probe.count, Int(probe[0] & 0x0F) * 4 + 8)
        let probeSource = probe.withUnsafeBytes { IPv4HeaderView($0)?.source } ?? .any
        var out = [UInt8](repeating: 0, count: 20 + 8 + quotedLength)
        out.withUnsafeMutableBytes { bytes in
            writeIPv4(bytes, total: bytes.count, protocol: 1, source: from, destination: probeSource)
            let icmp = ICMPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[20...]))
            icmp.setType(type)
            icmp.setCode(code)
            bytes[28...].copyBytes(from: probe[0..<quotedLength])
            icmp.updateChecksum()
        }
        return out
    }

    /// An ICMP error as RFC 4884 lays out one with extensions: the probe quoted and zero-padded to 128
    /// bytes, the length field set (32 words), then an extension structure (version 2, its checksum) with
    /// one MPLS label stack object (RFC 4950) of `mpls`.
    public static func extendedICMPError(type: UInt8, code: UInt8, from: IPv4Address, quoting probe: [UInt8],
        mpls: [UInt32]) -> [UInt8]
    {
        let probeSource = probe.withUnsafeBytes { IPv4HeaderView($0)?.source } ?? .any
        var ext: [UInt8] = [0x20, 0, 0, 0, UInt8((4 + 4 * mpls.count) >> 8), UInt8((4 + 4 * mpls.count) & 0xFF), 1, 1]
        for entry in mpls { ext += [UInt8(entry >> 24), UInt8(entry >> 16 & 0xFF), UInt8(entry >> 8 & 0xFF), UInt8(entry & 0xFF)] }
        let sum = ext.withUnsafeBytes { InternetChecksum.checksum($0) }
        ext[2] = UInt8(sum >> 8)
        ext[3] = UInt8(sum & 0xFF)
        var original = Array(probe.prefix(128))
        original += [UInt8](repeating: 0, count: 128 - original.count)
        var out = [UInt8](repeating: 0, count: 20 + 8) + original + ext
        out.withUnsafeMutableBytes { bytes in
            writeIPv4(bytes, total: bytes.count, protocol: 1, source: from, destination: probeSource)
            let icmp = ICMPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[20...]))
            icmp.setType(type)
            icmp.setCode(code)
            icmp.setRestOfHeader(32 << 16)  // length: 128 bytes of original datagram, in 32-bit words
            icmp.updateChecksum()
        }
        return out
    }

    /// A TCP reply (SYN-ACK, RST+ACK, or a RST answering an ACK with `sequence`) as a destination sends it.
    public static func tcpReply(from: IPv4Address, to: IPv4Address, sourcePort: UInt16, destinationPort: UInt16,
        acknowledgement: UInt32, flags: UInt8, sequence: UInt32? = nil, v6: Bool = false) -> [UInt8]
    {
        if v6 {
            var tcp = [UInt8](repeating: 0, count: 20)
            tcp.withUnsafeMutableBytes { bytes in
                let w = TCPHeaderWriter(bytes)
                w.setSourcePort(sourcePort)
                w.setDestinationPort(destinationPort)
                w.setSequence(sequence ?? (flags & TCPLayout.syn != 0 ? 0x1234_5678 : 0))
                w.setAcknowledgement(acknowledgement)
                w.setHeaderLength(20)
                w.setFlags(flags)
                w.setWindow(65535)
            }
            return packet6(next: 6, from: ipv6(from), to: ipv6(to), upper: tcp, checksumAt: 16)
        }
        var out = [UInt8](repeating: 0, count: 40)
        out.withUnsafeMutableBytes { bytes in
            writeIPv4(bytes, total: 40, protocol: 6, source: from, destination: to)
            let tcp = TCPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[20...]))
            tcp.setSourcePort(sourcePort)
            tcp.setDestinationPort(destinationPort)
            tcp.setSequence(sequence ?? (flags & TCPLayout.syn != 0 ? 0x1234_5678 : 0))
            tcp.setAcknowledgement(acknowledgement)
            tcp.setHeaderLength(20)
            tcp.setFlags(flags)
            tcp.setWindow(65535)
            tcp.updateChecksum(source: from, destination: to)
        }
        return out
    }

    /// A host's echo reply to the echo request `probe` (a whole IPv4 + ICMP packet): the same identifier,
    /// sequence number and data, type 0, the checksum recomputed.
    public static func echoReply(to probe: [UInt8]) -> [UInt8] {
        let ihl = Int(probe[0] & 0x0F) * 4
        let source = probe.withUnsafeBytes { IPv4HeaderView($0)!.source }
        let destination = probe.withUnsafeBytes { IPv4HeaderView($0)!.destination }
        let message = Array(probe[ihl...])
        var out = [UInt8](repeating: 0, count: 20 + message.count)
        out.withUnsafeMutableBytes { bytes in
            writeIPv4(bytes, total: bytes.count, protocol: 1, source: destination, destination: source)
            bytes[20...].copyBytes(from: message)
            let icmp = ICMPHeaderWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[20...]))
            icmp.setType(0)
            icmp.updateChecksum()
        }
        return out
    }

    /// A UDP service's answer to `probe` (a whole IPv4 + UDP packet): a DNS answer echoes the query's
    /// header and question with QR set (and NXDOMAIN), an NTP server copies the transmit timestamp into
    /// the origin timestamp; any other port echoes the payload back (as the echo service does).
    public static func udpServiceAnswer(to probe: [UInt8]) -> [UInt8] {
        let ihl = Int(probe[0] & 0x0F) * 4
        let source = probe.withUnsafeBytes { IPv4HeaderView($0)!.source }
        let destination = probe.withUnsafeBytes { IPv4HeaderView($0)!.destination }
        let sport = UInt16(probe[ihl]) << 8 | UInt16(probe[ihl + 1])
        let dport = UInt16(probe[ihl + 2]) << 8 | UInt16(probe[ihl + 3])
        var data = Array(probe[(ihl + 8)...])
        switch dport {
        case 53 where data.count >= 12:
            data[2] |= 0x80  // QR
            data[3] = 0x83  // RA, NXDOMAIN
        case 123 where data.count >= 48:
            var answer = [UInt8](repeating: 0, count: 48)
            answer[0] = 0x24  // version 4, mode 4 (server)
            answer[1] = 2
            answer.replaceSubrange(24..<32, with: data[40..<48])
            data = answer
        default:
            break
        }
        var out = [UInt8](repeating: 0, count: 28 + data.count)
        out.withUnsafeMutableBytes { bytes in
            writeIPv4(bytes, total: bytes.count, protocol: 17, source: destination, destination: source)
            for (offset, value) in [(20, dport), (22, sport), (24, UInt16(8 + data.count))] {
                bytes[offset] = UInt8(value >> 8)
                bytes[offset + 1] = UInt8(value & 0xFF)
            }
            bytes[28...].copyBytes(from: data)
        }
        return out
    }

    // MARK: IPv6

    /// An IPv6 probe as the network sees it (model addresses: the low 32 bits), or nil.
    static func parseProbe6(_ bytes: UnsafeRawBufferPointer, time: UInt64) -> SentProbe? {
        guard let ip = IPv6HeaderView(bytes) else { return nil }
        let l4 = ip.payload
        guard l4.count >= 8 else { return nil }
        func word(_ at: Int) -> UInt16 { UInt16(l4[at]) << 8 | UInt16(l4[at + 1]) }
        func word32(_ at: Int) -> UInt32 { UInt32(word(at)) << 16 | UInt32(word(at + 2)) }
        let source = model(ip.source), destination = model(ip.destination)
        switch bytes[6] {
        case 17:
            return SentProbe(source: source, destination: destination, sourcePort: word(0), destinationPort: word(2),
                sequence: UInt32(word(6)) << 16, ttl: ip.hopLimit, time: time, flags: 0, protocolNumber: 17, family: .v6)
        case 58 where l4[0] == IPv6Layout.typeEchoRequest:
            return SentProbe(source: source, destination: destination, sourcePort: word(4), destinationPort: 0,
                sequence: word32(4), ttl: ip.hopLimit, time: time, flags: 0, protocolNumber: 1, family: .v6)
        case 6 where l4.count >= 20:
            return SentProbe(source: source, destination: destination, sourcePort: word(0), destinationPort: word(2),
                sequence: word32(4), ttl: ip.hopLimit, time: time, flags: l4[13], acknowledgement: word32(8), family: .v6)
        default:
            return nil
        }
    }

    /// An IPv6 packet from `from` to `to` carrying `upper` (next header `next`), its checksum (at
    /// `checksumAt` in `upper`) computed over the pseudo-header as RFC 8200 §8.1 says.
    static func packet6(next: UInt8, from: IPAddress, to: IPAddress, upper: [UInt8], checksumAt: Int) -> [UInt8] {
        var upper = upper
        upper[checksumAt] = 0
        upper[checksumAt + 1] = 0
        let pseudo = InternetChecksum.pseudoHeaderSum(source: from, destination: to, protocol: next, length: upper.count)
        var sum = upper.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.partialSum($0, initial: pseudo)) }
        if next == 17 && sum == 0 { sum = 0xFFFF }
        upper[checksumAt] = UInt8(sum >> 8)
        upper[checksumAt + 1] = UInt8(sum & 0xFF)
        var header = [UInt8](repeating: 0, count: 40)
        header[0] = 0x60
        header[4] = UInt8(upper.count >> 8)
        header[5] = UInt8(upper.count & 0xFF)
        header[6] = next
        header[7] = 64
        header.withUnsafeMutableBytes { bytes in
            from.write(into: UnsafeMutableRawBufferPointer(rebasing: bytes[8..<24]))
            to.write(into: UnsafeMutableRawBufferPointer(rebasing: bytes[24..<40]))
        }
        return header + upper
    }

    /// An ICMPv6 error from `from` quoting as much of the IPv6 `probe` as RFC 4443 allows (1,232 bytes).
    public static func icmp6Error(type: UInt8, code: UInt8, from: IPAddress, quoting probe: [UInt8]) -> [UInt8] {
        let source = probe.withUnsafeBytes { IPv6HeaderView($0)?.source } ?? from
        return packet6(next: 58, from: from, to: source, upper: [type, code, 0, 0, 0, 0, 0, 0] + probe.prefix(1232),
            checksumAt: 2)
    }

    /// A host's echo reply to the IPv6 echo request `probe`: type 129, the rest of the message returned.
    public static func echoReply6(to probe: [UInt8]) -> [UInt8] {
        let (source, destination) = probe.withUnsafeBytes { (IPv6HeaderView($0)!.source, IPv6HeaderView($0)!.destination) }
        var message = Array(probe[40...])
        message[0] = IPv6Layout.typeEchoReply
        return packet6(next: 58, from: destination, to: source, upper: message, checksumAt: 2)
    }

    /// A UDP service's answer to the IPv6 `probe`, as `udpServiceAnswer` answers over IPv4.
    public static func udpServiceAnswer6(to probe: [UInt8]) -> [UInt8] {
        let (source, destination) = probe.withUnsafeBytes { (IPv6HeaderView($0)!.source, IPv6HeaderView($0)!.destination) }
        // The IPv4 answer to the same UDP message carries the data the service returns.
        let message = Array(probe[40...])
        var v4 = [UInt8](repeating: 0, count: 20)
        v4.withUnsafeMutableBytes {
            writeIPv4($0, total: 20 + message.count, protocol: 17, source: model(source), destination: model(destination))
        }
        let answer = udpServiceAnswer(to: v4 + message)
        var udp = Array(answer[20...])
        udp[4] = UInt8(udp.count >> 8)
        udp[5] = UInt8(udp.count & 0xFF)
        return packet6(next: 17, from: destination, to: source, upper: udp, checksumAt: 6)
    }

    private static func writeIPv4(_ bytes: UnsafeMutableRawBufferPointer, total: Int, protocol proto: UInt8,
        source: IPv4Address, destination: IPv4Address)
    {
        let ip = IPv4HeaderWriter(bytes)
        ip.setHeaderLength(20)
        ip.setTotalLength(UInt16(total))
        ip.setTTL(64)
        ip.setProtocol(proto)
        ip.setSource(source)
        ip.setDestination(destination)
        ip.updateChecksum()
    }
}
