// A target list read as a stream: a reader thread reads the file (or stdin) in chunks, parses it line
// by line and expands each line into trace requests; a small pool of resolver threads looks names up
// (getaddrinfo can take seconds) so no lookup ever runs on the scheduler thread. Requests reach the
// engine through a bounded queue (`TraceRequestSource.poll` never blocks; the reader blocks when the
// queue is full), so memory stays flat however long the list is.
//
// Order: requests come out in input order, except that a name's requests come out when its lookup
// finishes, so a slow name holds up nothing but itself.
// A line that cannot be used (malformed, IPv6, not UTF-8, an address no host has) is skipped and
// reported with its number, and the rest of the list goes on. A target listed again (also through a
// name or a prefix that holds it) is dropped and counted: each target × port is traced once.

#if canImport(Glibc)
import Glibc
#endif
import FastTraceAnnotations
import FastTraceCore
import FastTraceWire

/// Streams trace requests from a target list. `start()` starts the threads; the engine polls it.
public final class TargetStream: TraceRequestSource, @unchecked Sendable {
    // @unchecked Sendable: every mutable field is in `state`, touched only with `monitor` held; the
    // threads get the object once, through `start()`.

    /// Resolves a hostname (called on a resolver thread).
    public typealias Resolve = @Sendable (String) -> Result<IPAddress, ReasonError>
    /// The source address to probe a destination from, or why it cannot be probed (any thread).
    public typealias SourceFor = @Sendable (IPAddress) -> Result<IPAddress, ReasonError>

    /// Sizes of the pipeline.
    public struct Limits: Sendable {
        /// Requests (and skip notices) queued between the reader and the engine.
        public var queueCapacity = 4096
        /// Resolver threads: lookups in progress at once.
        public var resolverThreads = 4
        /// Names read but not yet being looked up; past this the reader waits.
        public var queuedNames = 64
        /// Bytes per read.
        public var chunkBytes = 64 * 1024
        public init() {}
    }

    /// Something for the scheduler thread to report: a line (or part of one) that was skipped.
    public struct Skip: Sendable, Equatable {
        /// What was left out.
        public enum Kind: Sendable, Equatable {
            /// A line that is not a target (malformed, IPv6, …): nothing of it is traced.
            case line
            /// Addresses that cannot be traced (no address for a name, no usable route).
            case targets
            /// Addresses listed before: traced once, where first listed.
            case duplicates
        }
        /// Line number in the list.
        public var line: Int
        /// Why, e.g. `198.19.99.0/24: no route to host for 256 of 256 addresses`.
        public var reason: String
        /// Addresses (traces per port) left out; 0 for a line that is not a target.
        public var count: Int
        /// What was left out.
        public var kind: Kind = .targets
    }

    private enum Item {
        case request(destination: IPAddress, port: UInt16, source: IPAddress, name: String?)
        case skip(Skip)
    }

    private struct NameJob {
        var line: Int
        var host: String
    }

    private struct State {
        var queue: BoundedQueue<Item>
        var names: BoundedQueue<NameJob>
        var resolving = 0
        var readerDone = false
        var cancelled = false
        var produced = 0
        var handedOut = 0
        var skipped = 0
        var linesSkipped = 0
        var duplicates = 0
        /// Target × ports left to other shards (`--shard`).
        var inOtherShards = 0
        var seen = SeenTargets()
        var readError: SystemError?
        /// Addresses the counting pass found (set when it is done), nil while it runs or when there is
        /// none (a pipe or terminal: the list can be read only once).
        var counted: Int?
        var counting = false
    }

    /// What the run knows of the list's total (requests: targets × ports).
    public enum Total: Sendable, Equatable {
        /// Everything is read and resolved: exactly this many.
        case exact(Int)
        /// The counting pass is done: this many, less whatever turns out to be a duplicate or cannot be
        /// traced (the count falls as the stream meets them).
        case expected(Int)
        /// A regular file being counted ahead of the stream (for a moment at the start of a long list).
        case counting
        /// A pipe or terminal: the list can be read only once, so the total is known only at its end.
        case unknown
    }

    /// File name as the user gave it (`-` for stdin), for messages.
    public let sourceName: String
    private let fd: Int32
    private let ownsDescriptor: Bool
    private let ports: [UInt16]
    private let maxPrefixAddresses: Int
    private let limits: Limits
    private let resolve: Resolve
    private let sourceFor: SourceFor
    private let deduplicate: Bool
    /// `--shard`: only the target × ports of this shard are traced; the others are left out before any
    /// route is looked up or duplicate noted, silently (another host traces them).
    private let shard: Shard?
    private let monitor = Monitor()
    private var state: State
    /// Called on the polling (scheduler) thread for every skipped line, in queue order.
    public var onSkip: (Skip) -> Void = { _ in }

