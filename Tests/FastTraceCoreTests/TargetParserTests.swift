// Target lists and port lists: what is accepted, what is refused and how the refusal reads.

import FastTraceWire
import Testing

@testable import FastTraceCore

@Suite struct TargetParserTests {
    @Test func listWithCommentsBlanksPrefixesAndNames() throws {
        let text = "# lab targets\n198.51.100.7\n\n  203.0.113.0/30   # four\nexample.net\r\n198.18.0.9/32\n"
        let list = try TargetParser.parseList(text, source: "t.txt").get()
        #expect(list.map(\.line) == [2, 4, 5, 6])
        #expect(list.map(\.target) == [
            .address(IPv4Address(198, 51, 100, 7)), .prefix(IPv4Address(203, 0, 113, 0), length: 30),
            .hostname("example.net"), .address(IPv4Address(198, 18, 0, 9)),
        ])
    }

    @Test(arguments: [
        ("10.1.2", "t.txt:2: '10.1.2' is not a valid IPv4 address"),
        ("198.51.100.300", "t.txt:2: '198.51.100.300' is not a valid IPv4 address"),
        ("198.51.100.0/33", "t.txt:2: '198.51.100.0/33': prefix length must be 0...32 (got 33)"),
        ("198.51.100.0/024", "t.txt:2: '198.51.100.0/024': prefix length '024' has a leading zero; write /24"),
        ("198.51.100.0/", "t.txt:2: '198.51.100.0/': prefix length must be 0...32 (none after the '/')"),
        ("198.51.100.0/-1", "t.txt:2: '198.51.100.0/-1': prefix length must be 0...32 (got '-1')"),
        ("/24", "t.txt:2: '/24': no address before the '/'"),
        ("not/ok", "t.txt:2: 'not/ok': 'not' is not an IPv4 or IPv6 address (a prefix is ADDRESS/LENGTH)"),
        ("bad host!", "t.txt:2: 'bad host!': one target per line"),
        ("under_score$", "t.txt:2: 'under_score$' is neither an IPv4 or IPv6 address, a CIDR prefix nor a hostname"),
        ("10.0.0.0/8", "t.txt:2: '10.0.0.0/8' expands to 16777216 addresses; the cap is 65536 (--max-prefix-addresses)"),
        // Forms other tools read their own way are refused, never guessed, and never handed to the
        // resolver (getaddrinfo reads 0x0a.1.1.1 as 10.1.1.1 and 198.19.0.010 as 198.19.0.8).
        ("198.19.0.010", "t.txt:2: '198.19.0.010' is ambiguous: a leading zero is octal to some tools and decimal to others; write the octets without leading zeros"),
        ("01.02.03.04", "t.txt:2: '01.02.03.04' is ambiguous: a leading zero is octal to some tools and decimal to others; write the octets without leading zeros"),
        ("198.19.0.010/32", "t.txt:2: '198.19.0.010/32': '198.19.0.010' is not an IPv4 address"),
        ("0x0a.1.1.1", "t.txt:2: '0x0a.1.1.1' is not a valid IPv4 address (only dotted-quad decimal is accepted)"),
        ("198.19.0.0xa", "t.txt:2: '198.19.0.0xa' is not a valid IPv4 address (only dotted-quad decimal is accepted)"),
        ("1.2.3.4.5", "t.txt:2: '1.2.3.4.5' is not a valid IPv4 address"),
    ])
    func badLinesSayFileLineAndReason(line: String, message: String) {
        let result = TargetParser.parseList("192.0.2.1\n\(line)\n", source: "t.txt")
        guard case .failure(let error) = result else {
            Issue.record("accepted \(line)")
            return
        }
        #expect(error.description == message)
    }

    @Test func aSingleTargetIsResolvedOrSaysWhyNot() throws {
        let route: TargetResolution.SourceFor = {
            $0 == IPAddress(IPv4Address(203, 0, 113, 9)) ? .failure(ReasonError("no route to host"))
                : .success(IPAddress(IPv4Address(198, 18, 0, 2)))
        }
        let names: TargetResolution.Resolve = {
            $0 == "lab.example" ? .success(IPAddress(IPv4Address(192, 0, 2, 7))) : .failure(ReasonError("cannot resolve '\($0)'"))
        }
        let byAddress = try TargetResolution.single(.address(IPAddress(IPv4Address(192, 0, 2, 1))), port: 443,
            resolve: names, sourceFor: route).get()
        #expect(byAddress == TraceRequest(index: 0, destination: IPv4Address(192, 0, 2, 1), port: 443,
            source: IPv4Address(198, 18, 0, 2)))
        let byName = try TargetResolution.single(.hostname("lab.example"), port: 53, resolve: names, sourceFor: route).get()
        #expect(byName.destination == IPAddress(IPv4Address(192, 0, 2, 7)) && byName.name == "lab.example" && byName.port == 53)
        #expect(TargetResolution.single(.hostname("nowhere.invalid"), port: 443, resolve: names, sourceFor: route)
            == .failure(ReasonError("cannot resolve 'nowhere.invalid'")))
        #expect(TargetResolution.single(.address(IPAddress(IPv4Address(203, 0, 113, 9))), port: 443, resolve: names,
            sourceFor: route) == .failure(ReasonError("203.0.113.9: no route to host")))
    }

    @Test func ports() throws {
        #expect(try TargetParser.parsePorts("443").get() == [443])
        #expect(try TargetParser.parsePorts("80,443,80").get() == [80, 443])
        #expect(try TargetParser.parsePorts("8000-8003,22").get() == [8000, 8001, 8002, 8003, 22])
        for bad in ["0", "65536", "http", "", "80,", "10-5", "1-2-3", "-5", "99999999999999999999"] {
            guard case .failure = TargetParser.parsePorts(bad) else {
                Issue.record("accepted '\(bad)'")
                continue
            }
        }
    }

    @Test func portsByServiceName() throws {
        // As /etc/services has them; names may contain '-'.
        let services: [Substring: UInt16] = ["http": 80, "https": 443, "ssh": 22, "http-alt": 8080, "x11": 6000]
        let parse = { (text: String) in TargetParser.parsePorts(text, service: { services[$0] }) }
        #expect(try parse("https").get() == [443])
        #expect(try parse("https,ssh,443").get() == [443, 22])
        #expect(try parse("ssh-25").get() == Array(22...25))
        #expect(try parse("http-alt").get() == [8080])
        #expect(try parse("8078-http-alt").get() == [8078, 8079, 8080])
        #expect(try parse("http-alt-8081").get() == [8080, 8081])
        #expect(try parse("x11-6002").get() == [6000, 6001, 6002])
        let failures: [(String, String)] = [
            ("htps", "bad port 'htps': not a number, and no TCP service of that name"),
            ("443,nosuch", "bad port 'nosuch': not a number, and no TCP service of that name"),
            ("https-http", "bad port range 'https-http': start above end"),
            ("ssh-70000", "bad port 'ssh-70000': ports are 1...65535"),
            ("a\u{1b}b", "bad port 'a\u{1b}b'"),
        ]
        for (text, reason) in failures {
            #expect(parse(text) == .failure(ReasonError(reason)), "\(text)")
        }
        // Without a lookup (the engine's own callers), names are refused as before.
        #expect(TargetParser.parsePorts("https") == .failure(ReasonError("bad port 'https': not a number, and no TCP service of that name")))
    }
}
