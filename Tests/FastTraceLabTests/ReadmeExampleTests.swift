// The README's examples, run again in the lab (issue 13, item 15): every `$ fasttrace …` line inside a
// fenced block of README.md is an example, and the lines after it, up to the next `$` line or the end of
// the block, are what it printed. Each is run in this test's lab (`ftlab-vantage` becomes the lab in
// use, FT_LAB_PREFIX) and its output compared in shape: the same header, addresses, states and marks
// at every TTL, the same JSON keys and values and CSV fields; RTTs, the source port's number, `start`,
// `probes_sent` and the summary's timing are ignored. `…` in an example stands for lines, or text
// within a line, left out. An HTML comment `<!-- readme-example setup: NAME -->` before a block names
// what the lab needs for it beyond `scripts/lab.sh up` (set up here, and undone after). Examples whose
// command carries a `#` comment are run some other way (as another user) and are not run here.
// Root only.

import Foundation
import Testing

/// One example: the command as the README shows it and the lines it printed.
struct ReadmeExample: CustomStringConvertible {
    /// README.md line of the `$` command.
    var line: Int
    var command: [String]
    var expected: [String]
    /// What the block needs beyond the lab (`rewrite-ip-id`, `lab-names-and-asn`), if anything.
    var setup: String?

    var description: String { "README.md:\(line): $ \(command.joined(separator: " "))" }

    /// Every example in `readme`.
    static func all(in readme: String) -> [ReadmeExample] {
        var examples: [ReadmeExample] = []
        var inBlock = false
        var indent = 0
        var setup: String?
        var blockSetup: String?
        var current: ReadmeExample?
        func close() {
            if let example = current { examples.append(example) }
            current = nil
        }
        for (number, raw) in readme.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("```") {
                if inBlock {
                    close()
                    inBlock = false
                } else {
                    inBlock = true
                    indent = raw.prefix { $0 == " " }.count
                    blockSetup = setup
                    setup = nil
                }
                continue
            }
            guard inBlock else {
                if trimmed.hasPrefix("<!-- readme-example setup:") {
                    setup = trimmed.dropFirst("<!-- readme-example setup:".count).replacingOccurrences(of: "-->", with: "")
                        .trimmingCharacters(in: .whitespaces)
                } else if !trimmed.isEmpty {
                    setup = nil
                }
                continue
            }
            let text = raw.prefix(indent).allSatisfy { $0 == " " } ? String(raw.dropFirst(indent)) : String(raw)
            if text.hasPrefix("$ ") {
                close()
                let command = text.dropFirst(2)
                if command.hasPrefix("fasttrace ") && !command.contains("#") {
                    current = ReadmeExample(line: number + 1, command: command.split(separator: " ").map(String.init),
                        expected: [], setup: blockSetup)
                }
            } else if current != nil {
                current!.expected.append(text)
            }
        }
        return examples
    }

    /// The command as this lab runs it: the lab's vantage namespace (added when the example has no
    /// `--netns`), and the source port the example's output shows, so that ECMP picks the same branch.
    func arguments(namespace: String) -> [String] {
        var arguments = command.dropFirst().map { $0 == "ftlab-vantage" ? namespace : $0 }
        if !arguments.contains("--netns") { arguments = ["--netns", namespace] + arguments }
        if !arguments.contains("--sport"), let header = expected.first(where: { $0.hasPrefix("Selected device") }),
            let match = header.firstMatch(of: /port (\d+) for outgoing packets/)
        {
            arguments = ["--sport", String(match.1)] + arguments
        }
        return arguments
    }
}

// MARK: comparing output in shape

