// Least privilege. Which capabilities fasttrace needs on this kernel, checked up front so that a missing
// one is named in one line (never a libbpf dump); and dropping every capability for good once the
// sockets, ring and filter are open, so nothing after set-up (name lookups, output) runs privileged.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace

/// A Linux capability, by its number in `<linux/capability.h>`.
public struct Capability: Hashable, Sendable, CustomStringConvertible {
    /// The capability's number (its bit in the capability sets).
    public let number: Int
    /// `CAP_NET_RAW`.
    public let name: String

    /// Changes the bounding set (needed to drop it); root has it.
    public static let setpcap = Capability(number: 8, name: "CAP_SETPCAP")
    /// Named only to say that it does not allow loading BPF programs.
    public static let netAdmin = Capability(number: 12, name: "CAP_NET_ADMIN")
    /// Raw IPv4 sockets (the probes) and AF_PACKET sockets (the reply ring).
    public static let netRaw = Capability(number: 13, name: "CAP_NET_RAW")
    /// `setns` (`--netns`); also allows BPF, and is what kernels before 5.8 (no CAP_BPF) need for it.
    public static let sysAdmin = Capability(number: 21, name: "CAP_SYS_ADMIN")
    /// Creating BPF maps and loading BPF programs when unprivileged BPF is disabled (Linux 5.8+).
    public static let bpf = Capability(number: 39, name: "CAP_BPF")

    /// This capability's bit in a 64-bit capability mask.
    public var bit: UInt64 { 1 << UInt64(number) }
    /// The name as `setcap` spells it: `cap_net_raw`.
    public var setcapName: String { name.lowercased() }
    public var description: String { name }
}

/// What a run needs from the kernel, given how the kernel is configured. Pure: the facts are read by
/// `Privileges.requirements(entersNamespace:)`, so the rules can be tested with any kernel's values.
public struct PrivilegeRequirements: Sendable, Equatable {
    /// `kernel.unprivileged_bpf_disabled`: 0 lets any user load a socket filter and its maps; 1 and 2
    /// need CAP_BPF. nil when it cannot be read (taken as disabled).
    public var unprivilegedBPFDisabled: Int?
    /// `kernel.cap_last_cap`: the highest capability this kernel knows. CAP_BPF (39) exists from
    /// Linux 5.8; before, loading BPF needs CAP_SYS_ADMIN. nil when it cannot be read.
    public var lastCapability: Int?
    /// The run enters a named network namespace (`--netns`), which needs CAP_SYS_ADMIN.
    public var entersNamespace: Bool

    /// Makes the requirements from the kernel's settings.
    public init(unprivilegedBPFDisabled: Int?, lastCapability: Int?, entersNamespace: Bool) {
        self.unprivilegedBPFDisabled = unprivilegedBPFDisabled
        self.lastCapability = lastCapability
        self.entersNamespace = entersNamespace
    }

    /// The capability loading the reply filter needs: none when unprivileged BPF is allowed, CAP_BPF
    /// when the kernel has it, else CAP_SYS_ADMIN.
    public var bpfCapability: Capability? {
        if unprivilegedBPFDisabled == 0 { return nil }
        if let lastCapability, lastCapability < Capability.bpf.number { return .sysAdmin }
        return .bpf
    }

    /// The capabilities a file needs (`setcap …+ep`) to trace as any user: CAP_NET_RAW, plus CAP_BPF
    /// unless unprivileged BPF is allowed. Never CAP_NET_ADMIN: it does not allow loading BPF, and
    /// nothing else fasttrace does needs it.
    public var fileCapabilities: [Capability] {
        [.netRaw] + (bpfCapability.map { [$0] } ?? [])
    }

    /// Everything this run needs: the file capabilities, and CAP_SYS_ADMIN for `--netns`.
    public var required: [Capability] {
        var list = fileCapabilities
        if entersNamespace && !list.contains(.sysAdmin) { list.append(.sysAdmin) }
        return list
    }

