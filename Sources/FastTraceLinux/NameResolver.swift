// Reverse names for hop addresses, looked up off the engine's thread: a small pool of resolver threads
// runs getnameinfo (which can block for seconds on a slow DNS server) while the engine keeps probing.
// The thread that writes output asks for names and polls for answers; it never blocks here except for
// the lock. The bookkeeping (cache, one lookup per address, bounded queue) is FastTraceCore's NameBook.

#if canImport(Glibc)
import Glibc
#endif
import FastTraceAnnotations
import FastTraceCore
import FastTraceWire

/// Looks hop addresses' names up on `threads` resolver threads, started at the first `ask`.
public final class NameResolver: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is in `book`/`started`/`stopped`, touched only with
    // `monitor` held; the threads get the object once, through `spawn`.

    /// Looks one address up (on a resolver thread); nil when it has no name.
    public typealias Lookup = @Sendable (IPAddress) -> String?

    /// Sizes of the resolver.
    public struct Limits: Sendable {
        /// Resolver threads: lookups in flight at once.
        public var threads = 8
        /// Answers cached (least recently used forgotten first). About 100 bytes each.
        public var cacheCapacity = 32_768
        /// Lookups waiting for a resolver thread; past this, a new address gets no name.
        public var queueCapacity = 4096
        public init() {}
    }

    private let monitor = Monitor()
    private var book: NameBook
    private var started = false
    private var stopped = false
    private let limits: Limits
    private let lookup: Lookup

    /// A resolver whose callers wait `waitNanos` for a name; `lookup` is `reverseName` unless a test
    /// gives another.
    public init(waitNanos: UInt64, limits: Limits = Limits(), lookup: @escaping Lookup = reverseName) {
        precondition(limits.threads >= 1)
        self.limits = limits
        self.lookup = lookup
        book = NameBook(cacheCapacity: limits.cacheCapacity, queueCapacity: limits.queueCapacity,
            waitNanos: waitNanos)
    }

    /// How long callers wait for a name.
    public var waitNanos: UInt64 { book.waitNanos }

    /// Asks for `address`'s name: the cached answer, or `.pending` while a lookup runs (started now if
    /// none is), or `.unavailable` when too many lookups are already waiting. Never blocks on a lookup.
    /// The first call starts the threads: they inherit the caller's network namespace (and
    /// capabilities), so call it from the thread that runs the engine.
    public func ask(_ address: IPAddress) -> NameBook.Answer {
        let now = SystemClock.read(CLOCK_MONOTONIC)
        let (answer, startThreads) = monitor.locked {
            let (answer, queued) = book.ask(address, now: now)
            let startThreads = queued && !started
            if startThreads { started = true }
            if queued { monitor.broadcast() }
            return (answer, startThreads)
        }
        if startThreads {
            for _ in 0..<limits.threads {
                // No thread: the lookups queued stay unanswered and their callers time out.
                do { try spawnDetachedThread("name resolver") { [self] in resolveLoop() } } catch { break }
            }
        }
        return answer
    }

    /// What is known of `address`'s name now (see `NameBook.peek`).
    public func peek(_ address: IPAddress) -> NameBook.Answer {
        monitor.locked { book.peek(address) }
    }

    /// Counters: lookups started, refused (queue full), abandoned (nobody waiting any more).
    public var counters: (started: Int, refused: Int, abandoned: Int) {
        monitor.locked { (book.started, book.refused, book.abandoned) }
    }

    /// Stops the threads once their current lookups return (a thread blocked in getnameinfo stays so
    /// until the resolver library gives up, or the process exits).
    public func stop() {
        monitor.locked {
            stopped = true
            monitor.broadcast()
        }
    }

    private func resolveLoop() {
        while true {
            let address: IPAddress? = monitor.locked {
                while !stopped {
                    if let next = book.nextLookup(now: SystemClock.read(CLOCK_MONOTONIC)) { return next }
                    monitor.wait()
                }
                return nil
            }
            guard let address else { return }
            let name = lookup(address)
            monitor.locked { book.finish(address, name: name) }
        }
    }
}

/// The name of `address` from the system's resolver (getnameinfo with NI_NAMEREQD: /etc/hosts, DNS,
/// as nsswitch.conf says), or nil when it has none or the lookup fails. Blocks; thread-safe.
@Sendable public func reverseName(_ address: IPAddress) -> String? {
    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    var storage = sockaddr_storage()
    let length: Int
    if let v4 = address.ipv4 {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = v4.value.bigEndian
        withUnsafeBytes(of: sin) { bytes in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
        }
        length = MemoryLayout<sockaddr_in>.size
    } else {
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &sin6.sin6_addr) { address.write(into: $0) }
        withUnsafeBytes(of: sin6) { bytes in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
        }
        length = MemoryLayout<sockaddr_in6>.size
    }
    let rc = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getnameinfo($0, socklen_t(length), &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
    }
    guard rc == 0 else { return nil }
    return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Reads the file at `path` in chunks of `chunkBytes`, handing each to `body` (on this thread) until the
/// end of the file, or until `body` returns false (it has seen enough: a file that is not a table).
public func readFileChunks(path: String, chunkBytes: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) -> Bool)
    throws(SystemError)
{
    let fd = OwnedDescriptor(try syscallBlocking("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) })
    var buffer = [UInt8](repeating: 0, count: chunkBytes)
    while true {
        let count = try buffer.withUnsafeMutableBytes { bytes in
            Result { () throws(SystemError) in
                try syscallBlocking("read(\(path))") { read(fd.raw, bytes.baseAddress, bytes.count) }
            }
        }.get()
        if count == 0 { return }
        guard buffer.withUnsafeBytes({ body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }) else { return }
    }
}
