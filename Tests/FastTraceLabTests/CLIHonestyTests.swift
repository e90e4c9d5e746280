// "Never silently wrong", on the command-line side: a failed write of results, a -i/-s the route
// cannot use, and target lists that arrive slowly, resolve slowly or are very long. Each test runs the
// fasttrace binary in the lab's vantage namespace (scripts/lab.sh; FT_LAB_PREFIX picks the lab) and
// fails on the code before the change it names.

import Foundation
import Testing

/// A scratch directory for one test, removed by `cleanup()` (call it in a defer).
struct Scratch {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ft-cli-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func read(_ name: String) -> String { (try? String(contentsOfFile: file(name), encoding: .utf8)) ?? "" }
    func write(_ name: String, _ text: String) { FileManager.default.createFile(atPath: file(name), contents: Data(text.utf8)) }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Lines of `text` that are fasttrace JSON traces.
func traceCount(_ text: String) -> Int { parseTraces(text).count }

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct CLIHonestyTests {
    // MARK: 1. write errors

    @Test("Results written to /dev/full: exit 1 with one line naming the problem")
    func writeToFullDevice() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let open = lab.truth.kind(named: "open").example
        for arguments in [["-n", "-w", "1", open, "443"],
                          ["--format", "json", "-w", "1", open, "443"]] {
            let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace] + arguments,
                stdoutPath: "/dev/full", stderrPath: scratch.file("err")))
            let status = child.wait(timeout: 60)
            let err = scratch.read("err")
            #expect(status == 1, "\(arguments): \(err)")
            #expect(err == "fasttrace: writing results: No space left on device\n", "\(arguments)")
        }
        // Batch mode: the same, and promptly (not after the whole list).
        scratch.write("list", runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "300"]).stdout)
        let child = try #require(Child([fasttraceBinary, "--netns", lab.namespace, "--targets", scratch.file("list"),
            "-p", "443", "--format", "json", "-w", "1", "--rate", "20000"],
            stdoutPath: "/dev/full", stderrPath: scratch.file("err")))
        #expect(child.wait(timeout: 60) == 1)
        #expect(scratch.read("err") == "fasttrace: writing results: No space left on device\n")
    }

    @Test("A reader that goes away (closed pipe): exit 1 with one line, not a silent SIGPIPE death")
    func closedStdout() throws {
        let lab = try Lab.get()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // Open targets finish at once, black holes only after -w: the reader (head) is gone by then.
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "300"]).stdout
        scratch.write("list", list)
        let script = """
            "$0" --netns "$1" --targets "$2" -p 443 --format json -w 1 --rate 20000 2>"$3" | head -n 1 >/dev/null
            echo "${PIPESTATUS[0]}"
            """
        let r = runTool(["bash", "-c", script, fasttraceBinary, lab.namespace, scratch.file("list"), scratch.file("err")],
            timeout: 60)
        #expect(r.stdout == "1\n", "fasttrace exited \(r.stdout): \(scratch.read("err"))")
        #expect(scratch.read("err") == "fasttrace: writing results: Broken pipe\n")
    }
}
