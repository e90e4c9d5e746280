// The PACKET_TX_RING send path against the kernel: on the wire (tcpdump inside the lab's vantage
// namespace) a ring run and a socket run put the same probes out, IPv4 and IPv6, Ethernet header
// included, with valid checksums; which path ran is proven by the vantage's own netfilter output hook,
// which sees the raw socket's packets and never the ring's; the fallback is taken when forced and when
// the ring cannot work (a tun device, an ARP or NDP neighbour not resolved yet); results on the lab's
// mixed targets are the same either way, over both families; an IPv6 default route via a link-local
// gateway is followed; a frame the kernel refuses as malformed is counted and does not stall the ring.
// Root only.

import Foundation
import Testing
import FastTraceCore
import FastTraceLinux
import FastTraceWire

/// The Ethernet frames of a pcap file (tcpdump -w, link type Ethernet).
func readPcapFrames(_ path: String) throws -> [[UInt8]] {
    let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    guard data.count >= 24 else { throw LabError("\(path): no pcap header") }
    func u32(_ i: Int) -> Int { Int(data[i]) | Int(data[i + 1]) << 8 | Int(data[i + 2]) << 16 | Int(data[i + 3]) << 24 }
    guard u32(0) == 0xA1B2_C3D4, u32(20) == 1 else { throw LabError("\(path): not a little-endian Ethernet pcap") }
    var frames: [[UInt8]] = []
    var offset = 24
    while offset + 16 <= data.count {
        let length = u32(offset + 8)
        guard offset + 16 + length <= data.count else { break }
        frames.append(Array(data[(offset + 16)..<(offset + 16 + length)]))
        offset += 16 + length
    }
    return frames
}

