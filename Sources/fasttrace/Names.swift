// Name resolution for the CLI: forward (getaddrinfo, IPv4 only) for targets given by name (hop names
// are looked up by FastTraceLinux's NameResolver, see Annotations.swift); reading --asn-db tables.

import FastTraceAnnotations
import FastTraceCore
import FastTraceLinux
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