/// Output lines with what varies run to run replaced: RTTs and the source port in text; `sport`,
/// `probes_sent` and RTT fields in CSV; `start`, `sport`, `probes_sent` and RTT values in JSON (whose
/// objects, printed over several lines in the README, are put back together first).
func normalized(_ lines: [String]) -> [String] {
    var out: [String] = []
    var csvHeader: [Substring]?
    var json = ""
    var depth = 0
    for line in lines {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if depth > 0 || trimmed.hasPrefix("{") {
            // JSON, possibly spread over lines: collect until the braces balance (our examples hold no
            // braces inside strings).
            json += trimmed
            depth += trimmed.count { $0 == "{" } - trimmed.count { $0 == "}" }
            if depth == 0 {
                out.append(canonicalJSON(json))
                json = ""
            }
            continue
        }
        if trimmed.hasPrefix("target,") {
            csvHeader = trimmed.split(separator: ",", omittingEmptySubsequences: false)
            out.append(trimmed)
            continue
        }
        if let header = csvHeader, trimmed.count { $0 == "," } == header.count - 1 {
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).enumerated().map { i, field in
                let name = header[i]
                let varies = name == "sport" || name == "probes_sent" || (name.hasPrefix("rtt") && !field.isEmpty)
                return varies ? "_" : String(field)
            }
            out.append(fields.joined(separator: ","))
            continue
        }
        // MACs are made afresh with each lab, and a neighbour entry's state is the kernel's of the moment.
        out.append(line.replacing(/\d+\.\d{3} ms/, with: "_ ms")
            .replacing(/port \d+ for outgoing packets/, with: "port _ for outgoing packets")
            .replacing(/([0-9a-f]{2}:){5}[0-9a-f]{2}/, with: "_mac_")
            .replacing(/_mac_ \([A-Z|]+\)/, with: "_mac_ (_)"))
    }
    if !json.isEmpty { out.append("unbalanced JSON: " + json) }
    return out
}

/// A JSON object with sorted keys and what varies replaced (`start` keeps whether it is null).
func canonicalJSON(_ text: String) -> String {
    guard var object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        return "not JSON: " + text
    }
    if object["start"] is String { object["start"] = "_" }
    for key in ["sport", "probes_sent"] where object[key] != nil { object[key] = "_" }
    if let hops = object["hops"] as? [[String: Any]] {
        object["hops"] = hops.map { hop in
            var hop = hop
            if let rtts = hop["rtt_ms"] as? [Any] { hop["rtt_ms"] = rtts.map { $0 is NSNull ? $0 : "_" } }
            return hop
        }
    }
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return text }
    return String(decoding: data, as: UTF8.self)
}

/// Whether `actual` fits `expected`, where an expected line `…` stands for any number of lines and `…`
/// within a line for any text.
func fits(_ expected: [String], _ actual: [String]) -> Bool {
    func lineFits(_ pattern: String, _ line: String) -> Bool {
        guard pattern.contains("…") else { return pattern == line }
        let parts = pattern.split(separator: "…", omittingEmptySubsequences: false).map { NSRegularExpression.escapedPattern(for: String($0)) }
        return line.range(of: "^" + parts.joined(separator: ".*") + "$", options: .regularExpression) != nil
    }
    // fit[i][j]: expected[i...] fits actual[j...].
    var fit = Array(repeating: Array(repeating: false, count: actual.count + 1), count: expected.count + 1)
    fit[expected.count][actual.count] = true
    for i in stride(from: expected.count - 1, through: 0, by: -1) {
        for j in stride(from: actual.count, through: 0, by: -1) {
            if expected[i].trimmingCharacters(in: .whitespaces) == "…" {
                fit[i][j] = fit[i + 1][j] || (j < actual.count && fit[i][j + 1])
            } else {
                fit[i][j] = j < actual.count && lineFits(expected[i], actual[j]) && fit[i + 1][j + 1]
            }
        }
    }
    return fit[0][0]
}

// MARK: what some examples need beyond the lab

