// `--metrics-listen ADDR:PORT`: the address read (an IP literal only: no name is looked up), and the
// listening socket opened, bound and listening before the run drops its capabilities (root may then use a
// port below 1024); SwiftNIO takes the descriptor over (`MetricsServer(boundSocket:)`).

import FastTraceLinux
import FastTraceWire
import Glibc

struct MetricsListenAddress: Equatable {
    /// The address to bind: an IPv4 or IPv6 literal; nil for `:PORT`, every address of both families.
    var host: String?
    var port: Int

    /// Reads `ADDR:PORT`, `[ADDR]:PORT` (IPv6) or `:PORT`; the reason in one sentence when it is none.
    static func parse(_ text: String) -> Result<MetricsListenAddress, UsageFailure> {
        func failure(_ why: String) -> Result<MetricsListenAddress, UsageFailure> { .failure(UsageFailure("--metrics-listen: \(why)")) }
        guard let colon = text.lastIndex(of: ":"), !text.hasSuffix("]") else {
            return failure("give ADDR:PORT, :PORT or [ADDR]:PORT (got '\(text)')")
        }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText),
            (0...65535).contains(port)
        else {
            return failure("port must be 0...65535 (got '\(portText)')")
        }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard let address = IPAddress(host), address.family == .v6 else {
                return failure("'[\(host)]' is not an IPv6 address")
            }
        } else if host.contains(":") {
            return failure("an IPv6 address goes in brackets, [ADDR]:PORT (got '\(text)')")
        } else if !host.isEmpty {
            guard let address = IPAddress(host), address.family == .v4 else {
                return failure("'\(host)' is not an IPv4 address (give an address, not a name; [ADDR] for IPv6)")
            }
        }
        return .success(MetricsListenAddress(host: host.isEmpty ? nil : host, port: port))
    }

    /// A TCP socket bound to this address and listening; every address (`:PORT`) is IPv6's `::` taking IPv4
    /// too, or 0.0.0.0 where IPv6 is off. The reason in one line when it cannot be had.
    func listeningSocket() -> Result<Int32, UsageFailure> {
        let candidates = host.map { [$0] } ?? ["::", "0.0.0.0"]
        var lastError: Int32 = 0
        for (i, candidate) in candidates.enumerated() {
            var hints = addrinfo()
            hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(candidate, String(port), &hints, &list) == 0, let info = list else {
                lastError = EINVAL
                continue
            }
            defer { freeaddrinfo(list) }
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 {
                lastError = errno
                // No IPv6 here: every address is IPv4's.
                if i + 1 < candidates.count && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT) { continue }
                break
            }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if info.pointee.ai_family == AF_INET6 && host == nil {
                var zero: Int32 = 0  // `::` takes IPv4 too
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            }
            if bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 && listen(fd, 256) == 0 { return .success(fd) }
            lastError = errno
            _ = close(fd)
            if i + 1 < candidates.count && lastError == EADDRNOTAVAIL { continue }
            break
        }
        let shown = host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? ""
        return .failure(UsageFailure("--metrics-listen \(shown):\(port): cannot listen: \(SystemError.errnoText(lastError))"))
    }
}