/// RFC 1071 sum over `bytes` folded: 0xFFFF (or 0) when a checksum inside verifies.
func onesComplementSum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
    var sum: UInt32 = 0
    var i = bytes.startIndex
    while i + 1 < bytes.endIndex {
        sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        i += 2
    }
    if i < bytes.endIndex { sum += UInt32(bytes[i]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
    return UInt16(sum)
}

/// One outgoing probe as captured: the fields both send paths must agree on, and the tag.
struct WireProbe: Hashable {
    /// Everything but the tag: the Ethernet header, the IPv4 header without ID and checksum, and of the
    /// transport header what no tag is carried in (TCP: ports, acknowledgement, offset, flags, window;
    /// UDP: ports and length; ICMP echo: type, code and identifier).
    var key: String
    var ipID: UInt16
    /// The tag as it travels: TCP's sequence number; UDP's checksum, ICMP echo's sequence number, each
    /// with the IPv4 ID.
    var word: UInt32
    var checksumsValid: Bool

    init?(frame f: [UInt8]) {
        guard f.count >= 14 + 28, f[12] == 0x08, f[13] == 0x00 else { return nil }
        let ip = 14
        let ihl = Int(f[ip] & 0x0F) * 4
        let total = Int(f[ip + 2]) << 8 | Int(f[ip + 3])
        guard total >= ihl + 8, f.count >= ip + total else { return nil }
        let l4 = ip + ihl, proto = f[ip + 9]
        func hex(_ r: Range<Int>) -> String { f[r].map { String(format: "%02x", $0) }.joined() }
        func u16(_ i: Int) -> UInt32 { UInt32(f[i]) << 8 | UInt32(f[i + 1]) }
        let transport: String
        switch proto {
        case 6:
            guard total >= ihl + 20 else { return nil }
            transport = [hex(l4..<(l4 + 4)), hex((l4 + 8)..<(l4 + 16)), hex((l4 + 18)..<(l4 + 20))].joined(separator: " ")
            word = u16(l4 + 4) << 16 | u16(l4 + 6)
        case 17:
            transport = hex(l4..<(l4 + 6))
            word = u16(l4 + 6) << 16 | u16(ip + 4)  // the checksum and the ID carry the tag
        case 1:
            transport = hex(l4..<(l4 + 2)) + " " + hex((l4 + 4)..<(l4 + 6))
            word = u16(l4 + 6) << 16 | u16(ip + 4)  // the sequence and the ID carry the tag
        default:
            return nil
        }
        key = [hex(0..<14), hex(ip..<(ip + 4)), hex((ip + 6)..<(ip + 10)), hex((ip + 12)..<(ip + 20)), transport,
               "len\(total)"].joined(separator: " ")
        ipID = UInt16(f[ip + 4]) << 8 | UInt16(f[ip + 5])
        let ipValid = onesComplementSum(f[ip..<(ip + ihl)]) == 0xFFFF
        let segment = f[l4..<(ip + total)]
        let l4Valid: Bool
        if proto == 1 {
            l4Valid = onesComplementSum(segment) == 0xFFFF
        } else {
            // Over the pseudo-header (source, destination, protocol, length) and the segment.
            let length = total - ihl
            let pseudo = Array(f[(ip + 12)..<(ip + 20)]) + [0, proto, UInt8(length >> 8), UInt8(length & 0xFF)] + segment
            l4Valid = onesComplementSum(pseudo[...]) == 0xFFFF
        }
        checksumsValid = ipValid && l4Valid
    }
}

/// Captures the outgoing probes from `source` on the vantage's veth0 while `body` runs: TCP without RST
/// (the kernel's RSTs to SYN-ACKs are not probes), UDP, ICMP echo requests.
func captureProbes(namespace: String, source: String, _ body: () throws -> Void) throws -> [WireProbe] {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-txring-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let pcap = dir.appendingPathComponent("probes.pcap").path
    let log = dir.appendingPathComponent("tcpdump.log").path
    guard let tcpdump = Child(["ip", "netns", "exec", namespace, "tcpdump", "-i", "veth0", "-Q", "out", "-U", "-n",
        "-s", "256", "-w", pcap,
        "src host \(source) and ((tcp and tcp[13] & 4 == 0) or udp or (icmp and icmp[0] == 8))"], stderrPath: log)
    else { throw LabError("cannot start tcpdump") }
    defer { tcpdump.stop() }
    guard waitUntil(seconds: 10, { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("listening on") })
    else { throw LabError("tcpdump did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")") }
    try body()
    usleep(300_000)
    kill(tcpdump.pid, SIGINT)
    _ = tcpdump.wait(timeout: 5)
    return try readPcapFrames(pcap).compactMap(WireProbe.init(frame:))
}

/// One outgoing IPv6 probe as captured, as `WireProbe` is for IPv4.
struct WireProbe6: Hashable {
    /// Everything but the tag: the Ethernet header, the whole IPv6 header (its flow label stays fixed for a
    /// trace), and of the transport header what no tag is carried in (TCP: ports, acknowledgement, offset,
    /// flags, window; UDP: ports and length; ICMPv6 echo: type, code and identifier).
    var key: String
    /// The bytes that carry the tag: TCP's sequence number; UDP's checksum and payload; ICMPv6 echo's
    /// sequence, checksum and payload.
    var tag: String
    var checksumValid: Bool

    init?(frame f: [UInt8]) {
        let ip = 14, l4 = ip + 40
        guard f.count >= l4 + 8, f[12] == 0x86, f[13] == 0xDD, f[ip] >> 4 == 6 else { return nil }
        let payload = Int(f[ip + 4]) << 8 | Int(f[ip + 5])
        guard f.count >= l4 + payload, payload >= 8 else { return nil }
        let next = f[ip + 6]
        func hex(_ r: Range<Int>) -> String { f[r].map { String(format: "%02x", $0) }.joined() }
        let transport: String
        switch next {
        case 6:
            guard payload >= 20 else { return nil }
            transport = [hex(l4..<(l4 + 4)), hex((l4 + 8)..<(l4 + 16)), hex((l4 + 18)..<(l4 + 20))].joined(separator: " ")
            tag = hex((l4 + 4)..<(l4 + 8))
        case 17:
            transport = hex(l4..<(l4 + 6))
            tag = hex((l4 + 6)..<(l4 + 8)) + hex((l4 + 8)..<(l4 + payload))
        case 58:
            transport = hex(l4..<(l4 + 2)) + " " + hex((l4 + 4)..<(l4 + 6))
            tag = hex((l4 + 2)..<(l4 + 4)) + hex((l4 + 6)..<(l4 + payload))
        default:
            return nil
        }
        key = [hex(0..<14), hex(ip..<(ip + 40)), transport].joined(separator: " ")
        // Over the pseudo-header (source, destination, upper-layer length, next header) and the segment.
        let pseudo = Array(f[(ip + 8)..<(ip + 40)]) + [0, 0, UInt8(payload >> 8), UInt8(payload & 0xFF), 0, 0, 0, next]
            + f[l4..<(l4 + payload)]
        checksumValid = onesComplementSum(pseudo[...]) == 0xFFFF
    }
}

/// Captures the outgoing IPv6 probes from `source` on the vantage's veth0 while `body` runs: TCP without
/// RST, UDP, ICMPv6 echo requests (NDP is not a probe). tcpdump's `tcp[…]` does not reach into IPv6, so
/// the header is read at fixed offsets (the probes carry no extension headers).
func captureProbes6(namespace: String, source: String, _ body: () throws -> Void) throws -> [WireProbe6] {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-txring6-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let pcap = dir.appendingPathComponent("probes.pcap").path
    let log = dir.appendingPathComponent("tcpdump.log").path
    guard let tcpdump = Child(["ip", "netns", "exec", namespace, "tcpdump", "-i", "veth0", "-Q", "out", "-U", "-n",
        "-s", "256", "-w", pcap,
        "ip6 and src host \(source) and ((ip6[6] == 6 and ip6[53] & 4 == 0) or ip6[6] == 17 or (ip6[6] == 58 and ip6[40] == 128))"],
        stderrPath: log)
    else { throw LabError("cannot start tcpdump") }
    defer { tcpdump.stop() }
    guard waitUntil(seconds: 10, { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("listening on") })
    else { throw LabError("tcpdump did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")") }
    try body()
    usleep(300_000)
    kill(tcpdump.pid, SIGINT)
    _ = tcpdump.wait(timeout: 5)
    return try readPcapFrames(pcap).compactMap(WireProbe6.init(frame:))
}

/// Resolves the lab vantage's gateway, IPv6 or IPv4 (NTF_USE makes the kernel ask), and waits (bounded)
/// until its entry is one the kernel, and so the ring, sends to without asking again (REACHABLE, STALE,
/// DELAY, PROBE), so a ring run has its next hop from the first probe.
func resolveVantageGateway(namespace: String, gateway: String) throws {
    let family = gateway.contains(":") ? "-6" : "-4"
    try run(["ip", "-n", namespace, family, "neigh", "replace", gateway, "dev", "veth0", "use"])
    guard waitUntil(seconds: 5, {
        let entry = (try? run(["ip", "-n", namespace, family, "neigh", "show", gateway, "dev", "veth0"])) ?? ""
        return ["REACHABLE", "STALE", "DELAY", "PROBE"].contains { entry.contains($0) } && entry.contains("lladdr")
    }) else {
        throw LabError("the IPv6 gateway \(gateway) did not resolve: "
            + ((try? run(["ip", "-n", namespace, family, "neigh", "show", "dev", "veth0"])) ?? ""))
    }
}

/// An nftables counter on the vantage's output hook: the raw socket's probes pass it, the ring's
/// frames (which leave below the IP stack) never do.
struct OutputHookCounter {
    let namespace: String
    /// One inet table, so one chain sees both families: IPv4 from `source`, IPv6 from `source6`.
    init(namespace: String, source: String, source6: String? = nil) throws {
        self.namespace = namespace
        let v6 = source6.map { source6 in
            """
                    ip6 saddr \(source6) tcp flags & (syn | rst) == syn counter name "probes"
                    ip6 saddr \(source6) meta l4proto udp counter name "probes"
                    ip6 saddr \(source6) icmpv6 type echo-request counter name "probes"
            """
        } ?? ""
        let rules = """
            table inet fttxring {
                counter probes {}
                chain out {
                    type filter hook output priority 0; policy accept;
                    ip saddr \(source) tcp flags & (syn | rst) == syn counter name "probes"
                    ip saddr \(source) meta l4proto udp counter name "probes"
                    ip saddr \(source) icmp type echo-request counter name "probes"
            \(v6)
                }
            }
            """
        remove()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fttxring-\(UUID().uuidString).nft").path
        try rules.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        try run(["ip", "netns", "exec", namespace, "nft", "-f", file])
    }
    func reset() throws { try run(["ip", "netns", "exec", namespace, "nft", "reset", "counters", "table", "inet", "fttxring"]) }
    func packets() throws -> Int {
        let text = try run(["ip", "netns", "exec", namespace, "nft", "list", "counter", "inet", "fttxring", "probes"])
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard let i = words.firstIndex(of: "packets"), i + 1 < words.count, let n = Int(words[i + 1]) else {
            throw LabError("no counter in: \(text)")
        }
        return n
    }
    func remove() { _ = try? run(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", "fttxring"]) }
}

/// `N probes sent` from a summary line.
func probesSent(_ summary: String) -> Int? {
    guard let range = summary.range(of: #"[0-9]+ probes? sent"#, options: .regularExpression) else { return nil }
    return Int(summary[range].split(separator: " ")[0])
}

@Suite("TX ring send path (root, lab namespaces)", .serialized, .enabled(if: isRoot, "needs root: namespaces, raw sockets"))
struct TxRingLabTests {
    @Test("A ring run and a socket run put the same probes on the wire; only the socket's pass the output hook",
          arguments: [[String](), ["-U"], ["-I"]])
    func sameProbesOnTheWire(kind: [String]) throws {
        let lab = try Lab.get()
        let source = lab.truth.vantage.address
        let targets = ["open", "firewalled", "silent", "blackhole", "dnat"].map { lab.truth.kind(named: $0).example }
            + ["198.19.0.77", "198.19.3.4"]
        // Every probe through the ring needs the gateway resolved first (an earlier test may have flushed it).
        try resolveVantageGateway(namespace: lab.namespace, gateway: lab.truth.kind(named: "open").hops[0][0])
        let counter = try OutputHookCounter(namespace: lab.namespace, source: source)
        defer { counter.remove() }
        var runs: [String: (probes: [WireProbe], hook: Int, stderr: String, status: Int32)] = [:]
        for path in ["ring", "socket"] {
            try counter.reset()
            var result = ToolResult(status: -1, stdout: "", stderr: "")
            let probes = try captureProbes(namespace: lab.namespace, source: source) {
                result = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-"]
                    // (With -I, --sport is the echo identifier: fixed too, so both runs carry the same.)
                    + (kind == ["-I"] ? [] : ["-p", "443"]) + ["--sport", "33433"] + kind + ["--format", "json", "-q", "2",
                    "-m", "7", "-w", "1", "--retries", "0", "--reasks", "0", "--gap", "0", "--send-path", path,
                    "--verbose"], stdin: targets.joined(separator: "\n") + "\n", timeout: 60)
            }
            runs[path] = (probes, try counter.packets(), result.stderr, result.status)
        }
        // With that output chain in place, auto keeps the socket: the ring's frames would bypass it.
        let auto = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--summary", "-q", "1", "-w", "1"] + kind
            + [lab.truth.kind(named: "open").example] + (kind == ["-I"] ? [] : ["443"]))
        // (A single target: its status says whether it was reached, which does not matter here.)
        #expect(auto.stderr.contains("sent through the raw socket (TX ring not used: 1 nftables output/postrouting "
            + "chain in this namespace, which the ring's frames would bypass)"), "\(auto.stderr)")
        let ring = runs["ring"]!, socket = runs["socket"]!
        let expected = targets.count * 7 * 2
        #expect(ring.status == 0 && socket.status == 0, "\(kind): \(ring.stderr)\n\(socket.stderr)")
        // Which path ran: said once up front (--verbose) and in the summary, and seen by the kernel.
        #expect(ring.stderr.contains("fasttrace: send path: TPACKET_V2 ring of 512 frames"), "\(ring.stderr)")
        #expect(ring.stderr.contains("(note: 1 nftables output/postrouting chain in this namespace, which the ring's "
            + "frames would bypass)"), "forced, the ring runs and --verbose says what it bypasses: \(ring.stderr)")
        #expect(ring.stderr.contains("sent through the TX ring on veth0"), "\(ring.stderr)")
        #expect(!ring.stderr.contains("through the raw socket)"), "every probe through the ring: \(ring.stderr)")
        #expect(socket.stderr.contains("sent through the raw socket (TX ring not used: --send-path socket)"), "\(socket.stderr)")
        #expect(ring.hook == 0, "ring frames leave below the IP stack: the output hook saw \(ring.hook)")
        #expect(socket.hook == expected, "the output hook saw every socket probe")
        // On the wire: the same probes, field by field (Ethernet header included), tags aside.
        #expect(ring.probes.count == expected && socket.probes.count == expected,
                "\(ring.probes.count) ring and \(socket.probes.count) socket probes captured, \(expected) expected")
        let ringKeys = ring.probes.map(\.key).sorted(), socketKeys = socket.probes.map(\.key).sorted()
        #expect(ringKeys == socketKeys, "first difference: \(zip(ringKeys, socketKeys).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "counts")")
        for (name, run) in [("ring", ring), ("socket", socket)] {
            #expect(run.probes.allSatisfy { $0.checksumsValid }, "\(name): a probe with a bad IPv4 or TCP checksum")
            #expect(run.probes.allSatisfy { $0.ipID != 0 }, "\(name): an IPv4 ID of 0")
            #expect(Set(run.probes.map(\.ipID)).count > expected / 2, "\(name): IDs carry the tag, so they vary")
            #expect(Set(run.probes.map(\.word)).count == run.probes.count, "\(name): every probe's tag is its own")
        }
    }

    @Test("Ring and socket give the same, right traces on the lab's mixed targets")
    func sameResultsOnMixedTargets() throws {
        let lab = try Lab.get()
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "300"])
        #expect(list.status == 0)
        // The same 5-tuples take the same ECMP branches: hop for hop the same answers.
        sameResultsOnBothPaths(lab, list: list.stdout, count: 300, sport: "34567")
    }

    @Test("IPv6: a ring run and a socket run put the same probes on the wire; only the socket's pass the output hook",
          arguments: [[String](), ["-U"], ["-I"]])
    func sameProbesOnTheWire6(kind: [String]) throws {
        let lab = try Lab.get()
        let source = lab.truth.vantage.address, source6 = lab.truth.vantage6
        let kinds = ["open", "firewalled", "silent", "blackhole"].compactMap { lab.truth.kind(named: $0).overIPv6 }
        let targets = kinds.map(\.example) + ["2001:db8:100::77", "2001:db8:100:3::4"]
        try resolveVantageGateway(namespace: lab.namespace, gateway: kinds[0].hops[0][0])
        let counter = try OutputHookCounter(namespace: lab.namespace, source: source, source6: source6)
        defer { counter.remove() }
        var runs: [String: (probes: [WireProbe6], hook: Int, stderr: String, status: Int32)] = [:]
        for path in ["ring", "socket"] {
            try counter.reset()
            var result = ToolResult(status: -1, stdout: "", stderr: "")
            let probes = try captureProbes6(namespace: lab.namespace, source: source6) {
                result = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--targets", "-"]
                    + (kind == ["-I"] ? [] : ["-p", "443"]) + ["--sport", "33433"] + kind + ["--format", "json", "-q", "2",
                    "-m", "7", "-w", "1", "--retries", "0", "--reasks", "0", "--gap", "0", "--send-path", path,
                    "--verbose"], stdin: targets.joined(separator: "\n") + "\n", timeout: 60)
            }
            runs[path] = (probes, try counter.packets(), result.stderr, result.status)
        }
        // The inet chain sees IPv6 too: auto keeps an IPv6 run on the socket, as it does an IPv4 one.
        let auto = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--summary", "-q", "1", "-w", "1"] + kind
            + [kinds[0].example] + (kind == ["-I"] ? [] : ["443"]))
        #expect(auto.stderr.contains("sent through the raw socket (TX ring not used: 1 nftables output/postrouting "
            + "chain in this namespace, which the ring's frames would bypass)"), "\(auto.stderr)")
        let ring = runs["ring"]!, socket = runs["socket"]!
        let expected = targets.count * 7 * 2
        #expect(ring.status == 0 && socket.status == 0, "\(kind): \(ring.stderr)\n\(socket.stderr)")
        #expect(ring.stderr.contains("fasttrace: send path: TPACKET_V2 ring of 512 frames"), "\(ring.stderr)")
        #expect(ring.stderr.contains("sent through the TX ring on veth0"), "\(ring.stderr)")
        #expect(!ring.stderr.contains("through the raw socket)"), "every IPv6 probe through the ring: \(ring.stderr)")
        #expect(socket.stderr.contains("sent through the raw socket (TX ring not used: --send-path socket)"), "\(socket.stderr)")
        #expect(ring.hook == 0, "ring frames leave below the IP stack: the output hook saw \(ring.hook)")
        #expect(socket.hook == expected, "the output hook saw every socket probe: \(socket.hook) of \(expected)")
        #expect(ring.probes.count == expected && socket.probes.count == expected,
                "\(ring.probes.count) ring and \(socket.probes.count) socket probes captured, \(expected) expected")
        // On the wire: the same frames (EtherType 0x86DD, the gateway's MAC, the whole IPv6 header), tags aside.
        let ringKeys = ring.probes.map(\.key).sorted(), socketKeys = socket.probes.map(\.key).sorted()
        #expect(ringKeys == socketKeys, "first difference: \(zip(ringKeys, socketKeys).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "counts")")
        for (name, run) in [("ring", ring), ("socket", socket)] {
            #expect(run.probes.allSatisfy { $0.checksumValid }, "\(name): a probe with a bad checksum")
            #expect(Set(run.probes.map(\.tag)).count == run.probes.count, "\(name): every probe's tag is its own")
        }
    }

    @Test("Ring and socket give the same, right traces on the lab's mixed IPv6 targets")
    func sameResultsOnMixedTargets6() throws {
        let lab = try Lab.get()
        let list = targets6("mixed", 200)
        sameResultsOnBothPaths(lab, list: list, count: 200, sport: "34568")
    }

    /// `list` traced through the ring and through the socket: every trace right against the truth, and
    /// hop for hop the same answers either way.
    func sameResultsOnBothPaths(_ lab: Lab, list: String, count: Int, sport: String) {
        var traces: [String: [String: JSONTrace]] = [:]
        for path in ["ring", "socket"] {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443", "--format", "json",
                "-w", "1", "-m", "12", "--gap", "3", "--rate", "20000", "--sport", sport, "--send-path", path],
                stdin: list, timeout: 120)
            #expect(r.status == 0, "\(path): \(r.stderr)")
            #expect(r.stderr.contains(path == "ring" ? "sent through the TX ring on veth0" : "sent through the raw socket"),
                    "\(r.stderr)")
            var byTarget: [String: JSONTrace] = [:]
            var wrong: [String] = []
            for trace in parseTraces(r.stdout) {
                byTarget[trace.target] = trace
                guard let kind = lab.truth.kind(of: trace.target) else { wrong.append(trace.target); continue }
                let p = problems(trace, kind, probes: 3)
                if !p.isEmpty { wrong.append("\(trace.target) (\(kind.kind)): \(p)") }
            }
            #expect(byTarget.count == count, "\(path): \(byTarget.count) traces")
            #expect(wrong.isEmpty, "\(path): \(wrong.count) wrong, first \(wrong.prefix(3))")
            traces[path] = byTarget
        }
        var differ: [String] = []
        for (target, ring) in traces["ring"] ?? [:] {
            guard let socket = traces["socket"]?[target] else { continue }
            if ring.state != socket.state || ring.hops.map(\.addr) != socket.hops.map(\.addr) {
                differ.append("\(target): ring \(ring.hops.map { $0.addr ?? "*" }) socket \(socket.hops.map { $0.addr ?? "*" })")
            }
        }
        #expect(differ.isEmpty, "\(differ.count) traces differ, first \(differ.prefix(3))")
    }

    @Test("IPv6 runs take the ring (-6, one IPv6 address, a mixed list); one family's run names only its next hop")
    func ipv6RunsTakeTheRing() throws {
        // Before: an IPv6-only run kept auto off the ring (it framed IPv4 only), and a mixed list's IPv6
        // probes all went through the raw socket.
        let lab = try Lab.get()
        let open6 = try #require(lab.truth.kind(named: "open").overIPv6)
        let gateway6 = open6.hops[0][0], gateway4 = lab.truth.kind(named: "open").hops[0][0]
        try resolveVantageGateway(namespace: lab.namespace, gateway: gateway6)
        try resolveVantageGateway(namespace: lab.namespace, gateway: gateway4)
        for extra in [["-6"], []] {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--summary", "--verbose", "-q", "1", "-w", "1"]
                + extra + [open6.example, "443"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("fasttrace: send path: TPACKET_V2 ring of 512 frames"), "\(extra): \(r.stderr)")
            #expect(r.stderr.contains("next hop \(gateway6) at "), "\(extra): \(r.stderr)")
            #expect(!r.stderr.contains(gateway4) && !r.stderr.contains("raw IPv6 socket"), "\(extra): \(r.stderr)")
            #expect(r.stderr.contains("sent through the TX ring on veth0") && !r.stderr.contains("through the raw socket"),
                "\(extra): \(r.stderr)")
        }
        // An IPv4 run names only its own next hop.
        let v4 = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--summary", "--verbose", "-q", "1", "-w", "1",
            lab.truth.kind(named: "open").example, "443"])
        #expect(v4.stderr.contains("next hop \(gateway4) at ") && !v4.stderr.contains(gateway6), "\(v4.stderr)")
        // A list may hold both families: both take the ring, and --verbose names both next hops.
        let mixed = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "--verbose", "--targets", "-", "-p", "443",
            "-q", "1", "-w", "1", "--format", "json"], stdin: "\(open6.example)\n\(lab.truth.kind(named: "open").example)\n")
        #expect(mixed.status == 0, "\(mixed.stderr)")
        #expect(mixed.stderr.contains("\(gateway4) at ") && mixed.stderr.contains("\(gateway6) at "), "\(mixed.stderr)")
        #expect(mixed.stderr.contains("sent through the TX ring on veth0") && !mixed.stderr.contains("through the raw socket"),
            "\(mixed.stderr)")
        #expect(parseTraces(mixed.stdout).count == 2)
    }

    @Test("With the IPv6 gateway's NDP entry gone, its first probes go through the socket and the rest through the ring")
    func unresolvedNeighbourFallsBackPerProbe6() throws {
        let lab = try Lab.get()
        let gateway6 = try #require(lab.truth.kind(named: "open").overIPv6).hops[0][0]
        // r1's entries for the vantage too (as in the IPv4 test: r1's neighbour solicitation would teach
        // the vantage r1's address before the run starts).
        try run(["ip", "-n", Lab.namespace("r1"), "-6", "neigh", "flush", "dev", "up0"])
        try run(["ip", "-n", lab.namespace, "-6", "neigh", "flush", "dev", "veth0"])
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443", "--format", "json",
            "-w", "1", "-m", "12", "--gap", "3", "--rate", "20000", "--send-path", "ring", "--verbose"],
            stdin: targets6("open", 200), timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("\(gateway6) not in the neighbour table yet"), "\(r.stderr)")
        let line = r.stderr.split(separator: "\n").last { $0.hasPrefix("fasttrace: 200 traces") }.map(String.init) ?? ""
        let viaSocket = line.range(of: #"TX ring on veth0 \(([0-9]+) through the raw socket\)"#, options: .regularExpression)
            .map { Int(line[$0].split(separator: "(")[1].split(separator: " ")[0]) ?? 0 } ?? 0
        let sent = probesSent(line) ?? 0
        #expect(viaSocket >= 1, "the first probes resolve the gateway through the socket: \(line)")
        #expect(viaSocket < sent / 2, "then the ring takes over: \(line)")
        let traces = parseTraces(r.stdout)
        let kind = lab.truth.kind(named: "open").overIPv6!
        #expect(traces.count == 200)
        #expect(traces.allSatisfy { problems($0, kind, probes: 3).isEmpty },
            "\(traces.first { !problems($0, kind, probes: 3).isEmpty }.map { "\($0.target)" } ?? "")")
    }

    @Test("An IPv6 default route via a link-local gateway: the ring sends to that gateway's MAC, traces are right")
    func linkLocalGateway6() throws {
        let lab = try Lab.get()
        let global = try #require(lab.truth.kind(named: "open").overIPv6).hops[0][0]
        // r1's link-local address on the link to the vantage, and its MAC.
        let r1 = Lab.namespace("r1")
        let addr = try run(["ip", "-n", r1, "-6", "-o", "addr", "show", "dev", "up0", "scope", "link"])
        let linkLocal = try #require(addr.split(separator: " ").first { $0.hasPrefix("fe80::") }
            .map { String($0.split(separator: "/")[0]) }, "\(addr)")
        let link = try run(["ip", "-n", r1, "-o", "link", "show", "dev", "up0"])
        let mac = try #require(link.split(separator: " ").drop { $0 != "link/ether" }.dropFirst().first.map(String.init))
        try run(["ip", "-n", lab.namespace, "-6", "route", "replace", "default", "via", linkLocal, "dev", "veth0"])
        defer { _ = try? run(["ip", "-n", lab.namespace, "-6", "route", "replace", "default", "via", global, "dev", "veth0"]) }
        try resolveVantageGateway(namespace: lab.namespace, gateway: linkLocal)
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443", "--format", "json",
            "-w", "1", "-m", "12", "--gap", "3", "--send-path", "ring", "--verbose", "-6"], stdin: targets6("mixed", 40),
            timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("next hop \(linkLocal) at \(mac) ("), "\(r.stderr)")
        #expect(r.stderr.contains("sent through the TX ring on veth0") && !r.stderr.contains("through the raw socket"),
            "\(r.stderr)")
        var wrong: [String] = []
        for trace in parseTraces(r.stdout) {
            guard let kind = lab.truth.kind(of: trace.target) else { wrong.append(trace.target); continue }
            let p = problems(trace, kind, probes: 3)
            if !p.isEmpty { wrong.append("\(trace.target) (\(kind.kind)): \(p)") }
        }
        #expect(parseTraces(r.stdout).count == 40)
        #expect(wrong.isEmpty, "\(wrong.count) wrong, first \(wrong.prefix(3))")
    }

    @Test("With the gateway's neighbour entry gone, its first probes go through the socket and the rest through the ring")
    func unresolvedNeighbourFallsBackPerProbe() throws {
        let lab = try Lab.get()
        // r1's entry for the vantage goes too: while it has one, r1 refreshes it with an ARP request
        // (STALE, DELAY, PROBE after earlier runs), from which the vantage learns r1 again (STALE) before
        // the run starts (seen: the gateway was in the table). Without one, r1 asks only to answer the
        // run's first probes, which went through the socket.
        try run(["ip", "-n", Lab.namespace("r1"), "-4", "neigh", "flush", "dev", "up0"])
        try run(["ip", "-n", lab.namespace, "-4", "neigh", "flush", "all"])
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "open", "200"])
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p", "443", "--format", "json",
            "-w", "1", "-m", "12", "--gap", "3", "--rate", "20000", "--send-path", "ring", "--verbose"],
            stdin: list.stdout, timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("198.18.0.1 not in the neighbour table yet"), "\(r.stderr)")
        let line = r.stderr.split(separator: "\n").last { $0.hasPrefix("fasttrace: 200 traces") }.map(String.init) ?? ""
        let viaSocket = line.range(of: #"TX ring on veth0 \(([0-9]+) through the raw socket\)"#, options: .regularExpression)
            .map { Int(line[$0].split(separator: "(")[1].split(separator: " ")[0]) ?? 0 } ?? 0
        let sent = probesSent(line) ?? 0
        #expect(viaSocket >= 1, "the first probes resolve the gateway through the socket: \(line)")
        #expect(viaSocket < sent / 2, "then the ring takes over: \(line)")
        let traces = parseTraces(r.stdout)
        let kind = lab.truth.kind(named: "open")
        #expect(traces.count == 200)
        #expect(traces.allSatisfy { problems($0, kind, probes: 3).isEmpty }, "\(traces.first { !problems($0, kind, probes: 3).isEmpty }.map { "\($0.target)" } ?? "")")
    }

    @Test("A tun device has no Ethernet header: auto falls back to the socket, ring is a one-line error")
    func tunDeviceFallsBack() throws {
        let ns = "ftTtun\(getpid() % 100_000)"
        try run(["ip", "netns", "add", ns])
        defer { _ = try? run(["ip", "netns", "del", ns]) }
        try run(["ip", "-n", ns, "link", "set", "lo", "up"])
        try run(["ip", "-n", ns, "tuntap", "add", "tun0", "mode", "tun"])
        try run(["ip", "-n", ns, "addr", "add", "198.18.9.1/30", "dev", "tun0"])
        try run(["ip", "-n", ns, "link", "set", "tun0", "up"])
        try run(["ip", "-n", ns, "route", "add", "198.19.200.0/24", "dev", "tun0"])
        let auto = runTool([fasttraceBinary, "--netns", ns, "-n", "--summary", "--verbose", "-q", "1", "-m", "3",
            "-w", "0.2", "--reasks", "0", "198.19.200.5", "80"])
        #expect(auto.status == 1, "not reached (nothing answers on the tun), not an error: \(auto.stderr)")
        #expect(auto.stderr.contains("fasttrace: send path: raw sockets (IPv4: IPPROTO_RAW; IPv6: with the IPv6 header "
            + "written), sendmmsg per batch; TX ring not used: tun0 has no link-layer header (link type 65534, a tun device)"), "\(auto.stderr)")
        #expect(auto.stderr.contains("3 probes sent"), "\(auto.stderr)")
        #expect(auto.stderr.contains("sent through the raw socket (TX ring not used: tun0 has no link-layer header"),
                "\(auto.stderr)")
        // The probes went out through the socket onto the tun (dropped there: no reader).
        let stats = try run(["ip", "-n", ns, "-s", "-j", "link", "show", "tun0"])
        #expect(stats.contains("\"tx_dropped\":3") || stats.contains("\"dropped\":3"), "\(stats)")
        let forced = runTool([fasttraceBinary, "--netns", ns, "-n", "--send-path", "ring", "-q", "1", "-m", "3",
            "198.19.200.5", "80"])
        #expect(forced.status == 1)
        #expect(forced.stderr == "fasttrace: --send-path ring: the TX ring cannot be used: tun0 has no link-layer "
            + "header (link type 65534, a tun device)\n", "\(forced.stderr)")
        #expect(forced.stdout.isEmpty, "nothing traced")
    }
}