/// Runs `example` in the lab with whatever its block's setup needs, and returns its output lines
/// (stdout, then stderr).
func runExample(_ example: ReadmeExample, lab: Lab) throws -> [String] {
    var arguments = example.arguments(namespace: lab.namespace)
    let result: ToolResult
    switch example.setup {
    case nil:
        result = runTool([fasttraceBinary] + arguments, timeout: 90)
    case "rewrite-ip-id":
        // The vantage's own output chain rewrites every probe's IPv4 ID (as the README says).
        result = try withNftTable(in: lab.namespace, """
            chain out {
                type filter hook output priority 0; policy accept;
                tcp dport 443 ip id set 4660
            }
            """) { runTool([fasttraceBinary] + arguments, timeout: 90) }
    case "lab-names-and-asn":
        // The README's lab.tsv (two iptoasn rows) and hosts file, given to this run only.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let table = dir.appendingPathComponent("lab.tsv").path
        try "198.18.0.0\t198.18.0.255\t64500\tZZ\tLAB-CORE Lab backbone\n198.19.0.0\t198.19.255.255\t64501\tZZ\tLAB-HOSTING\n"
            .write(toFile: table, atomically: true, encoding: .utf8)
        let hosts = dir.appendingPathComponent("hosts").path
        try "127.0.0.1 localhost\n198.18.0.1 r1.lab.example\n198.18.0.5 r2.lab.example\n198.18.0.9 r3.lab.example\n198.19.0.10 web.lab.example\n"
            .write(toFile: hosts, atomically: true, encoding: .utf8)
        let nsswitch = dir.appendingPathComponent("nsswitch.conf").path
        try "hosts: files\n".write(toFile: nsswitch, atomically: true, encoding: .utf8)
        arguments = arguments.map { $0 == "lab.tsv" ? table : $0 }
        result = runWithPrivateFiles([(hosts, "/etc/hosts"), (nsswitch, "/etc/nsswitch.conf")],
            [fasttraceBinary] + arguments, timeout: 90)
    case let other?:
        throw LabError("README.md:\(example.line): unknown setup '\(other)'")
    }
    return (result.stdout + result.stderr).split(separator: "\n").map(String.init)
}

/// Runs `example` and compares its output with the README's; once more after 3 s when it does not fit,
/// since a router that was rate-limiting a moment ago (a test before switched the limits off) can still
/// drop an error. A README example that drifted fails both times. Returns the last output, normalized.
func runAndCompare(_ example: ReadmeExample, lab: Lab) throws -> (fits: Bool, actual: [String]) {
    let expected = normalized(example.expected)
    var actual: [String] = []
    for attempt in 0..<2 {
        if attempt > 0 { sleep(3) }
        actual = normalized(try runExample(example, lab: lab))
        if fits(expected, actual) { return (true, actual) }
    }
    return (false, actual)
}

/// The lines of every fenced block of `text` (indentation of the fence removed).
func fencedBlocks(_ text: String) -> [[String]] {
    var blocks: [[String]] = []
    var current: [String]?
    var indent = 0
    for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if raw.trimmingCharacters(in: .whitespaces).hasPrefix("```") {
            if let block = current {
                blocks.append(block)
                current = nil
            } else {
                current = []
                indent = raw.prefix { $0 == " " }.count
            }
        } else if current != nil {
            current!.append(raw.prefix(indent).allSatisfy { $0 == " " } ? String(raw.dropFirst(indent)) : String(raw))
        }
    }
    return blocks
}