    /// The required capabilities not in `effective`. CAP_SYS_ADMIN stands in for CAP_BPF, as the
    /// kernel's `bpf_capable()` lets it.
    public func missing(effective: UInt64) -> [Capability] {
        required.filter { cap in
            if effective & cap.bit != 0 { return false }
            if cap == .bpf && effective & Capability.sysAdmin.bit != 0 { return false }
            return true
        }
    }

    /// The `setcap` argument granting exactly `fileCapabilities`: `cap_net_raw,cap_bpf+ep`.
    public var setcapArgument: String { fileCapabilities.map(\.setcapName).joined(separator: ",") + "+ep" }

    /// Why fasttrace needs `cap`, in a few words.
    func reason(_ cap: Capability, effective: UInt64) -> String {
        switch cap {
        case .netRaw: return "raw IPv4 and packet sockets"
        case bpfCapability:
            var why = "loading the reply filter"
            if let value = unprivilegedBPFDisabled { why += ", kernel.unprivileged_bpf_disabled=\(value)" }
            if cap == .bpf && effective & Capability.netAdmin.bit != 0 { why += "; CAP_NET_ADMIN does not allow it" }
            if cap == .sysAdmin && !entersNamespace { why += "; this kernel has no CAP_BPF" }
            return why
        case .sysAdmin: return "--netns enters a network namespace"
        default: return "needed"
        }
    }

    /// One line naming every missing capability, why it is needed and how to grant exactly what is
    /// needed; nil when nothing is missing. `executable` is the path `setcap` should be given.
    public func message(effective: UInt64, executable: String) -> String? {
        let missing = missing(effective: effective)
        guard !missing.isEmpty else { return nil }
        let named = missing.map { "\($0.name) (\(reason($0, effective: effective)))" }
        var line = "missing " + Self.list(named) + ": run as root"
        if missing.contains(where: { fileCapabilities.contains($0) }) {
            line += ", or grant exactly what it needs: sudo setcap \(setcapArgument) \(executable)"
            if missing.contains(.sysAdmin) && !fileCapabilities.contains(.sysAdmin) {
                line += " (--netns needs root all the same)"
            }
        }
        return line
    }

    /// What to grant, for a privileged operation the kernel refused although the check passed: `needs
    /// CAP_NET_RAW (…) and CAP_BPF (…): run as root or …`.
    public func advice(executable: String) -> String {
        let named = fileCapabilities.map { "\($0.name) (\(reason($0, effective: 0)))" }
        return "needs " + Self.list(named) + ": run as root, or grant them: sudo setcap \(setcapArgument) \(executable)"
    }

    /// `a`, `a and b`, `a, b and c`.
    static func list(_ items: [String]) -> String {
        guard items.count > 1 else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " and " + items.last!
    }
}

/// This process's privileges: the up-front check, and dropping them all after set-up.
public enum Privileges {
    /// The requirements on this kernel, read from /proc/sys/kernel.
    public static func requirements(entersNamespace: Bool = false) -> PrivilegeRequirements {
        PrivilegeRequirements(
            unprivilegedBPFDisabled: readInteger("/proc/sys/kernel/unprivileged_bpf_disabled"),
            lastCapability: readInteger("/proc/sys/kernel/cap_last_cap"),
            entersNamespace: entersNamespace)
    }

    /// nil when this process holds every capability the run needs; otherwise one line naming what is
    /// missing (and why), for the user. `entersNamespace`: the run uses `--netns`.
    public static func check(entersNamespace: Bool = false) -> String? {
        let effective = capabilitySets()?.effective ?? 0
        return requirements(entersNamespace: entersNamespace).message(effective: effective, executable: executablePath)
    }

    /// The sentence for a privileged operation the kernel refused (see `SystemError.description`).
    public static var advice: String { requirements().advice(executable: executablePath) }

