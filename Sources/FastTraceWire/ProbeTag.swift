// The identity a probe carries in the fields a reply quotes back, and the flow it is bound to. Defined
// here, beside the codec that writes them into a probe, because they are wire-format facts.

/// Which probe a reply belongs to: the in-flight trace slot, the TTL and the attempt at that TTL.
/// Carried explicitly (encrypted) in the probe's TCP sequence number, so a reply leads straight to its
/// probe's cell with no search. Which *occupant* of the slot sent it (the slot's epoch) and the flow are
/// not carried: they are bound by the keyed MAC (`ProbeTagCodec`), checked against the slot's occupant.
public struct ProbeTag: Hashable, Sendable, CustomStringConvertible {
    /// Number of trace slots a run can have (14 bits).
    public static let slotCount = 1 << 14
    /// Attempts per TTL a tag can name (3 bits).
    public static let attemptCount = 8

    /// Trace slot, `0..<slotCount`.
    public var slot: UInt16
    /// The probe's IP TTL (hop limit), 1...255.
    public var ttl: UInt8
    /// Attempt number at this TTL, `0..<attemptCount`.
    public var attempt: UInt8

    /// Makes a tag; the fields must lie in their ranges (checked).
    @inlinable public init(slot: UInt16, ttl: UInt8, attempt: UInt8) {
        precondition(Int(slot) < Self.slotCount && Int(attempt) < Self.attemptCount, "ProbeTag field out of range")
        self.slot = slot
        self.ttl = ttl
        self.attempt = attempt
    }

    /// Makes a tag from fields already known to be in range (they come out of fixed-width bit fields).
    @inlinable @inline(__always)
    init(uncheckedSlot slot: UInt16, ttl: UInt8, attempt: UInt8) {
        self.slot = slot
        self.ttl = ttl
        self.attempt = attempt
    }

    public var description: String { "slot \(slot) ttl \(ttl) #\(attempt)" }
}

/// The flow a probe belongs to, and which occupant of its slot sent it: what a reply must match. The
/// MAC of every probe covers all of it, so a reply verified against the slot's current occupant cannot
/// belong to another flow, or to an earlier occupant of the same slot.
public struct ProbeFlow: Hashable, Sendable {
    /// Number of distinct epochs (15 bits): how many times a slot is reused before an epoch repeats.
    public static let epochCount = 1 << 15

    /// Our source address.
    public var source: IPAddress
    /// The traced destination (before any NAT on the path).
    public var destination: IPAddress
    /// Our source port.
    public var sourcePort: UInt16
    /// The destination port.
    public var destinationPort: UInt16
    /// IP protocol number of the probe (6 for TCP).
    public var protocolNumber: UInt8
    /// The slot occupant's epoch, `0..<epochCount`: bumped each time the slot takes a new trace.
    public var epoch: UInt16

    /// A flow of either family (both addresses of one family).
    @inlinable
    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
        protocolNumber: UInt8 = 6, epoch: UInt16)
    {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.protocolNumber = protocolNumber
        self.epoch = epoch & UInt16(Self.epochCount - 1)
    }

    /// An IPv4 flow.
    @inlinable
    public init(source: IPv4Address, destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16,
        protocolNumber: UInt8 = 6, epoch: UInt16)
    {
        self.init(source: IPAddress(source), destination: IPAddress(destination), sourcePort: sourcePort,
            destinationPort: destinationPort, protocolNumber: protocolNumber, epoch: epoch)
    }
}
