// The two small parts that decide *when* the engine may do something: the run-wide token bucket
// (`--rate`) and the slot pool, which hands slots out oldest-freed first and only once they have rested
// long enough that no reply to their last occupant can still be on its way.

/// Probes per second across the whole run: a token bucket on the monotonic clock.
struct TokenBucket {
    /// Tokens per second.
    let rate: Double
    /// Most tokens that can build up (a burst).
    let capacity: Double
    private(set) var tokens: Double = 1
    private var lastRefill: UInt64

    init(rate: Int, capacity: Double, now: UInt64) {
        self.rate = Double(rate)
        self.capacity = max(1, capacity)
        lastRefill = now
    }

    /// Adds the tokens earned since the last refill.
    mutating func refill(now: UInt64) {
        guard now > lastRefill else { return }
        tokens = min(capacity, tokens + Double(now - lastRefill) * rate / 1e9)
        lastRefill = now
    }

    /// Whole tokens available.
    var available: Int { Int(tokens) }

    /// Spends `count` tokens.
    mutating func spend(_ count: Int) { tokens -= Double(count) }

}

/// Slots for traces: first freed, first reused, and never before `quarantineNanos` have passed since
/// the slot was freed. A reply to a slot's last occupant that arrives while the slot rests is recognised
/// as late (the slot still names that occupant); the keyed MAC, which covers the occupant's epoch and
/// flow, catches any that arrive later still.
struct SlotPool {
    private var free: RingQueue<(slot: Int32, freedAt: UInt64)>
    let quarantineNanos: UInt64

    init(slots: Int, quarantineNanos: UInt64) {
        self.quarantineNanos = quarantineNanos
        free = RingQueue(capacity: slots)
        for slot in 0..<slots { free.push((Int32(slot), 0)) }
    }

    /// A slot that has rested long enough, or nil.
    mutating func take(now: UInt64) -> Int? {
        guard let head = free.peek(), head.freedAt == 0 || now >= head.freedAt + quarantineNanos else { return nil }
        _ = free.pop()
        return Int(head.slot)
    }

    /// When the oldest resting slot becomes usable (nil if none is resting).
    var nextAvailable: UInt64? { free.peek().map { $0.freedAt == 0 ? 0 : $0.freedAt + quarantineNanos } }

    /// Gives a slot back at `now`.
    mutating func give(_ slot: Int, now: UInt64) { free.push((Int32(slot), max(now, 1))) }
}
