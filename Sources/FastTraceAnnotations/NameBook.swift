// The bookkeeping of reverse name lookups for hop addresses, without the threads: a bounded LRU cache
// of answers, one lookup per address however many traces ask (deduplication), a bounded queue of
// lookups waiting for a resolver thread, and abandonment of queued lookups nobody waits for any more.
// The resolver threads and getnameinfo live in FastTraceLinux (NameResolver); this part is pure and
// tested on its own.

import FastTraceCore
import FastTraceWire

/// A fixed-capacity map that forgets its least recently used entry when full. `get` and `set` are O(1):
/// a dictionary from key to slot, and a doubly linked list of slots in order of use.
public struct LRUCache<Key: Hashable, Value> {
    private var slots: [Key: Int32] = [:]
    private var keys: [Key] = []
    private var values: [Value] = []
    private var newer: [Int32] = []
    private var older: [Int32] = []
    /// Most and least recently used slots (-1 when empty).
    private var newest: Int32 = -1
    private var oldest: Int32 = -1

    /// Most entries kept.
    public let capacity: Int

    /// An empty cache keeping at most `capacity` (≥ 1) entries.
    public init(capacity: Int) {
        precondition(capacity >= 1 && capacity < Int(Int32.max))
        self.capacity = capacity
    }

    /// Entries held.
    public var count: Int { keys.count }

    /// The value for `key`, marking it most recently used.
    public mutating func get(_ key: Key) -> Value? {
        guard let slot = slots[key] else { return nil }
        touch(slot)
        return values[Int(slot)]
    }

    /// The value for `key` without changing the order of use.
    public func peek(_ key: Key) -> Value? {
        slots[key].map { values[Int($0)] }
    }

    /// Stores `value` for `key` as most recently used; forgets the least recently used entry if full.
    public mutating func set(_ key: Key, _ value: Value) {
        if let slot = slots[key] {
            values[Int(slot)] = value
            touch(slot)
            return
        }
        let slot: Int32
        if keys.count < capacity {
            slot = Int32(keys.count)
            keys.append(key)
            values.append(value)
            newer.append(-1)
            older.append(-1)
        } else {
            slot = oldest
            unlink(slot)
            slots[keys[Int(slot)]] = nil
            keys[Int(slot)] = key
            values[Int(slot)] = value
        }
        slots[key] = slot
        linkNewest(slot)
    }

    private mutating func touch(_ slot: Int32) {
        guard slot != newest else { return }
        unlink(slot)
        linkNewest(slot)
    }

    private mutating func unlink(_ slot: Int32) {
        let n = newer[Int(slot)], o = older[Int(slot)]
        if n >= 0 { older[Int(n)] = o } else { newest = o }
        if o >= 0 { newer[Int(o)] = n } else { oldest = n }
        newer[Int(slot)] = -1
        older[Int(slot)] = -1
    }

    private mutating func linkNewest(_ slot: Int32) {
        older[Int(slot)] = newest
        newer[Int(slot)] = -1
        if newest >= 0 { newer[Int(newest)] = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}

/// The state of reverse lookups: answers (a name, or none) in an LRU cache, lookups pending (queued or
/// running) at most once per address, and a bounded queue for the resolver threads.
///
/// Not thread-safe by itself: `NameResolver` holds it under its lock. Times are CLOCK_MONOTONIC ns.
public struct NameBook {
    /// What is known of an address's name.
    public enum Answer: Equatable, Sendable {
        /// Looked up: the name, or nil when the address has none (or the lookup failed).
        case known(String?)
        /// A lookup is queued or running.
        case pending
        /// Not known and not being looked up (the queue was full, or the address was never asked for).
        case unavailable
    }

    private var cache: LRUCache<IPAddress, String?>
    /// Addresses with a lookup queued or running, and when a caller last asked for each.
    private var pending: [IPAddress: UInt64] = [:]
    private var queue: BoundedQueue<IPAddress>
    /// How long a caller waits for a name; a queued lookup nobody has asked for in this long is dropped.
    public let waitNanos: UInt64

    /// Lookups refused because the queue was full.
    public private(set) var refused = 0
    /// Queued lookups dropped before they ran because every caller had stopped waiting.
    public private(set) var abandoned = 0
    /// Lookups handed to resolvers.
    public private(set) var started = 0

    /// Answers for at most `cacheCapacity` addresses; at most `queueCapacity` lookups waiting for a
    /// resolver; callers wait `waitNanos` for an answer.
    public init(cacheCapacity: Int, queueCapacity: Int, waitNanos: UInt64) {
        cache = LRUCache(capacity: cacheCapacity)
        queue = BoundedQueue(capacity: queueCapacity)
        self.waitNanos = waitNanos
    }

    /// Asks for `address`'s name at `now`: the answer if cached, else starts a lookup (one per address:
    /// a lookup already pending is joined) and answers `.pending`, or `.unavailable` if the queue is full.
    /// Returns whether a new lookup was queued (a resolver should be woken).
    public mutating func ask(_ address: IPAddress, now: UInt64) -> (answer: Answer, queued: Bool) {
        if let name = cache.get(address) { return (.known(name), false) }
        if pending[address] != nil {
            pending[address] = now
            return (.pending, false)
        }
        guard queue.push(address) else {
            refused += 1
            return (.unavailable, false)
        }
        pending[address] = now
        return (.pending, true)
    }

    /// What is known of `address` now, without asking for it.
    public func peek(_ address: IPAddress) -> Answer {
        if let name = cache.peek(address) { return .known(name) }
        return pending[address] != nil ? .pending : .unavailable
    }

    /// The next address for a resolver to look up, skipping (and forgetting) those nobody has asked for
    /// within `waitNanos`: their callers have moved on, and a slow resolver must not fall ever further
    /// behind on stale work.
    public mutating func nextLookup(now: UInt64) -> IPAddress? {
        while let address = queue.pop() {
            guard let asked = pending[address] else { continue }
            if now &- asked > waitNanos {
                pending[address] = nil
                abandoned += 1
                continue
            }
            started += 1
            return address
        }
        return nil
    }

    /// True when lookups are queued for resolvers.
    public var hasQueuedLookups: Bool { !queue.isEmpty }

    /// Records the result of a lookup started by `nextLookup`: `name`, or nil for an address without one.
    public mutating func finish(_ address: IPAddress, name: String?) {
        pending[address] = nil
        cache.set(address, name)
    }

    /// Answers cached.
    public var cachedCount: Int { cache.count }
}
