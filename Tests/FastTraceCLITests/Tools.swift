// Running a peer tool (python3's csv module, Graphviz's dot) over formatter output in a unit test: input
// and output through temporary files, bounded in time.

import Foundation

/// The full path of `name` in PATH, or nil when it is not installed.
func toolPath(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

struct ToolOutput {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `arguments` (the first looked up in PATH) with `input` on stdin; killed after `timeout` seconds.
func runTool(_ arguments: [String], input: String, timeout: Double = 30) throws -> ToolOutput {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let inURL = dir.appendingPathComponent("in"), outURL = dir.appendingPathComponent("out")
    let errURL = dir.appendingPathComponent("err")
    try Data(input.utf8).write(to: inURL)
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: toolPath(arguments[0]) ?? arguments[0])
    process.arguments = Array(arguments.dropFirst())
    process.standardInput = try FileHandle(forReadingFrom: inURL)
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return ToolOutput(status: process.terminationStatus,
        stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}