    /// Opens `path` (`-` is standard input) for reading. Throws if it cannot be opened.
    /// With `deduplicate` false every line is traced as often as it is listed.
    public init(path: String, ports: [UInt16], maxPrefixAddresses: Int, limits: Limits = Limits(),
                deduplicate: Bool = true, shard: Shard? = nil, resolve: @escaping Resolve,
                sourceFor: @escaping SourceFor)
        throws(SystemError)
    {
        precondition(!ports.isEmpty && limits.resolverThreads >= 1)
        sourceName = path
        if path == "-" {
            fd = 0
            ownsDescriptor = false
        } else {
            let opened = try syscallBlocking("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) }
            // A directory opens fine and fails only at the first read: refuse it here, with the
            // other reasons a list cannot be read.
            var info = stat()
            if fstat(opened, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
                _ = close(opened)
                throw SystemError(operation: "open(\(path))", errno: EISDIR)
            }
            fd = opened
            ownsDescriptor = true
        }
        self.ports = ports
        self.maxPrefixAddresses = maxPrefixAddresses
        self.limits = limits
        self.resolve = resolve
        self.sourceFor = sourceFor
        self.deduplicate = deduplicate
        self.shard = shard
        state = State(queue: BoundedQueue(capacity: limits.queueCapacity),
                      names: BoundedQueue(capacity: limits.queuedNames))
    }

    deinit {
        if ownsDescriptor { _ = close(fd) }
    }

    /// Starts the reader and resolver threads (detached: `cancel()` stops them, or process exit does
    /// if one is blocked in a read of a pipe or in a lookup). Start them from a thread already in the
    /// right network namespace: they inherit it, and lookups open their sockets there.
    public func start() throws(SystemError) {
        // A regular file (also one on stdin, `< list`) is counted ahead on its own thread with `pread`,
        // which leaves the reader's file offset alone; a pipe or terminal cannot be read twice.
        var info = stat()
        let offset = lseek(fd, 0, SEEK_CUR)
        // A shard's share of the list is not known ahead (it is a keyed sample): its total stays unknown.
        if shard == nil && fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && offset >= 0 {
            monitor.locked { state.counting = true }
            try spawn { $0.countLoop(from: offset) }
        }
        try spawn { $0.readLoop() }
        for _ in 0..<limits.resolverThreads { try spawn { $0.resolveLoop() } }
    }

    /// Stops reading and resolving (after the run, or on an interrupt).
    public func cancel() {
        monitor.locked {
            state.cancelled = true
            monitor.broadcast()
        }
    }

    // MARK: what the run learns

    /// Requests handed out or queued so far.
    public var produced: Int { monitor.locked { state.produced } }
    /// Addresses skipped so far (no address for a name, no usable route).
    public var skipped: Int { monitor.locked { state.skipped } }
    /// Lines skipped so far because they are not targets (malformed, IPv6, not UTF-8, …).
    public var linesSkipped: Int { monitor.locked { state.linesSkipped } }
    /// Target × ports left out so far because they are in another shard (`--shard`).
    public var inOtherShards: Int { monitor.locked { state.inOtherShards } }
    /// Addresses dropped so far because they were listed before.
    public var duplicates: Int { monitor.locked { state.duplicates } }
    /// True when the duplicate check ran out of room (`SeenTargets.limit` addresses): later repeats of
    /// addresses it could not record were traced again.
    public var duplicateCheckFull: Bool { monitor.locked { state.seen.full } }
    /// The total number of requests once everything is read and resolved, else nil.
    public var total: Int? { monitor.locked { isComplete ? state.produced : nil } }
    /// The list's total as far as it is known (see `Total`).
    public var totalSoFar: Total {
        monitor.locked {
            if isComplete { return .exact(state.produced) }
            if let counted = state.counted {
                let left = (counted - state.skipped - state.duplicates) * ports.count
                return .expected(max(left, state.produced))
            }
            return state.counting ? .counting : .unknown
        }
    }
    /// A failed read of the list, if any.
    public var readError: SystemError? { monitor.locked { state.readError } }

    private var isComplete: Bool { state.readerDone && state.names.isEmpty && state.resolving == 0 }

    // MARK: the engine's side

    /// The next request, `.pending` while the reader or a lookup is behind, `.finished` when all is
    /// read, resolved and handed out (or cancelled). Never waits for I/O. Skips met on the way are
    /// reported through `onSkip` first.
    public func poll() -> SourcePoll {
        var skips: [Skip] = []
        let result: SourcePoll = monitor.locked {
            while true {
                guard let item = state.queue.pop() else {
                    return isComplete || state.cancelled ? .finished : .pending
                }
                // Producers blocked on a full queue sleep until it is half empty (see `push`).
                if state.queue.count == refillMark { monitor.broadcast() }
                switch item {
                case .skip(let skip): skips.append(skip)
                case .request(let destination, let port, let source, let name):
                    state.handedOut += 1
                    return .request(TraceRequest(index: state.handedOut - 1, destination: destination, port: port, source: source, name: name))
                }
            }
        }
        for skip in skips { onSkip(skip) }
        return result
    }

    // MARK: the counting thread

    /// Counts the list's targets ahead of the reader (see `TargetCounter`), one chunk at a time from
    /// `offset` (where the reader starts). A failed read ends the count without a total: the reader
    /// reports its own failure.
    private func countLoop(from offset: off_t) {
        var counter = TargetCounter(maxPrefixAddresses: maxPrefixAddresses)
        var buffer = [UInt8](repeating: 0, count: limits.chunkBytes)
        var position = offset
        var complete = false
        while !monitor.locked({ state.cancelled }) {
            let result = try? buffer.withUnsafeMutableBytes { bytes throws(SystemError) in
                try syscall("pread(\(sourceName))") { pread(fd, bytes.baseAddress, bytes.count, position) }
            }
            guard case .done(let count)? = result else { break }
            if count == 0 {
                counter.finish()
                complete = true
                break
            }
            buffer.withUnsafeBytes { counter.count(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            position += off_t(count)
        }
        monitor.locked {
            state.counting = false
            if complete { state.counted = counter.addresses }
        }
    }

    // MARK: the reader thread

    private func readLoop() {
        var splitter = LineSplitter()
        var buffer = [UInt8](repeating: 0, count: limits.chunkBytes)
        reading: while !monitor.locked({ state.cancelled }) {
            let count: Int
            do {
                let result = try buffer.withUnsafeMutableBytes { bytes throws(SystemError) in
                    try syscall("read(\(sourceName))") { read(fd, bytes.baseAddress, bytes.count) }
                }
                switch result {
                case .done(let n): count = n
                case .wouldBlock:  // a non-blocking stdin: wait until there is something to read
                    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    _ = Glibc.poll(&pfd, 1, 100)
                    continue reading
                }
            } catch {
                monitor.locked { state.readError = (error as? SystemError) ?? SystemError(operation: "read(\(sourceName))", errno: EIO) }
                break reading
            }
            if count == 0 {
                if let last = splitter.finish() { _ = handle(last) }
                break reading
            }
            let lines = buffer.withUnsafeBytes { splitter.lines(in: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            for line in lines where !handle(line) { break reading }
        }
        monitor.locked {
            state.readerDone = true
            monitor.broadcast()
        }
    }

    /// Parses and expands one line; false when reading must stop (cancelled).
    private func handle(_ line: InputLine) -> Bool {
        switch TargetParser.parseLine(line, maxPrefixAddresses: maxPrefixAddresses) {
        case .failure(let error):
            return push(.skip(Skip(line: line.number, reason: error.reason, count: 0, kind: .line)))
        case .success(nil):
            return true
        case .success(.address(let address)?):
            return emit(line: line.number, address: address, name: nil)
        case .success(.prefix(let base, let length)?):
            let size = 1 << (base.bitCount - length)
            let spec = TargetSpec.prefix(base, length: length)
            var skipped = 0, repeated = 0
            var reason: String?, firstSkip: (IPAddress, String)?, reasonsDiffer = false
            for offset in 0..<size {
                let address = base.advanced(by: UInt64(offset))
                let ports = portsInShard(address, name: nil)
                if ports.isEmpty { continue }
                if deduplicate && monitor.locked({ state.seen.contains(address) }) {
                    repeated += 1
                    continue
                }
                switch sourceFor(address) {
                case .success(let source):
                    for port in ports where !push(.request(destination: address, port: port, source: source, name: nil)) {
                        return false
                    }
                case .failure(let error):
                    skipped += 1
                    if reason == nil { (reason, firstSkip) = (error.reason, (address, error.reason)) }
                    reasonsDiffer = reasonsDiffer || error.reason != reason
                }
            }
            if deduplicate { monitor.locked { state.seen.insertPrefix(base, length: length) } }
            if repeated > 0 {
                let what = repeated == size ? "all \(size) addresses" : "\(repeated) of \(size) addresses"
                guard push(.skip(Skip(line: line.number, reason: "\(spec): \(what) listed before: traced once",
                    count: repeated, kind: .duplicates)))
                else { return false }
            }
            // One notice for the whole prefix, however many of its addresses cannot be traced.
            if skipped > 0, let reason, let firstSkip {
                let (address, first) = firstSkip
                let text = reasonsDiffer
                    ? "\(spec): \(skipped) of \(size) addresses cannot be traced, first \(address): \(first)"
                    : "\(spec): \(reason) for \(skipped) of \(size) addresses"
                return push(.skip(Skip(line: line.number, reason: text, count: skipped)))
            }
            return true
        case .success(.hostname(let host)?):
            return monitor.locked {
                while state.names.isFull && !state.cancelled { monitor.wait() }
                guard !state.cancelled else { return false }
                state.names.push(NameJob(line: line.number, host: host))
                monitor.broadcast()
                return true
            }
        }
    }

    /// Queues the requests for one address (all ports), or a skip if it cannot be probed, or a
    /// duplicate notice if it was listed before.
    private func emit(line: Int, address: IPAddress, name: String?) -> Bool {
        let ports = portsInShard(address, name: name)
        if ports.isEmpty { return true }
        if deduplicate && !monitor.locked({ state.seen.insert(address) }) {
            let what = name.map { "\($0) (\(address))" } ?? address.description
            return push(.skip(Skip(line: line, reason: "\(what): listed before: traced once", count: 1,
                kind: .duplicates)))
        }
        switch sourceFor(address) {
        case .success(let source):
            for port in ports where !push(.request(destination: address, port: port, source: source, name: name)) {
                return false
            }
            return true
        case .failure(let error):
            return push(.skip(Skip(line: line, reason: "\(address): \(error.reason)", count: 1)))
        }
    }

    /// The ports of `address` (a target named `name`, when a hostname line gave it) this run traces: all,
    /// or with `--shard` those of its shard (a name is sharded by the name, which every host reads alike).
    private func portsInShard(_ address: IPAddress, name: String?) -> [UInt16] {
        guard let shard else { return ports }
        let kept = ports.filter { port in
            name.map { shard.contains(name: $0, port: port) } ?? shard.contains(address, port: port)
        }
        if kept.count < ports.count { monitor.locked { state.inOtherShards += ports.count - kept.count } }
        return kept
    }

    /// The queue length at which the engine wakes producers waiting for room.
    private var refillMark: Int { state.queue.capacity / 2 }

    /// Puts an item on the queue; false if cancelled. A full queue makes the caller wait until it is
    /// half empty, not just until there is room for one: waking the reader (and, through the shared
    /// condition, the resolvers) for every request the engine takes cost five context switches per
    /// trace, more CPU than the trace's own probes at moderate rates.
    private func push(_ item: Item) -> Bool {
        monitor.locked {
            if state.queue.isFull {
                while state.queue.count > refillMark && !state.cancelled { monitor.wait() }
            }
            guard !state.cancelled else { return false }
            state.queue.push(item)
            switch item {
            case .request: state.produced += 1
            case .skip(let skip):
                switch skip.kind {
                case .line: state.linesSkipped += 1
                case .targets: state.skipped += skip.count
                case .duplicates: state.duplicates += skip.count
                }
            }
            return true
        }
    }

    // MARK: the resolver threads

    private func resolveLoop() {
        while true {
            let job: NameJob? = monitor.locked {
                while state.names.isEmpty && !state.readerDone && !state.cancelled { monitor.wait() }
                guard !state.cancelled, let job = state.names.pop() else { return nil }
                state.resolving += 1
                monitor.broadcast()  // room for the reader's next name
                return job
            }
            guard let job else { return }
            switch resolve(job.host) {
            case .success(let address): _ = emit(line: job.line, address: address, name: job.host)
            case .failure(let error): _ = push(.skip(Skip(line: job.line, reason: error.reason, count: 1, kind: .targets)))
            }
            monitor.locked {
                state.resolving -= 1
                monitor.broadcast()
            }
        }
    }

    private func spawn(_ body: @escaping @Sendable (TargetStream) -> Void) throws(SystemError) {
        try spawnDetachedThread("target reader") { body(self) }
    }
}

/// A mutex with one condition variable (pthread): `wait` sleeps until another thread `broadcast`s.
/// Every waiter re-checks its own condition, so one condition serves the reader, the resolvers and
/// the engine's side.
final class Monitor: @unchecked Sendable {
    // @unchecked Sendable: the pthread objects are made for sharing between threads.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        // SAFETY: freshly allocated, initialised once here, destroyed once in deinit.
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Runs `body` with the mutex held.
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Releases the mutex until woken, then holds it again. Call only inside `locked`.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Wakes every waiter. Call inside `locked`.
    func broadcast() { pthread_cond_broadcast(condition) }
}
