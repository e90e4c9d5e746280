// Name resolution for the CLI: forward (getaddrinfo, A and AAAA) for targets given by name (hop names
// are looked up by FastTraceLinux's NameResolver, see Annotations.swift); reading --asn-db tables.

import FastTraceAnnotations
import FastTraceCore
import FastTraceLinux
import FastTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// Resolves a hostname to the first address the resolver returns (as traceroute does), or the first of
/// `family` when one is asked for (`-4`, `-6`).
func resolveHostname(_ name: String, family: IPFamily? = nil) -> Result<IPAddress, ReasonError> {
    var hints = addrinfo()
    hints.ai_family = family == .v4 ? AF_INET : family == .v6 ? AF_INET6 : AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(name, nil, &hints, &list)
    guard rc == 0, let first = list else {
        let why = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
        return .failure(ReasonError("cannot resolve '\(name)'\(family.map { " (\($0 == .v4 ? "-4" : "-6"))" } ?? ""): \(why)"))
    }
    defer { freeaddrinfo(list) }
    var node: UnsafeMutablePointer<addrinfo>? = first
    while let current = node {
        if let sa = current.pointee.ai_addr {
            if current.pointee.ai_family == AF_INET {
                let address = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    UInt32(bigEndian: $0.pointee.sin_addr.s_addr)
                }
                return .success(IPAddress(IPv4Address(address)))
            }
            if current.pointee.ai_family == AF_INET6 {
                let address = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { IPAddress(bytes: $0) }
                }
                return .success(address)
            }
        }
        node = current.pointee.ai_next
    }
    return .failure(ReasonError("cannot resolve '\(name)': no IPv4 or IPv6 address"))
}

/// Reads the --asn-db files into one table. A file that cannot be read, or that has no row at all, is
/// bad input (exit 2); lines that are not rows are skipped and reported in one line per file, naming
/// the first (`fasttrace: --asn-db t.tsv: 2 lines skipped, first t.tsv:7: 'x' is not an AS number`).
func loadASNTable(_ paths: [String]) throws -> ASNTable {
    var builder = ASNTableBuilder()
    for path in paths {
        do {
            // A line longer than any row (/dev/zero, a binary file) ends the reading: not a table.
            try readFileChunks(path: path) { chunk in
                builder.feed(chunk)
                return !builder.lineTooLong
            }
        } catch {
            throw UsageFailure("--asn-db: cannot read '\(path)': \(String(cString: strerror(error.errno)))")
        }
        if builder.lineTooLong {
            throw UsageFailure("--asn-db: \(path): line \(builder.currentLine) is longer than \(ASNTableBuilder.maxLineBytes) "
                + "bytes: not an IP-to-AS table (a compressed file? decompress it first)")
        }
        let report = builder.endFile()
        let first = report.firstBadLine.map { "\(path):\($0): \(report.firstBadReason ?? "")" }
        if report.rows == 0 {
            throw UsageFailure("--asn-db: \(path): no IP-to-AS rows" + (first.map { " (first line refused: \($0))" } ?? ""))
        }
        if report.badLines > 0, let first {
            Out.error("fasttrace: --asn-db \(path): \(report.badLines) line\(report.badLines == 1 ? "" : "s") skipped, first \(first)")
        }
    }
    return builder.build()
}

/// The service name of a port of `protocol` (`tcp`, `udp`): `https`, or nil.
func serviceName(_ port: UInt16, protocol proto: String = "tcp") -> String? {
    guard let entry = getservbyport(Int32(port.bigEndian), proto), let name = entry.pointee.s_name else { return nil }
    return String(cString: name)
}
