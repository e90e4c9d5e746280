// Least privilege, tried on this kernel: the fasttrace binary run as `nobody` with exactly the file
// capabilities it asks for (and with each smaller set), capabilities read from /proc/PID/status in
// the middle of a run, and the install script's result run by an unprivileged user. Root and the lab.

@testable import FastTraceLinux
import Foundation
import Testing

/// `arguments` run as nobody (uid and gid 65534, no groups, no inheritable capabilities) inside the
/// lab's vantage namespace: only file capabilities can give it any.
func asNobody(_ lab: Lab, _ arguments: [String]) -> [String] {
    ["ip", "netns", "exec", lab.namespace, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
     "--inh-caps=-all"] + arguments
}

/// A fresh directory under /tmp that nobody can read and enter (file capabilities need a filesystem
/// with extended attributes, which /tmp has here); removed by the caller.
func makeOpenDirectory(_ tag: String) throws -> String {
    let path = "/tmp/ft-\(tag)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false,
                                            attributes: [.posixPermissions: 0o755])
    return path
}

/// A copy of the fasttrace binary in `directory`, executable by anyone, with file capabilities
/// `caps` (`cap_net_raw,cap_bpf`; empty: none).
func capabilityCopy(in directory: String, caps: String) throws -> String {
    let name = "fasttrace-" + (caps.isEmpty ? "nocaps" : caps.replacingOccurrences(of: ",", with: "-"))
    let path = directory + "/" + name
    try FileManager.default.copyItem(atPath: fasttraceBinary, toPath: path)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
    if !caps.isEmpty { try run(["setcap", caps + "+ep", path]) }
    return path
}

/// `/proc/PID/task/*/status` of every thread of `pid`, as field → value.
func threadStatuses(_ pid: pid_t) -> [[String: String]] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.compactMap { tid in
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8) else {
            return nil
        }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }
}

