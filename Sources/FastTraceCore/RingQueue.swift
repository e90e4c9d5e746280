// A growable FIFO ring for the scheduler's queues (ready traces, timeouts, retries, re-asks). It grows
// by doubling while a run warms up and then never allocates again.

/// A growable FIFO ring (amortised growth only; no allocation in steady state).
struct RingQueue<Element> {
    private var storage: [Element?]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        var size = 16
        while size < capacity { size <<= 1 }
        storage = Array(repeating: nil, count: size)
    }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head + count) & (storage.count - 1)] = element
        count += 1
    }

    func peek() -> Element? { count == 0 ? nil : storage[head] }

    mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) & (storage.count - 1)
        count -= 1
        return element
    }

    private mutating func grow() {
        var bigger: [Element?] = Array(repeating: nil, count: storage.count * 2)
        for i in 0..<count { bigger[i] = storage[(head + i) & (storage.count - 1)] }
        storage = bigger
        head = 0
    }
}
