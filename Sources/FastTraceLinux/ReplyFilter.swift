// The eBPF reply filter (bpf/reply_filter.bpf.c), embedded in CFastTrace and loaded with libbpf. It
// runs in the kernel before a packet reaches the ring, so the ring carries only ICMP errors quoting
// our probes and the destinations' answers to our source ports (SYN-ACK/RST, UDP).

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace

/// How many packets the reply filter kept and dropped since it was loaded (summed over CPUs).
public struct ReplyFilterStatistics: Sendable, Equatable {
    /// Packets the filter passed to the ring.
    public var kept: UInt64
    /// Packets the filter dropped (foreign traffic, our own outgoing probes, later fragments).
    public var dropped: UInt64
}

/// A loaded reply filter: owns the libbpf object (program and maps) and closes it on deinit.
final class ReplyFilter {
    private var handle = cfasttrace_filter(object: nil, prog_fd: -1, config_map_fd: -1, stats_map_fd: -1)

    /// The program's descriptor, for `SO_ATTACH_BPF`.
    var programDescriptor: Int32 { handle.prog_fd }

    /// Loads the filter accepting replies to probes of IP protocol `probeProtocol` (TCP, UDP, ICMP echo)
    /// from `sourcePorts` (for ICMP echo, identifiers), keeping `snapLength` bytes.
    init(sourcePorts: ClosedRange<UInt16>, probeProtocol: UInt8 = 6, snapLength: UInt32) throws(SystemError) {
        let flags: UInt32 = switch probeProtocol {
        case 6: CFastTrace_FILTER_PROBE_TCP()
        case 17: CFastTrace_FILTER_PROBE_UDP()
        case 1: CFastTrace_FILTER_PROBE_ICMP()
        default: preconditionFailure("the reply filter knows TCP, UDP and ICMP echo probes")
        }
        var config = cfasttrace_filter_config(
            sport_lo: sourcePorts.lowerBound, sport_hi: sourcePorts.upperBound, flags: flags,
            snaplen: snapLength, reserved: 0)
        var message = [CChar](repeating: 0, count: 2048)
        let rc = message.withUnsafeMutableBufferPointer { buffer in
            CFastTrace_filter_load(&config, &handle, buffer.baseAddress, buffer.count)
        }
        if rc < 0 {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            // Refused for want of privileges: the capability advice says it all, libbpf's warnings
            // (RLIMIT_MEMLOCK, "Couldn't load trivial BPF program") would only mislead. Otherwise
            // (the verifier, a kernel without BPF) they are the detail, on one line.
            let denied = -rc == EPERM || -rc == EACCES
            throw SystemError(operation: "bpf(BPF_PROG_LOAD, reply filter)", errno: -rc, needsPrivilege: true,
                              detail: denied ? nil : Self.oneLine(text))
        }
    }

    /// libbpf's captured warnings as one line: `libbpf: ` prefixes and blank lines dropped, lines
    /// joined with `; `, control bytes replaced; nil when there is nothing.
    static func oneLine(_ text: String) -> String? {
        let text = text.replacing("libbpf: libbpf: ", with: "libbpf: ")
        let lines = text.split(whereSeparator: \.isNewline).map { line -> String in
            let printable = String(line.map { character -> Character in
                guard let ascii = character.asciiValue, ascii < 0x20 || ascii == 0x7F else { return character }
                return " "  // a control byte
            })
            var rest = printable.trimmingPrefix(while: { $0 == " " })
            while rest.hasPrefix("libbpf: ") { rest = rest.dropFirst("libbpf: ".count) }
            return String(rest)
        }.filter { !$0.isEmpty }
        return lines.isEmpty ? nil : lines.joined(separator: "; ")
    }

    /// Kept and dropped counts from the per-CPU `ft_stats` map; nil if the map cannot be read.
    func statistics() -> ReplyFilterStatistics? {
        var kept: UInt64 = 0
        var dropped: UInt64 = 0
        guard CFastTrace_filter_stats(&handle, &kept, &dropped) == 0 else { return nil }
        return ReplyFilterStatistics(kept: kept, dropped: dropped)
    }

    deinit { CFastTrace_filter_close(&handle) }
}
