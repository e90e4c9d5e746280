// Name resolution for the CLI: forward (getaddrinfo, IPv4 only) for targets given by name, and
// reverse (getnameinfo, cached) for hop names in single-target text output.

import FastTraceCore
import FastTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// Resolves a hostname to its first IPv4 address.
func resolveHostname(_ name: String) -> Result<IPv4Address, ReasonError> {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(name, nil, &hints, &list)
    guard rc == 0, let first = list else {
        let why = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
        return .failure(ReasonError("cannot resolve '\(name)': \(why)"))
    }
    defer { freeaddrinfo(list) }
    var node: UnsafeMutablePointer<addrinfo>? = first
    while let current = node {
        if current.pointee.ai_family == AF_INET, let sa = current.pointee.ai_addr {
            let address = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            return .success(IPv4Address(address))
        }
        node = current.pointee.ai_next
    }
    return .failure(ReasonError("cannot resolve '\(name)': no IPv4 address"))
}

/// Reverse names, looked up once per address. As in tcptraceroute, RFC 1918 addresses are not looked
/// up unless `includePrivate` (`-N`).
final class ReverseNames {
    private var cache: [IPv4Address: String?] = [:]
    let includePrivate: Bool

    init(includePrivate: Bool = false) { self.includePrivate = includePrivate }

    /// Whether `address` is looked up at all.
    func looksUp(_ address: IPv4Address) -> Bool { includePrivate || !address.isRFC1918 }

    func name(for address: IPv4Address) -> String? {
        guard looksUp(address) else { return nil }
        if let known = cache[address] { return known }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = address.value.bigEndian
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
            }
        }
        let name = rc == 0 ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        cache[address] = name
        return name
    }
}

/// The service name of a TCP port (`https`), or nil.
func serviceName(_ port: UInt16) -> String? {
    guard let entry = getservbyport(Int32(port.bigEndian), "tcp"), let name = entry.pointee.s_name else { return nil }
    return String(cString: name)
}