    /// The calling thread's effective, permitted and inheritable capability sets (capget(2)).
    public static func capabilitySets() -> (effective: UInt64, permitted: UInt64, inheritable: UInt64)? {
        var effective: UInt64 = 0, permitted: UInt64 = 0, inheritable: UInt64 = 0
        guard CFastTrace_capget(&effective, &permitted, &inheritable) == 0 else { return nil }
        return (effective, permitted, inheritable)
    }

    /// Gives up every privilege this process has, for good: no capability is left in the effective,
    /// permitted, inheritable or ambient set, the bounding set is emptied when CAP_SETPCAP allows it
    /// (as root), and `no_new_privs` is set, so no later `execve` (a setuid or file-capability binary)
    /// can gain any. A process running as root keeps uid 0 but no capability: it cannot open another
    /// raw socket, load BPF, or enter a namespace.
    ///
    /// Call it once the sockets, ring and filter are open (they keep working: the kernel checks
    /// capabilities when a socket is opened, not when it is used), and before any other thread starts.
    /// Capabilities belong to threads and capset(2) changes the calling thread only, so it refuses to
    /// run while other threads exist. Throws naming the step that failed; afterwards it checks that
    /// nothing is left.
    public static func dropAll() throws(SystemError) {
        if let threads = readStatusField("Threads"), threads != "1" {
            throw SystemError(operation: "dropping capabilities", errno: EBUSY,
                              detail: "\(threads) threads are running; drop capabilities before any other starts")
        }
        try syscallBlocking("prctl(PR_SET_NO_NEW_PRIVS)") { CFastTrace_set_no_new_privs() }
        guard let before = capabilitySets() else {
            throw SystemError(operation: "capget", errno: errno)
        }
        // The bounding set first, while CAP_SETPCAP is still effective. Past the kernel's last
        // capability PR_CAPBSET_READ fails with EINVAL, which ends the walk.
        var dropBounding = false
        if before.effective & Capability.setpcap.bit != 0 {
            dropBounding = true
            var cap: Int32 = 0
            while cap < 64 && CFastTrace_capbset_read(cap) >= 0 {
                try syscallBlocking("prctl(PR_CAPBSET_DROP, \(cap))") { CFastTrace_capbset_drop(cap) }
                cap += 1
            }
        }
        try syscallBlocking("prctl(PR_CAP_AMBIENT_CLEAR_ALL)") { CFastTrace_ambient_clear_all() }
        try syscallBlocking("capset(no capabilities)") { CFastTrace_capset_clear() }

        guard let after = capabilitySets() else { throw SystemError(operation: "capget", errno: errno) }
        let ambientLeft = readStatusField("CapAmb").flatMap { UInt64($0, radix: 16) } ?? 0
        let boundingLeft = dropBounding ? (readStatusField("CapBnd").flatMap { UInt64($0, radix: 16) } ?? 0) : 0
        guard after.effective == 0, after.permitted == 0, after.inheritable == 0, ambientLeft == 0, boundingLeft == 0,
              CFastTrace_get_no_new_privs() == 1
        else {
            throw SystemError(operation: "dropping capabilities", errno: EPERM, detail: "some are still held")
        }
    }

    /// This program's path, for the `setcap` advice; `fasttrace` if /proc/self/exe cannot be read.
    static var executablePath: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "fasttrace" }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The value of `Name:` in /proc/self/status, trimmed.
    static func readStatusField(_ name: String) -> String? {
        guard let status = readSmallFile("/proc/self/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1).trimmingPrefix(while: { $0 == " " || $0 == "\t" }))
        }
        return nil
    }

    /// A small file holding one decimal integer (a sysctl), or nil.
    static func readInteger(_ path: String) -> Int? {
        guard let text = readSmallFile(path) else { return nil }
        return Int(text.trimmingPrefix(while: { $0 == " " }).prefix(while: { $0 != "\n" && $0 != " " }))
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: bytes[..<total], as: UTF8.self)
    }
}
