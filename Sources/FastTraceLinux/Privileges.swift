// Checking up front whether this process can open the transport, so the CLI can print one clear
// sentence instead of failing half-way through set-up.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace

/// Whether the process has what the Linux transport needs.
public enum Privileges {
    /// nil when the process can open raw and packet sockets and load the reply filter; otherwise a
    /// sentence for the user saying what is missing and how to fix it.
    public static func check() -> String? {
        var missing: [String] = []
        for (domain, type, proto, name) in [
            (AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW), "raw IPv4 sockets"),
            (AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(0), "packet sockets"),
        ] {
            let fd = socket(domain, type | Int32(SOCK_CLOEXEC.rawValue), proto)
            if fd >= 0 {
                close(fd)
            } else if errno == EPERM || errno == EACCES {
                missing.append(name)
            }
        }
        if !canLoadBPF() { missing.append("the eBPF reply filter") }
        guard !missing.isEmpty else { return nil }
        return "fasttrace cannot open \(missing.joined(separator: ", ")): it "
            + SystemError.privilegeAdvice + " (e.g. sudo setcap cap_net_raw,cap_net_admin,cap_bpf+ep fasttrace)."
    }

    /// CAP_BPF, CAP_NET_ADMIN or CAP_SYS_ADMIN in the effective set, or unprivileged BPF allowed.
    static func canLoadBPF() -> Bool {
        let capNetAdmin = 12, capSysAdmin = 21, capBPF = 39
        if let effective = effectiveCapabilities() {
            for cap in [capNetAdmin, capSysAdmin, capBPF] where effective & (1 << UInt64(cap)) != 0 {
                return true
            }
        } else if geteuid() == 0 {
            return true
        }
        return readSmallFile("/proc/sys/kernel/unprivileged_bpf_disabled")?.hasPrefix("0") ?? false
    }

    /// `CapEff` from /proc/self/status.
    static func effectiveCapabilities() -> UInt64? {
        guard let status = readSmallFile("/proc/self/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(line.dropFirst("CapEff:".count).trimmingPrefix(while: { $0 == " " || $0 == "\t" }),
                          radix: 16)
        }
        return nil
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