/// The capabilities named in a one-line privilege message, in order (`CAP_NET_RAW`, …), before the
/// advice part.
func capabilitiesNamed(_ message: String) -> [String] {
    let head = message.components(separatedBy: ": run as root").first ?? message
    var names: [String] = []
    var rest = Substring(head)
    while let range = rest.range(of: "CAP_") {
        let name = rest[range.lowerBound...].prefix { $0 == "_" || $0.isUppercase }
        rest = rest[name.endIndex...]
        // Only capabilities named as missing: "missing CAP_X (…) and CAP_Y (…)", not those inside
        // the parentheses ("CAP_NET_ADMIN does not allow it").
        let before = head[..<name.startIndex]
        if before.last(where: { $0 == "(" || $0 == ")" }) == "(" { continue }
        names.append(String(name))
    }
    return names
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: setcap, setpriv, network namespaces"))
struct LeastPrivilegeTests {
    /// What this kernel asks for (`kernel.unprivileged_bpf_disabled`, `cap_last_cap`).
    let requirements = Privileges.requirements()

    @Test("Exactly the documented capabilities: each smaller set is refused in one line naming what is missing (exit 2); the full set traces")
    func exactCapabilitySet() throws {
        let lab = try Lab.get()
        let directory = try makeOpenDirectory("caps")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let needed = requirements.fileCapabilities.map(\.name)
        let exact = requirements.fileCapabilities.map(\.setcapName).joined(separator: ",")
        let target = lab.truth.kind(named: "open").example
        // Smaller sets, and CAP_NET_ADMIN in place of CAP_BPF (what the README used to say).
        var sets = ["", "cap_net_raw", "cap_net_raw,cap_net_admin", "cap_bpf", "cap_net_admin"]
        sets.removeAll { $0 == exact }
        for caps in sets {
            let binary = try capabilityCopy(in: directory, caps: caps)
            let granted = Set(caps.split(separator: ",").map { $0.uppercased() })
            let missing = needed.filter { !granted.contains($0) }
            if missing.isEmpty { continue }  // enough on this kernel (unprivileged BPF allowed)
            let r = runTool(asNobody(lab, [binary, "-n", "-q", "1", "-w", "1", "-m", "8", target, "443"]), timeout: 30)
            let lines = r.stderr.split(separator: "\n")
            #expect(r.status == 2, "[\(caps)]: exit \(r.status): \(r.stderr)")
            #expect(lines.count == 1, "[\(caps)]: one line, not \(lines.count): \(r.stderr)")
            #expect(r.stdout.isEmpty, "[\(caps)]: \(r.stdout)")
            #expect(!r.stderr.contains("libbpf"), "[\(caps)]: \(r.stderr)")
            #expect(capabilitiesNamed(r.stderr) == missing, "[\(caps)]: names \(capabilitiesNamed(r.stderr)), missing \(missing): \(r.stderr)")
            #expect(r.stderr.contains("sudo setcap \(exact)+ep \(binary)"), "[\(caps)]: \(r.stderr)")
            if caps.contains("cap_net_admin") && needed.contains("CAP_BPF") {
                #expect(r.stderr.contains("CAP_NET_ADMIN does not allow it"), "\(r.stderr)")
            }
        }
        // The exact set is enough: the trace reaches the target at its TTL.
        let binary = try capabilityCopy(in: directory, caps: exact)
        let r = runTool(asNobody(lab, [binary, "-n", "-q", "1", "-w", "1", "-m", "8", target, "443"]), timeout: 30)
        #expect(r.status == 0, "[\(exact)]: \(r.stderr)")
        let ttl = lab.truth.kind(named: "open").destination_ttl!
        #expect(r.stdout.contains("\n \(ttl)  \(target) [open]"), "\(r.stdout)")
        // --netns needs CAP_SYS_ADMIN as well, which file capabilities do not give: named, one line.
        let n = runTool(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
            binary, "--netns", lab.namespace, "-n", target, "443"], timeout: 30)
        #expect(n.status == 2 && n.stderr.split(separator: "\n").count == 1, "\(n.stderr)")
        #expect(capabilitiesNamed(n.stderr) == ["CAP_SYS_ADMIN"], "\(n.stderr)")
    }

    /// Starts a batch long enough to be caught mid-run (black-holed targets wait out -w 2 at several
    /// TTLs), reads every thread's capabilities once results have started to come out, and checks the
    /// run's results against the truth.
    func capabilitiesMidRun(command: (_ listPath: String) -> [String], directory: String)
        throws -> (statuses: [[String: String]], wasRunning: Bool)
    {
        let lab = try Lab.get()
        let open = runTool([repoRoot + "/scripts/lab.sh", "targets", "open", "20"]).stdout
        let hole = runTool([repoRoot + "/scripts/lab.sh", "targets", "blackhole", "3"]).stdout
        let listPath = directory + "/list"
        #expect(FileManager.default.createFile(atPath: listPath, contents: Data((open + hole).utf8),
                                               attributes: [.posixPermissions: 0o644]))
        let outPath = directory + "/out", errPath = directory + "/err"
        guard let child = Child(command(listPath), stdoutPath: outPath, stderrPath: errPath) else {
            throw LabError("cannot start \(command(listPath))")
        }
        defer { child.stop() }
        // Results are written at least every 100 ms: the first line means set-up is long over.
        let deadline = Date().addingTimeInterval(30)
        while child.isRunning && Date() < deadline
            && ((try? FileManager.default.attributesOfItem(atPath: outPath)[.size] as? Int) ?? 0) == 0
        {
            usleep(20_000)
        }
        let statuses = threadStatuses(child.pid)
        let wasRunning = child.isRunning
        let status = child.wait(timeout: 120)
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        #expect(status == 0, "exit \(status): \(err)")
        let traces = parseTraces(out)
        #expect(traces.count == 23, "\(traces.count) traces: \(err)")
        var wrong: [String] = []
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else { wrong.append(trace.target); continue }
            let p = problems(trace, kind, probes: 1)
            if !p.isEmpty { wrong.append("\(trace.target) (\(kind.kind)): \(p)") }
        }
        #expect(wrong.isEmpty, "\(wrong)")
        return (statuses, wasRunning)
    }

    static let batchOptions = ["-p", "443", "--format", "json", "-q", "1", "-w", "2", "-m", "10", "--gap", "3",
                               "--rate", "200"]

    @Test("Run as root, mid-run every thread has no capability left (bounding set too) and no_new_privs; the results are right")
    func rootDropsEverything() throws {
        let lab = try Lab.get()
        let directory = try makeOpenDirectory("drop-root")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (statuses, wasRunning) = try capabilitiesMidRun(command: { list in
            [fasttraceBinary, "--netns", lab.namespace, "--targets", list] + Self.batchOptions
        }, directory: directory)
        #expect(wasRunning, "the run ended before its capabilities were read")
        #expect(!statuses.isEmpty)
        for s in statuses {
            for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                #expect(s[field] == "0000000000000000", "thread \(s["Pid"] ?? "?"): \(field) \(s[field] ?? "-")")
            }
            #expect(s["NoNewPrivs"] == "1", "thread \(s["Pid"] ?? "?")")
            #expect(s["Uid"]?.hasPrefix("0\t") == true, "still root, only without capabilities")
        }
    }

    @Test("Run as nobody with file capabilities, mid-run no thread holds any (effective, permitted, ambient) and no_new_privs is set; the results are right")
    func fileCapabilitiesDropped() throws {
        let lab = try Lab.get()
        let directory = try makeOpenDirectory("drop-nobody")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let binary = try capabilityCopy(in: directory, caps: requirements.setcapArgument.replacingOccurrences(of: "+ep", with: ""))
        let (statuses, wasRunning) = try capabilitiesMidRun(command: { list in
            asNobody(lab, [binary, "--targets", list] + Self.batchOptions)
        }, directory: directory)
        #expect(wasRunning, "the run ended before its capabilities were read")
        #expect(!statuses.isEmpty)
        for s in statuses {
            for field in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
                #expect(s[field] == "0000000000000000", "thread \(s["Pid"] ?? "?"): \(field) \(s[field] ?? "-")")
            }
            #expect(s["NoNewPrivs"] == "1", "thread \(s["Pid"] ?? "?")")
            #expect(s["Uid"]?.hasPrefix("65534\t") == true)
        }
    }
}

