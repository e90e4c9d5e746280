// Errors from the kernel, and the one layer every syscall in this module goes through: it retries
// EINTR, turns EAGAIN into "would block", treats EBADF/EFAULT as programmer errors, and otherwise
// throws an error naming the operation, so a user reads what failed and not just "Operation not
// permitted".

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call (or libbpf / netlink operation): what was attempted and the errno it gave.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What failed, as the call and its most telling argument: `"setsockopt(PACKET_RX_RING)"`.
    public let operation: String
    /// The errno value.
    public let errno: Int32
    /// True when the operation needs privileges (raw and packet sockets, BPF), so EPERM and EACCES
    /// explain which capabilities are missing.
    public let needsPrivilege: Bool
    /// Extra text from the layer below (libbpf's warnings), if any.
    public let detail: String?

    /// Makes an error for `operation` failing with `errno`.
    public init(operation: String, errno: Int32, needsPrivilege: Bool = false, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.needsPrivilege = needsPrivilege
        self.detail = detail
    }

    /// The sentence shown when a privileged operation is refused: the capabilities this kernel wants
    /// (`Privileges.advice`).
    public static var privilegeAdvice: String { Privileges.advice }

    /// True for EPERM and EACCES.
    public var isPermissionDenied: Bool { errno == EPERM || errno == EACCES }

    /// `"socket(AF_PACKET) failed: Operation not permitted (EPERM): fasttrace needs CAP_NET_RAW ..."`.
    public var description: String {
        var text = "\(operation) failed: \(Self.errnoText(errno))"
        if needsPrivilege && isPermissionDenied {
            text += ": fasttrace " + Self.privilegeAdvice
        }
        if let detail, !detail.isEmpty {
            text += " [\(detail)]"
        }
        return text
    }

    /// `strerror` plus the symbolic name when it is one of the common ones.
    public static func errnoText(_ code: Int32) -> String {
        let message = strerror(code).map { String(cString: $0) } ?? "errno \(code)"
        let names: [Int32: String] = [
            EPERM: "EPERM", EACCES: "EACCES", ENOENT: "ENOENT", EINVAL: "EINVAL", ENOMEM: "ENOMEM",
            EBUSY: "EBUSY", ENODEV: "ENODEV", ENOBUFS: "ENOBUFS", EAGAIN: "EAGAIN",
            EAFNOSUPPORT: "EAFNOSUPPORT", EPROTONOSUPPORT: "EPROTONOSUPPORT", ENETUNREACH: "ENETUNREACH",
            EMSGSIZE: "EMSGSIZE", ENOSYS: "ENOSYS", E2BIG: "E2BIG", ENOSPC: "ENOSPC", EDQUOT: "EDQUOT",
            EROFS: "EROFS", EISDIR: "EISDIR", ENOTDIR: "ENOTDIR", EIO: "EIO",
        ]
        if let name = names[code] { return "\(message) (\(name))" }
        return "\(message) (errno \(code))"
    }
}

/// What a non-blocking call did: finished with a value, or would have blocked.
enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

/// Upper bound on EINTR retries, so a signal storm cannot spin a caller forever.
private let maxInterruptRetries = 1000

/// What one system call came to, once EINTR is retried: its value, "would block", or an errno for the
/// caller to judge (thrown by `syscall`, returned by `hotSyscall`).
enum SyscallOutcome<Value> {
    case done(Value)
    case wouldBlock
    case failed(Int32)
}

extension SyscallOutcome: Equatable where Value: Equatable {}

