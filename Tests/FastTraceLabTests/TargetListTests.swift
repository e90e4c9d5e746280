// What a new user's target list holds and fasttrace used to trip over (issue 13), run in the lab: a
// BOM, an IPv6 line, a typo, a stray word, bytes that are not UTF-8, addresses no host has, repeated
// targets; each bad line is skipped with its line and reason, the rest is traced once per target ×
// port, the summary counts what was left out, and the exit status says so. Also the options typed the
// tcptraceroute way (`-q1 -w1 -m8`). Root and the lab (FT_LAB_PREFIX picks it).

import Foundation
import Testing

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct TargetListTests {
    /// The vantage's own on-link prefix (`198.18.0.0/30`) as (network, broadcast).
    func onLinkEnds(_ lab: Lab) throws -> (network: String, broadcast: String) {
        let shown = runTool(["ip", "-n", lab.namespace, "-o", "-4", "addr", "show", "dev", lab.truth.vantage.interface])
        let cidr = try #require(shown.stdout.split(separator: " ").first { $0.contains("/") && $0.contains(".") })
        let parts = cidr.split(separator: "/")
        let octets = parts[0].split(separator: ".").compactMap { UInt32($0) }
        let length = try #require(UInt32(parts[1]))
        let value = octets.reduce(0) { $0 << 8 | $1 }
        let mask: UInt32 = length == 0 ? 0 : ~0 << (32 - length)
        func text(_ v: UInt32) -> String { (0..<4).map { String((v >> (24 - 8 * $0)) & 0xFF) }.joined(separator: ".") }
        return (text(value & mask), text(value & mask | ~mask))
    }

    @Test("Bad lines are skipped with FILE:LINE, the rest traced once per target × port, counted, exit 3")
    func badLinesAreSkippedAndTheRestTraced() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = lab.truth.kind(named: "open").example
        let silent = lab.truth.kind(named: "silent").example
        let (network, broadcast) = try onLinkEnds(lab)
        // The open kind's /30 around its example holds `open` again: that one address is a duplicate.
        let parts = open.split(separator: ".")
        let quad = "\(parts[0]).\(parts[1]).\(parts[2]).\(Int(parts[3])! & ~3)/30"
        var bytes: [UInt8] = [0xEF, 0xBB, 0xBF]  // a BOM before line 1
        bytes += Array("""
            \(open)
            2001:db8::/64
            \(open)x!
            hello world
            255.255.255.255
            224.0.0.1
            \(broadcast)
            \(network)

            """.utf8)
        bytes += Array("caf".utf8) + [0xE9] + Array(".example\n".utf8)
        bytes += Array("\(silent)\n\(open)\n\(quad)\n".utf8)
        FileManager.default.createFile(atPath: scratch.file("list"), contents: Data(bytes))
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"), "-p", "443,https",
            "--format", "json", "-n", "-q", "1", "-w", "1", "-m", "10", "--gap", "3"], timeout: 120)
        #expect(r.status == 3, "exit \(r.status): \(r.stderr)")
        // Traced: line 1 (after the BOM), the silent target, and the /30 without the address already listed;
        // each once, on port 443 once.
        let traced = parseTraces(r.stdout)
        let expected = Set([open, silent] + (0..<4).map { "\(parts[0]).\(parts[1]).\(parts[2]).\((Int(parts[3])! & ~3) + $0)" })
        #expect(traced.count == expected.count, "\(traced.map(\.target))")
        #expect(Set(traced.map(\.target)) == expected && traced.allSatisfy { $0.port == 443 }, "\(traced.map(\.target))")
        let list = scratch.file("list")
        let notices = r.stderr.split(separator: "\n").map(String.init)
        let wanted = [
            "fasttrace: -p: port 443 is listed twice ('443' and 'https'): it is traced once",
            "fasttrace: \(list):2: '2001:db8::/64' expands to 2^64 addresses; the cap is 65536 (--max-prefix-addresses) (line skipped)",
            "fasttrace: \(list):3: '\(open)x!' is not a valid IPv4 address (only dotted-quad decimal is accepted) (line skipped)",
            "fasttrace: \(list):4: 'hello world': one target per line (line skipped)",
            "fasttrace: \(list):5: '255.255.255.255' is the limited broadcast address, not a host's: nothing to trace (line skipped)",
            "fasttrace: \(list):6: '224.0.0.1' is a multicast address (224.0.0.0/4), not a host's: nothing to trace (line skipped)",
            "fasttrace: \(list):7: \(broadcast): the broadcast address of \(network)/30 (on \(lab.truth.vantage.interface)), not a host's: nothing to trace (skipped)",
            "fasttrace: \(list):8: \(network): the network address of \(network)/30 (on \(lab.truth.vantage.interface)), not a host's: nothing to trace (skipped)",
            "fasttrace: \(list):9: 'caf\\xe9.example' is not valid UTF-8 (invalid bytes shown as \\xNN) (line skipped)",
            "fasttrace: \(list):11: \(open): listed before: traced once (duplicate dropped)",
            "fasttrace: \(list):12: \(quad): 1 of 4 addresses listed before: traced once (duplicate dropped)",
        ]
        #expect(Array(notices.prefix(wanted.count)) == wanted, "\(r.stderr)")
        #expect(notices.count == wanted.count + 1, "\(r.stderr)")
        let summary = try #require(notices.last)
        #expect(summary.hasPrefix("fasttrace: \(expected.count) traces,")
            && summary.hasSuffix(", 6 lines skipped, 2 targets skipped, 2 duplicate targets dropped"), "\(summary)")
    }

    @Test("A list of which no line is a target: one line per bad line, then 'no target could be traced', exit 2")
    func everyLineBad() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        scratch.write("list", "ff02::1\nnot a target\n0.0.0.0\n")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"), "-p", "443",
            "--format", "json", "-w", "1"])
        #expect(r.status == 2 && r.stdout.isEmpty, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.hasSuffix("fasttrace: \(scratch.file("list")): no target could be traced (3 lines skipped)\n"),
            "\(r.stderr)")
        // Nothing was traced and the run ends on that error: no "0 traces, 0 reached, …" summary before it.
        #expect(!r.stderr.contains("fasttrace: 0 traces"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 4, "3 notices and the error: \(r.stderr)")
    }

    @Test("A garbage list prints 10 notices and a count, not one line per line")
    func noticesAreCapped() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = lab.truth.kind(named: "open").example
        scratch.write("list", (1...500).map { "garbage\($0)!" }.joined(separator: "\n") + "\n\(open)\n")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"), "-p", "443",
            "--format", "json", "-n", "-q", "1", "-w", "1"])
        #expect(r.status == 3, "exit \(r.status): \(r.stderr)")
        #expect(parseTraces(r.stdout).map(\.target) == [open])
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 12, "\(r.stderr)")
        #expect(lines.filter { $0.hasSuffix("(line skipped)") }.count == 10)
        #expect(lines.contains { $0.hasSuffix("… and 490 more notices of skipped lines, targets or duplicates, not shown (counted in the summary)") },
            "\(r.stderr)")
        #expect(lines.last?.hasSuffix(", 500 lines skipped") == true, "\(lines.last ?? "")")
    }

    @Test("One target no host can have: one line, exit 2, nothing probed")
    func noHostTargets() throws {
        let lab = try Lab.get()
        let (_, broadcast) = try onLinkEnds(lab)
        let cases = [
            ("255.255.255.255", "fasttrace: '255.255.255.255' is the limited broadcast address, not a host's: nothing to trace\n"),
            ("0.0.0.0", "fasttrace: '0.0.0.0' is the unspecified address, not a host's: nothing to trace\n"),
            ("239.1.2.3", "fasttrace: '239.1.2.3' is a multicast address (224.0.0.0/4), not a host's: nothing to trace\n"),
            (broadcast, "fasttrace: \(broadcast): the broadcast address of "),
        ]
        for (target, message) in cases {
            let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-n", "-w", "1", target, "443"])
            #expect(r.status == 2 && r.stdout.isEmpty, "\(target): exit \(r.status): \(r.stdout)")
            #expect(r.stderr.hasPrefix(message) && r.stderr.split(separator: "\n").count == 1, "\(target): \(r.stderr)")
        }
    }

    @Test("Options typed the tcptraceroute way: -q1 -w1 -m8 -n, -p443, -s ADDR attached")
    func attachedValuesTrace() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open")
        let r = runTool([fasttraceBinary, "--netns", lab.namespace, "-q1", "-w1", "-m8", "-n",
            "-s\(lab.truth.vantage.address)", open.example, "443"])
        #expect(r.status == 0, "\(r.stderr)")
        let hops = r.stdout.split(separator: "\n").dropFirst(2)
        #expect(hops.count == open.destination_ttl, "\(r.stdout)")
        // One probe per hop: one RTT on the destination's line.
        #expect(hops.last?.components(separatedBy: " ms").count == 2, "\(r.stdout)")
        #expect(r.stdout.contains("address \(lab.truth.vantage.address),"), "\(r.stdout)")
        let list = runTool([fasttraceBinary, "--netns", lab.namespace, "--targets", "-", "-p443", "--format", "json",
            "-nq1", "-w1"], stdin: open.example + "\n")
        #expect(list.status == 0 && parseTraces(list.stdout).map(\.port) == [443], "\(list.stderr)")
    }
}
