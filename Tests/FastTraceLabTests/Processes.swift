// Starting commands from the lab tests. Every child goes through `posix_spawn`: Foundation's
// `Process` is not used (see `Child`), and output goes to files, so no pipe can fill up.

import Foundation

/// A child process started with `posix_spawn`. Foundation's `Process` is not used: the test runner's
/// threads block signals and children would inherit that mask (a child could never see SIGALRM or
/// SIGTERM), and `Process` can miss the exit of a child that leaves daemons behind (scripts/lab.sh up).
/// Here the child gets an empty signal mask and default handlers, and exit is found with waitpid.
final class Child {
    let pid: pid_t
    private(set) var status: Int32?

    /// Starts `arguments` (looked up in PATH) with stdin from `stdinPath` (or /dev/null) and stdout and
    /// stderr into the given files.
    init?(_ arguments: [String], stdinPath: String? = nil, stdoutPath: String = "/dev/null",
        stderrPath: String = "/dev/null")
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ) == 0 else { return nil }
        self.pid = pid
    }

    var isRunning: Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
            return false
        }
        return true
    }

    /// Waits up to `timeout` seconds, then kills it; returns the exit status (128+signal if killed).
    @discardableResult
    func wait(timeout: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(10_000) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { usleep(10_000) }
        }
        return status ?? -1
    }

    /// Kills it (SIGKILL) if it is still running and reaps it.
    func stop() {
        if isRunning { kill(pid, SIGKILL) }
        while isRunning { usleep(10_000) }
    }

    deinit { stop() }
}

struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a command with output to temporary files (no pipe can fill up), bounded in time.
@discardableResult
func runTool(_ arguments: [String], stdin: String? = nil, timeout: Double = 60) -> ToolResult {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-e2e-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let outPath = dir.appendingPathComponent("out").path, errPath = dir.appendingPathComponent("err").path
    var inPath: String?
    if let stdin {
        inPath = dir.appendingPathComponent("in").path
        try? stdin.write(toFile: inPath!, atomically: true, encoding: .utf8)
    }
    guard let child = Child(arguments, stdinPath: inPath, stdoutPath: outPath, stderrPath: errPath) else {
        return ToolResult(status: -1, stdout: "", stderr: "cannot start \(arguments[0])")
    }
    let status = child.wait(timeout: timeout)
    let o = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let e = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return ToolResult(status: status, stdout: o, stderr: e)
}

/// Runs a command (bounded in time) and returns its standard output; throws with its standard error
/// if it exits non-zero or is killed at the timeout.
@discardableResult
func run(_ arguments: [String], timeoutSeconds: Double = 20) throws -> String {
    let result = runTool(arguments, timeout: timeoutSeconds)
    guard result.status == 0 else {
        throw LabError("\(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return result.stdout
}