@Suite("TX ring transport (root, network namespaces)", .serialized, .enabled(if: isRoot, "needs root"))
struct TxRingTransportTests {
    /// Resolves the vantage's gateway (NTF_USE makes the kernel ask) and waits until it is REACHABLE,
    /// so the ring has a next hop from its first probe.
    static func resolveGateway(_ net: TestNetwork) throws {
        try run(["ip", "-n", net.vantage, "neigh", "replace", "198.18.1.1", "dev", "v0", "use"])
        guard waitUntil(seconds: 5, {
            ((try? run(["ip", "-n", net.vantage, "neigh", "show", "198.18.1.1"])) ?? "").contains("REACHABLE")
        }) else { throw LabError("the gateway did not resolve") }
    }

    @Test("A frame the kernel refuses (TP_STATUS_WRONG_FORMAT) is counted as a send error and does not stall the ring")
    func wrongFormatIsCountedAndSkipped() async throws {
        let net = try TestNetwork.make()
        defer { net.destroy() }
        try Self.resolveGateway(net)
        let (big, small, counters, replies) = try await inNamespace(net.vantage) {
            let transport = try LinuxTransport(configuration: .init(sourcePorts: sourcePorts, sendPath: .ring))
            #expect(transport.sendPath.usesRing)
            let sink = CollectingSink()
            try transport.startReceiving(sink)
            defer { transport.stopReceiving() }
            // The ring read the MTU (1500) when it was set up; lowered now, the kernel refuses 1400-byte
            // frames the ring still takes for good (tpacket_snd: longer than the MTU).
            try run(["ip", "link", "set", "v0", "mtu", "1280"])
            func send(_ n: Int, length: Int, port: UInt16) throws -> Int {
                var consumed = 0
                for _ in 0..<50 where consumed < n {
                    consumed += try transport.send(count: n - consumed) { i, buffer in
                        let probe = TCPProbe(source: TestNetwork.vantageAddress, destination: TestNetwork.peerAddress,
                            sourcePort: port, destinationPort: 80, sequence: 0x5000_0000 | UInt32(consumed + i), ttl: 1,
                            ipID: 0x1000 | UInt16(consumed + i), length: length)
                        return (TCPProbeWriter.write(probe, into: buffer), IPAddress(TestNetwork.peerAddress))
                    }
                }
                return consumed
            }
            let big = try send(3, length: 1400, port: 40_001)
            let small = try send(5, length: 40, port: 40_002)
            _ = waitUntil(seconds: 3) { sink.snapshot.count >= 5 }
            return (big, small, transport.counters, sink.snapshot.map { ReplyKind($0.bytes) })
        }
        #expect(big == 3, "each refused probe is consumed (dropped and counted), not retried forever")
        #expect(small == 5)
        #expect(counters.ringFramesRefused == 3)
        #expect(counters.sendErrors == 3)
        #expect(counters.firstSendErrno == EMSGSIZE && counters.firstSendErrorOnRing, "\(counters)")
        #expect(counters.packetsSent == 5 && counters.packetsSentThroughRing == 5, "\(counters)")
        let answered = replies.filter { $0 == .timeExceeded(from: TestNetwork.routerNear, quotedSourcePort: 40_002) }
        #expect(answered.count == 5, "the ring went on after the refused frames: \(replies)")
    }