/// The one place the rules for a system call live: runs `body` (returning -1 and setting errno on
/// failure), retries EINTR (bounded, so a signal storm cannot spin a caller forever); EAGAIN and
/// EWOULDBLOCK are "would block"; EBADF and EFAULT stop the program (they mean a bug here, not a
/// condition of the system); any other errno is handed back. `@inline(never)`, so errno is read right
/// after the call, before anything else can run or allocate; `operation` is evaluated only for a bug.
@inline(never)
func retryingSyscall<T: FixedWidthInteger>(_ operation: () -> String, _ body: () -> T) -> SyscallOutcome<T> {
    var attempts = 0
    while true {
        let result = body()
        if result != -1 { return .done(result) }
        let code = Glibc.errno
        switch code {
        case EINTR where attempts < maxInterruptRetries:
            attempts += 1
            continue
        case EAGAIN, EWOULDBLOCK:
            return .wouldBlock
        case EBADF, EFAULT:
            preconditionFailure("\(operation()) failed with \(SystemError.errnoText(code)): a bug in fasttrace")
        default:
            return .failed(code)
        }
    }
}

/// Runs `body` by `retryingSyscall`'s rules; an errno other than those throws a `SystemError` naming
/// `operation`.
@inline(__always)
func syscall<T: FixedWidthInteger>(
    _ operation: @autoclosure () -> String,
    needsPrivilege: Bool = false,
    _ body: () -> T
) throws(SystemError) -> IOResult<T> {
    switch retryingSyscall(operation, body) {
    case .done(let value): return .done(value)
    case .wouldBlock: return .wouldBlock
    case .failed(let code): throw SystemError(operation: operation(), errno: code, needsPrivilege: needsPrivilege)
    }
}

/// `syscall` for calls that block or never return EAGAIN (set-up calls): would-block is an error.
@inline(__always)
@discardableResult
func syscallBlocking<T: FixedWidthInteger>(
    _ operation: @autoclosure () -> String,
    needsPrivilege: Bool = false,
    _ body: () -> T
) throws(SystemError) -> T {
    switch try syscall(operation(), needsPrivilege: needsPrivilege, body) {
    case .done(let value): return value
    case .wouldBlock: throw SystemError(operation: operation(), errno: EAGAIN, needsPrivilege: needsPrivilege)
    }
}

/// A file descriptor this value owns: closed when the value is destroyed, exactly once.
struct OwnedDescriptor: ~Copyable {
    /// The descriptor. Valid for the owner's lifetime (or until `take`); do not close it yourself.
    private(set) var raw: Int32

    init(_ raw: Int32) { self.raw = raw }

    /// Hands the descriptor over to the caller, who closes it; this owner no longer does (`raw` is -1
    /// after). For closing it elsewhere, e.g. on another thread (`closeSideBySide`).
    mutating func take() -> Int32 {
        defer { raw = -1 }
        return raw
    }

    deinit { if raw >= 0 { _ = Glibc.close(raw) } }
}

/// Closes two descriptors at once, one on a short-lived thread, and returns when both are closed
/// (a negative one is skipped). Closing a packet socket with a ring is slow in the kernel: its
/// release waits for RCU grace periods (`synchronize_net`, two per ring, about 10 ms each here),
/// and the two sockets' waits overlap this way instead of adding up. If the thread cannot be
/// started, both are closed here, one after the other (`ThreadJob`).
func closeSideBySide(_ first: Int32, _ second: Int32) {
    guard first >= 0, second >= 0 else {
        if first >= 0 { _ = Glibc.close(first) }
        if second >= 0 { _ = Glibc.close(second) }
        return
    }
    let closing = ThreadJob { _ = Glibc.close(second) }
    _ = Glibc.close(first)
    closing.join()
}

/// `setsockopt` with an integer value.
func setSocketOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ operation: String,
                     needsPrivilege: Bool = false) throws(SystemError) {
    var value = value
    try syscallBlocking(operation, needsPrivilege: needsPrivilege) {
        setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }
}

/// What a non-blocking call on the send hot path did, without allocating: finished, would block, or
/// failed with an errno the caller judges per packet.
typealias HotIOResult = SyscallOutcome<Int>

/// `syscall` for the send hot path (sendmmsg, the transmit ring's kick): the same rules, but any other
/// errno is returned, not thrown: a refused packet is counted, and building an error would allocate.
@inline(__always)
func hotSyscall(_ operation: StaticString, _ body: () -> Int) -> HotIOResult {
    retryingSyscall({ "\(operation)" }, body)
}