/// The README's examples, read once.
let readmeExamples: [ReadmeExample] = {
    let text = (try? String(contentsOfFile: repoRoot + "/README.md", encoding: .utf8)) ?? ""
    return ReadmeExample.all(in: text)
}()

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct ReadmeExampleTests {
    @Test("The README's examples are found: lab traces in text, JSON and CSV, the setups, the argument errors")
    func examplesAreFound() throws {
        let labExamples = readmeExamples.filter { $0.command.contains("ftlab-vantage") }
        #expect(labExamples.count >= 7, "\(readmeExamples)")
        #expect(labExamples.contains { $0.command.contains("json") } && labExamples.contains { $0.command.contains("csv") })
        #expect(Set(readmeExamples.compactMap(\.setup)) == ["rewrite-ip-id", "lab-names-and-asn"])
        #expect(readmeExamples.allSatisfy { !$0.expected.isEmpty }, "an example with no output")
        #expect(readmeExamples.contains { !$0.command.contains("--netns") && $0.expected.first?.hasPrefix("fasttrace:") == true })
    }

    @Test("Every README example prints, in this lab, what the README shows (RTTs, ports and times aside)",
        arguments: readmeExamples.map(\.line))
    func exampleHolds(line: Int) throws {
        let lab = try Lab.get()
        let truth = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Lab.truthPath)))
            as? [String: Any]
        try #require(truth?["ratelimit"] as? Bool == false, "the README's examples are from the lab with rate limits off")
        let example = try #require(readmeExamples.first { $0.line == line })
        let (fitting, actual) = try runAndCompare(example, lab: lab)
        let expected = normalized(example.expected)
        #expect(fitting, """
            \(example) drifted from the README.
            README (normalized):
            \(expected.joined(separator: "\n"))
            this lab (normalized):
            \(actual.joined(separator: "\n"))
            """)
    }

    @Test("The Graphviz example: the README's commands, in this lab, print the graph text it shows (the lines shown, in order)")
    func dotExampleHolds() throws {
        let lab = try Lab.get()
        let readme = try String(contentsOfFile: repoRoot + "/README.md", encoding: .utf8)
        let blocks = fencedBlocks(readme)
        // The block with the commands (a list from lab.sh, then fasttrace … --format dot | dot …), and the
        // one with the text behind the picture.
        let commands = try #require(blocks.first { $0.contains { $0.contains("--format dot | dot") } })
        let graph = try #require(blocks.first { $0.first == "digraph fasttrace {" })
        let joined = commands.joined(separator: "\n").replacingOccurrences(of: "\\\n", with: " ")
            .split(separator: "\n").map(String.init)
        let listCommand = try #require(joined.first { $0.contains("lab.sh targets") })
        let traceCommand = try #require(joined.first { $0.hasPrefix("fasttrace ") })
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let list = runTool(["bash", "-c", "cd \"$1\" && " + listCommand.replacingOccurrences(of: "> lab-targets.txt",
            with: "> \"$2\""), "bash", repoRoot, scratch.file("lab-targets.txt")])
        #expect(list.status == 0, "\(list.stderr)")
        let arguments = try #require(traceCommand.components(separatedBy: " | ").first).split(separator: " ")
            .dropFirst().map { word -> String in
                switch word {
                case "ftlab-vantage": lab.namespace
                case "lab-targets.txt": scratch.file("lab-targets.txt")
                default: String(word)
                }
            }
        let run = runTool([fasttraceBinary] + arguments, timeout: 120)
        #expect(run.status == 0, "\(run.stderr)")
        let actual = run.stdout.split(separator: "\n").map(String.init)
        #expect(fits(graph, actual), "README:\n\(graph.joined(separator: "\n"))\nthis lab:\n\(run.stdout)")
    }

    @Test("The comparison fails when an example drifts: a hop address, a mark, a JSON value changed")
    func driftFails() throws {
        let lab = try Lab.get()
        for (pick, from, to) in [("-n -w 1 -m 10", " 7  198.18.0.41", " 7  198.18.0.42"),
            ("-n -w 1 -m 10", " 8  * * *", " 8  198.18.0.41  0.086 ms !A  0.044 ms !A  0.056 ms !A"),
            ("--format json", "\"dest_ttl\":8", "\"dest_ttl\":7")]
        {
            let example = try #require(readmeExamples.first { $0.command.joined(separator: " ").contains(pick) })
            var drifted = example
            drifted.expected = example.expected.map { $0.replacingOccurrences(of: from, with: to) }
            try #require(drifted.expected != example.expected, "\(from) not in \(example)")
            let (fitting, actual) = try runAndCompare(example, lab: lab)
            #expect(fitting)
            #expect(!fits(normalized(drifted.expected), actual), "\(from) → \(to) was not noticed")
        }
    }
}