    @Test("With policy-routing rules the ring would not follow, auto takes the socket; ring runs and says so")
    func policyRulesFallBack() async throws {
        let net = try TestNetwork.make()
        defer { net.destroy() }
        try Self.resolveGateway(net)
        let (before, after, forced) = try await inNamespace(net.vantage) {
            let before = try LinuxTransport(configuration: .init(sourcePorts: sourcePorts)).sendPath
            try run(["ip", "rule", "add", "to", "198.19.77.0/24", "table", "100", "priority", "100"])
            let after = try LinuxTransport(configuration: .init(sourcePorts: sourcePorts)).sendPath
            let forced = try LinuxTransport(configuration: .init(sourcePorts: sourcePorts, sendPath: .ring)).sendPath
            return (before, after, forced)
        }
        #expect(before.usesRing, "no rules of its own: the main table decides, the ring runs")
        #expect(!after.usesRing)
        #expect(after.reason == "1 policy-routing rule (ip rule) the ring's next-hop choice would not follow")
        // Asked for, the ring runs (as with an output firewall: README, Send paths) and --verbose names the rule.
        #expect(forced.usesRing, "\(forced)")
        #expect(forced.detail.contains("(note: 1 policy-routing rule (ip rule) the ring's next-hop choice would not follow)"),
            "\(forced.detail)")
    }

    @Test("A full ring and a full send buffer are back-pressure: every probe goes out exactly once")
    func backPressureNotDrops() async throws {
        let net = try TestNetwork.make()
        defer { net.destroy() }
        try Self.resolveGateway(net)
        // The router answers every probe (no global ICMP limit), and the vantage's link drains at 1 Mbit/s
        // (about 2,000 probes/s) behind a queue long enough never to drop: frames stay in flight, and
        // the ring's socket, with the smallest send buffer the kernel allows, runs out of room at once.
        try run(["ip", "netns", "exec", net.router, "sysctl", "-qw", "net.ipv4.icmp_msgs_per_sec=1000000",
                 "net.ipv4.icmp_msgs_burst=1000000"])
        try run(["ip", "-n", net.vantage, "link", "set", "v0", "txqueuelen", "10000"])
        try run(["tc", "-n", net.vantage, "qdisc", "add", "dev", "v0", "root", "tbf", "rate", "1mbit", "burst", "1600",
                 "limit", "4000000"])
        let total = 2000
        let (sent, shortSends, counters, replies) = try await inNamespace(net.vantage) {
            let transport = try LinuxTransport(configuration: .init(sourcePorts: sourcePorts, sendBufferBytes: 1,
                                                                    sendPath: .ring))
            let sink = CollectingSink()
            try transport.startReceiving(sink)
            defer { transport.stopReceiving() }
            var sent = 0, shortSends = 0
            let deadline = Date().addingTimeInterval(30)
            while sent < total && Date() < deadline {
                let n = min(transport.maxBatch, total - sent)
                let done = try transport.send(count: n) { i, buffer in
                    let probe = TCPProbe(source: TestNetwork.vantageAddress, destination: TestNetwork.peerAddress,
                        sourcePort: 40_003, destinationPort: 80, sequence: UInt32(sent + i), ttl: 1, ipID: UInt16(1 + sent + i))
                    return (TCPProbeWriter.write(probe, into: buffer), IPAddress(TestNetwork.peerAddress))
                }
                if done < n { shortSends += 1; usleep(200) }
                sent += done
            }
            _ = waitUntil(seconds: 10) { sink.snapshot.count >= total }
            // The quoted sequence numbers: each probe's own.
            let quoted = sink.snapshot.compactMap { p -> UInt32? in
                let b = p.bytes
                guard b.count >= 20 + 8 + 20 + 8, b[9] == 1, b[20] == 11 else { return nil }
                let q = 28 + Int(b[28] & 0x0F) * 4
                return UInt32(b[q + 4]) << 24 | UInt32(b[q + 5]) << 16 | UInt32(b[q + 6]) << 8 | UInt32(b[q + 7])
            }
            return (sent, shortSends, transport.counters, quoted)
        }
        #expect(sent == total)
        #expect(shortSends > 0, "the ring pushed back (a send took fewer probes than asked)")
        #expect(counters.sendErrors == 0 && counters.packetsSentThroughRing == UInt64(total), "\(counters)")
        #expect(replies.count == total, "one time-exceeded per probe: none lost, none sent twice")
        #expect(Set(replies) == Set(0..<UInt32(total)), "each probe exactly once")
    }
}