@Suite("Privilege requirements (no privileges needed)")
struct PrivilegeRequirementTests {
    @Test("Unprivileged BPF disabled (1 or 2): CAP_NET_RAW and CAP_BPF; CAP_NET_ADMIN is not enough")
    func bpfDisabled() {
        for value in [1, 2] {
            let r = PrivilegeRequirements(unprivilegedBPFDisabled: value, lastCapability: 40, entersNamespace: false)
            #expect(r.fileCapabilities == [.netRaw, .bpf])
            #expect(r.setcapArgument == "cap_net_raw,cap_bpf+ep")
            #expect(r.missing(effective: 0) == [.netRaw, .bpf])
            #expect(r.missing(effective: Capability.netRaw.bit | Capability.netAdmin.bit) == [.bpf])
            #expect(r.missing(effective: Capability.netRaw.bit | Capability.bpf.bit).isEmpty)
            // The kernel's bpf_capable(): CAP_SYS_ADMIN allows BPF too.
            #expect(r.missing(effective: Capability.netRaw.bit | Capability.sysAdmin.bit).isEmpty)
            let message = r.message(effective: Capability.netRaw.bit | Capability.netAdmin.bit, executable: "/x/fasttrace")
            #expect(message == "missing CAP_BPF (loading the reply filter, kernel.unprivileged_bpf_disabled=\(value); "
                + "CAP_NET_ADMIN does not allow it): run as root, or grant exactly what it needs: "
                + "sudo setcap cap_net_raw,cap_bpf+ep /x/fasttrace")
        }
    }

    @Test("Unprivileged BPF allowed (0): CAP_NET_RAW alone")
    func bpfAllowed() {
        let r = PrivilegeRequirements(unprivilegedBPFDisabled: 0, lastCapability: 40, entersNamespace: false)
        #expect(r.fileCapabilities == [.netRaw])
        #expect(r.setcapArgument == "cap_net_raw+ep")
        #expect(r.message(effective: Capability.netRaw.bit, executable: "f") == nil)
        #expect(r.message(effective: 0, executable: "f")
            == "missing CAP_NET_RAW (raw IPv4 and packet sockets): run as root, or grant exactly what it needs: sudo setcap cap_net_raw+ep f")
    }

    @Test("A kernel without CAP_BPF (before 5.8) needs CAP_SYS_ADMIN for the filter; unreadable settings count as disabled")
    func olderKernels() {
        let old = PrivilegeRequirements(unprivilegedBPFDisabled: 1, lastCapability: 37, entersNamespace: false)
        #expect(old.fileCapabilities == [.netRaw, .sysAdmin])
        let unknown = PrivilegeRequirements(unprivilegedBPFDisabled: nil, lastCapability: nil, entersNamespace: false)
        #expect(unknown.fileCapabilities == [.netRaw, .bpf])
        #expect(unknown.message(effective: Capability.netRaw.bit, executable: "f")
            == "missing CAP_BPF (loading the reply filter): run as root, or grant exactly what it needs: sudo setcap cap_net_raw,cap_bpf+ep f")
    }

    @Test("--netns adds CAP_SYS_ADMIN, which no file capability advice covers")
    func namespace() {
        let r = PrivilegeRequirements(unprivilegedBPFDisabled: 2, lastCapability: 40, entersNamespace: true)
        #expect(r.required == [.netRaw, .bpf, .sysAdmin])
        #expect(r.fileCapabilities == [.netRaw, .bpf])
        let full = Capability.netRaw.bit | Capability.bpf.bit
        #expect(r.message(effective: full, executable: "f")
            == "missing CAP_SYS_ADMIN (--netns enters a network namespace): run as root")
        #expect(r.message(effective: 0, executable: "f")
            == "missing CAP_NET_RAW (raw IPv4 and packet sockets), CAP_BPF (loading the reply filter, "
            + "kernel.unprivileged_bpf_disabled=2) and CAP_SYS_ADMIN (--netns enters a network namespace): run as root, "
            + "or grant exactly what it needs: sudo setcap cap_net_raw,cap_bpf+ep f (--netns needs root all the same)")
        #expect(r.message(effective: full | Capability.sysAdmin.bit, executable: "f") == nil)
    }

    @Test("libbpf's warnings, when they are the detail of an error, become one line")
    func libbpfOneLine() {
        // As the shim captured them for bpf_object__load failing (the text libbpf printed in the issue).
        let captured = "bpf_object__load(reply filter): Operation not permitted (libbpf: libbpf: Failed to bump "
            + "RLIMIT_MEMLOCK (err = -1), you might need to do it explicitly!\nlibbpf: Error in "
            + "bpf_object__probe_loading():Operation not permitted(1).\n\tlibbpf: failed to load object "
            + "'fasttrace_reply_filter')\n"
        #expect(ReplyFilter.oneLine(captured) == "bpf_object__load(reply filter): Operation not permitted (libbpf: "
            + "Failed to bump RLIMIT_MEMLOCK (err = -1), you might need to do it explicitly!; Error in "
            + "bpf_object__probe_loading():Operation not permitted(1).; failed to load object 'fasttrace_reply_filter')")
        #expect(ReplyFilter.oneLine("\n\n") == nil)
    }

    @Test("capabilitiesNamed reads the missing ones only")
    func namedParser() {
        #expect(capabilitiesNamed("fasttrace: missing CAP_BPF (x; CAP_NET_ADMIN does not allow it): run as root, or sudo setcap cap_net_raw,cap_bpf+ep f")
            == ["CAP_BPF"])
        #expect(capabilitiesNamed("fasttrace: missing CAP_NET_RAW (raw) and CAP_BPF (y): run as root") == ["CAP_NET_RAW", "CAP_BPF"])
    }
}
