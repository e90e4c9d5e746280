// TCP ACK and ECN-setup SYN probes (`-A`, `-E`) against the lab's real hosts and firewall, checked
// against the lab's truth and against nmap's ACK scan (`-sA`) of the same ports: the firewall passes
// 443 and drops the rest, so an ACK to 443 behind it is `unfiltered` and one to 8443 `filtered`; the
// open host resets an ACK whether its port is open (443) or closed (25). Root and the lab
// (FT_LAB_PREFIX picks it).

import Foundation
import Testing

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct ProbeMethodLabTests {
    @Test("-A: unfiltered where the destination resets the ACK, filtered behind a dropping firewall, as nmap -sA")
    func ackProbesAgreeWithNmap() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open"), firewalled = lab.truth.kind(named: "firewalled")
        let scratch = Scratch()
        defer { scratch.cleanup() }
        try "\(open.example)\n\(firewalled.example)\n".write(toFile: scratch.file("list"), atomically: true, encoding: .utf8)
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-A", "-n", "-q", "1", "-w", "1", "-m", "10",
            "--gap", "2", "--targets", scratch.file("list"), "-p", "443,25,8443", "--format", "json"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 6)
        var ours: [String: String] = [:]
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["tcp_flags"] as? String == "ack" && object["family"] as? String == "ipv4")
            let target = try #require(object["target"] as? String), port = try #require(object["port"] as? Int)
            ours["\(target):\(port)"] = object["state"] as? String
        }
        // nmap's ACK scan of the same hosts and ports, from the same namespace.
        for host in [open.example, firewalled.example] {
            let scan = runTool(["ip", "netns", "exec", lab.namespace, "nmap", "-n", "-Pn", "-sA", "-p", "443,25,8443",
                host], timeout: 120)
            #expect(scan.status == 0, "\(scan.stderr)")
            for port in [443, 25, 8443] {
                let row = scan.stdout.split(separator: "\n").first { $0.hasPrefix("\(port)/tcp") }
                let nmapState = row?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
                #expect(nmapState.map(String.init) == ours["\(host):\(port)"], "\(host):\(port): nmap \(row ?? "nothing")")
            }
        }
        #expect(ours["\(firewalled.example):443"] == "unfiltered" && ours["\(firewalled.example):8443"] == "filtered")
        #expect(ours["\(open.example):443"] == "unfiltered" && ours["\(open.example):25"] == "unfiltered")
    }

    @Test("-E: an ECN-setup SYN is answered as a SYN, its acceptance marked as tcptraceroute marks it; the text says which probes were sent")
    func ecnProbes() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-E", "-n", "-q", "1", "-w", "1", open.example, "443"],
            timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("on TCP port 443 (https) with ECN-setup SYN probes"), "\(r.stdout)")
        // The lab's hosts accept ECN when asked (net.ipv4.tcp_ecn=2): their SYN-ACK carries ECE, and the
        // mark is tcptraceroute's.
        #expect(r.stdout.contains("\(open.destination_ttl!)  \(open.example) [open, ecn]"), "\(r.stdout)")
        let peer = runTool(["ip", "netns", "exec", lab.namespace, "tcptraceroute", "-n", "-q", "1", "-E", open.example, "443"],
            timeout: 60)
        #expect(peer.stdout.contains("\(open.example) [open, ecn]"), "tcptraceroute: \(peer.stdout)")
        let ack = runTool([fasttraceBinary, "--netns", lab.namespace, "-A", "-n", "-q", "1", "-w", "1", open.example, "25"],
            timeout: 60)
        #expect(ack.stdout.contains("\(open.destination_ttl!)  \(open.example) [unfiltered]"), "\(ack.stdout)")
        let both = runTool([fasttraceBinary, "--netns", lab.namespace, "-A", "-E", open.example, "443"], timeout: 30)
        #expect(both.status == 2 && both.stderr.contains("-A and -E"), "\(both.stderr)")
    }
}
