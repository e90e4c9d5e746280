// MPLS label stacks from a real ICMP error on the wire. The lab kernel cannot route MPLS, so a responder
// plays an MPLS router: in a test network's router namespace an nftables rule drops probes that would
// expire there (TTL 1, before the kernel answers them), and a Python program reading the router's
// inbound interface (AF_PACKET sees packets before netfilter) answers each with a time exceeded that
// carries an RFC 4884 extension with an RFC 4950 label stack, sent from the router's address. fasttrace,
// in the vantage namespace, must show the stack at hop 1 for every probe kind.

import Foundation
import Testing

/// The responder: argv = interface, the destination whose expiring probes it answers, its own address.
let mplsResponder = #"""
    import socket, struct, sys
    iface, target, me = sys.argv[1], socket.inet_aton(sys.argv[2]), socket.inet_aton(sys.argv[3])
    def csum(b):
        if len(b) % 2: b += b"\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        while s >> 16: s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF
    entries = [(24001 << 12) | (0 << 9) | (0 << 8) | 1, (16 << 12) | (5 << 9) | (1 << 8) | 1]
    obj = struct.pack("!HBB", 4 + 4 * len(entries), 1, 1) + b"".join(struct.pack("!I", e) for e in entries)
    ext = struct.pack("!BBH", 0x20, 0, 0) + obj
    ext = ext[:2] + struct.pack("!H", csum(ext)) + ext[4:]
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    sniff.bind((iface, 0))
    out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    open(sys.argv[4], "w").write("ready\n")
    for _ in range(100000):
        pkt, addr = sniff.recvfrom(4096)
        if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 28 or pkt[8] != 1 or pkt[16:20] != target:
            continue
        original = pkt[:128].ljust(128, b"\0")
        icmp = struct.pack("!BBHBBH", 11, 0, 0, 0, 32, 0) + original + ext
        icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, me, pkt[12:16])
        out.sendto(ip + icmp, (socket.inet_ntoa(pkt[12:16]), 0))
    """#

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct MPLSLabTests {
    @Test("A router's extended time exceeded shows its MPLS label stack, for TCP, UDP and ICMP echo probes")
    func labelStackFromTheWire() throws {
        let net = try TestNetwork.make()
        defer { net.destroy() }
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // The kernel's own answer to expiring probes is dropped before routing; the responder answers.
        _ = try run(["ip", "netns", "exec", net.router, "nft", "add table ip mpls { chain pre { type filter hook "
            + "prerouting priority -300; ip daddr 198.18.2.2 ip ttl 1 drop; }; }"])
        let ready = scratch.file("ready")
        let responder = try #require(Child(["ip", "netns", "exec", net.router, python3, "-c", mplsResponder, "r0",
            "198.18.2.2", "198.18.1.1", ready], stderrPath: scratch.file("responder.err")))
        defer { responder.stop() }
        _ = waitUntil(seconds: 10) { FileManager.default.fileExists(atPath: ready) }
        for (method, port) in [(["-T"], ["80"]), (["-U"], ["33434"]), (["-I"], [String]())] {
            let r = runTool([fasttraceBinary, "--netns", net.vantage, "-n", "-q", "1", "-w", "1", "-m", "3"] + method
                + ["198.18.2.2"] + port, timeout: 30)
            #expect(r.stdout.contains(" 1  198.18.1.1 <MPLS:L=24001,E=0,S=0,T=1/L=16,E=5,S=1,T=1>  "),
                "\(method): \(r.stdout)\(r.stderr)\(scratch.read("responder.err"))")
            #expect(r.stdout.contains(" 2  198.18.2.2 "), "\(method): \(r.stdout)")
            let json = runTool([fasttraceBinary, "--netns", net.vantage, "-n", "-q", "1", "-w", "1", "-m", "3",
                "--format", "json", "--targets", "-"] + method + (port.isEmpty ? [] : ["-p"] + port),
                stdin: "198.18.2.2\n", timeout: 30)
            #expect(json.stdout.contains(#""mpls":[{"label":24001,"tc":0,"s":0,"ttl":1},{"label":16,"tc":5,"s":1,"ttl":1}]"#),
                "\(method): \(json.stdout)")
            // CSV: the hop's row carries the stack in its mpls column (after addrs), spelled as the text mark,
            // quoted for its commas.
            let csv = runTool([fasttraceBinary, "--netns", net.vantage, "-n", "-q", "1", "-w", "1", "-m", "3",
                "--format", "csv"] + method + ["198.18.2.2"] + port, timeout: 30)
            #expect(csv.stdout.split(separator: "\n").first?.contains(",addrs,mpls,") == true, "\(csv.stdout)")
            #expect(csv.stdout.split(separator: "\n").contains { $0.contains(",1,198.18.1.1,time-exceeded,")
                && $0.contains(#","L=24001,E=0,S=0,T=1/L=16,E=5,S=1,T=1","#) }, "\(method): \(csv.stdout)")
        }
    }
}
