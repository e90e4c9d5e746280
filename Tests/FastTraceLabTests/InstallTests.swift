// The install as a user meets it: scripts/install.sh into a temporary prefix, the installed binary run by
// an unprivileged user with nothing but its file capabilities, the man page and completions, then
// --uninstall leaving nothing behind. Root and the lab.
//
// The release build happens inside this test, in its own scratch path (.build-release): the
// `swift test` running this holds the lock on .build, so a build there would wait for ever. Later runs
// find it up to date.

import FastTraceLinux
import Foundation
import Testing

@Suite(.serialized, .enabled(if: isRoot, "needs root: setcap, runuser, network namespaces"))
struct InstallTests {
    static let scratchPath = ".build-release"

    @Test("scripts/install.sh PREFIX: static binary with exactly its capabilities, traced as nobody; man page, completions; --uninstall removes all")
    func installRunUninstall() throws {
        let lab = try Lab.get()
        let prefix = try makeOpenDirectory("install")
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let script = repoRoot + "/scripts/install.sh"
        let install = runTool(["env", "FT_SCRATCH_PATH=\(repoRoot)/\(Self.scratchPath)", script, prefix], timeout: 1800)
        try #require(install.status == 0, "install.sh failed (\(install.status)): \(install.stdout) \(install.stderr)")

        let files = ["bin/fasttrace", "share/man/man1/fasttrace.1", "share/bash-completion/completions/fasttrace",
                     "share/zsh/site-functions/_fasttrace", "share/fish/vendor_completions.d/fasttrace.fish",
                     "share/fasttrace/install-manifest"].map { prefix + "/" + $0 }
        for file in files {
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            #expect(size > 0, "\(file) missing or empty")
        }
        let binary = prefix + "/bin/fasttrace"

        // Exactly the capabilities this kernel needs, nothing else; the Swift runtime linked in.
        let requirements = Privileges.requirements()
        let getcap = runTool(["getcap", binary]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = requirements.fileCapabilities.sorted { $0.number < $1.number }.map(\.setcapName)
            .joined(separator: ",") + "=ep"
        #expect(getcap == "\(binary) \(expected)", "\(getcap)")
        let ldd = runTool(["ldd", binary]).stdout
        #expect(ldd.contains("libmnl.so") && ldd.contains("libbpf.so"), "\(ldd)")
        #expect(!ldd.contains("libswift") && !ldd.contains("libFoundation") && !ldd.contains("libdispatch"), "\(ldd)")

        // nobody, with only the file capabilities, inside the lab: the path is right.
        let open = lab.truth.kind(named: "open")
        let asNobody = ["ip", "netns", "exec", lab.namespace, "runuser", "-u", "nobody", "--"]
        let single = runTool(asNobody + [binary, "-n", "-q", "1", "-w", "1", "-m", "10", open.example, "443"], timeout: 60)
        #expect(single.status == 0, "\(single.stderr)")
        let hopLines = single.stdout.split(separator: "\n").dropFirst(2)
        #expect(hopLines.count == open.destination_ttl!, "\(single.stdout)")
        #expect(hopLines.last?.hasPrefix(" \(open.destination_ttl!)  \(open.example) [open]") == true, "\(single.stdout)")
        for (i, line) in hopLines.dropLast().enumerated() {
            let address = line.split(separator: " ").dropFirst().first.map(String.init) ?? "*"
            #expect(open.hops[i].contains(address), "TTL \(i + 1): \(line), expected one of \(open.hops[i])")
        }
        let list = runTool([repoRoot + "/scripts/lab.sh", "targets", "mixed", "20"]).stdout
        let batch = runTool(asNobody + [binary, "--targets", "-", "-p", "443", "--format", "json", "-q", "1", "-w", "1",
            "-m", "12", "--gap", "3"], stdin: list, timeout: 120)
        #expect(batch.status == 0, "\(batch.stderr)")
        let traces = parseTraces(batch.stdout)
        #expect(traces.count == 20)
        for trace in traces {
            guard let kind = lab.truth.kind(of: trace.target) else { Issue.record("\(trace.target)"); continue }
            let p = problems(trace, kind, probes: 1)
            #expect(p.isEmpty, "\(trace.target) (\(kind.kind)): \(p)")
        }

        // The same binary without its file capabilities: one line naming what is missing, exit 2.
        let bareDirectory = try makeOpenDirectory("install-copy")
        defer { try? FileManager.default.removeItem(atPath: bareDirectory) }
        let bare = bareDirectory + "/fasttrace"
        try FileManager.default.copyItem(atPath: binary, toPath: bare)  // a copy loses the xattr
        let refused = runTool(asNobody + [bare, "-n", open.example, "443"], timeout: 30)
        #expect(refused.status == 2, "\(refused.status): \(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(capabilitiesNamed(refused.stderr) == requirements.fileCapabilities.map(\.name), "\(refused.stderr)")
        #expect(refused.stderr.contains("sudo setcap \(requirements.setcapArgument) \(bare)"), "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)

        // The man page renders without warnings and documents the options; the completions parse.
        let page = prefix + "/share/man/man1/fasttrace.1"
        let groff = runTool(["groff", "-mandoc", "-Tutf8", "-ww", page])
        #expect(groff.status == 0 && groff.stderr.isEmpty, "\(groff.stderr)")
        let man = runTool(["env", "MANWIDTH=100", "man", "-l", page])
        #expect(man.status == 0, "\(man.stderr)")
        for text in ["FASTTRACE(1)", "NAME", "SYNOPSIS", "--targets", "--netns", "CAP_NET_RAW"] {
            #expect(man.stdout.contains(text), "man page lacks \(text)")
        }
        #expect(!man.stdout.contains("subcommand"), "the implicit help subcommand: \(man.stdout)")
        #expect(man.stdout.contains("(default: 30)") && man.stdout.contains("130") && !man.stdout.contains(">0 if an error"),
            "defaults and exit statuses")
        #expect(!install.stderr.contains("warning"), "an open prefix gets no warning: \(install.stderr)")
        let bash = runTool(["bash", "-n", prefix + "/share/bash-completion/completions/fasttrace"])
        #expect(bash.status == 0, "\(bash.stderr)")
        let bashComplete = try String(contentsOfFile: prefix + "/share/bash-completion/completions/fasttrace", encoding: .utf8)
        #expect(bashComplete.contains("complete") && bashComplete.contains("--targets"))
        let zsh = try String(contentsOfFile: prefix + "/share/zsh/site-functions/_fasttrace", encoding: .utf8)
        #expect(zsh.hasPrefix("#compdef fasttrace") && zsh.contains("--targets"))
        let fish = try String(contentsOfFile: prefix + "/share/fish/vendor_completions.d/fasttrace.fish", encoding: .utf8)
        #expect(fish.contains("complete -c 'fasttrace'") && fish.contains("-l 'targets'"))

        // --uninstall removes everything the install made: the prefix is as empty as it was.
        let uninstall = runTool([script, "--uninstall", prefix], timeout: 60)
        #expect(uninstall.status == 0, "\(uninstall.stderr)")
        let left = (FileManager.default.enumerator(atPath: prefix)?.allObjects as? [String]) ?? []
        #expect(left.isEmpty, "left behind: \(left)")

        // Into a directory other users cannot search: installed, with one line saying only root can run it.
        let closed = try makeOpenDirectory("install-closed")
        defer { try? FileManager.default.removeItem(atPath: closed) }
        chmod(closed, 0o700)
        let privateInstall = runTool(["env", "FT_SCRATCH_PATH=\(repoRoot)/\(Self.scratchPath)", script, closed + "/prefix"],
            timeout: 1800)
        #expect(privateInstall.status == 0, "\(privateInstall.stderr)")
        let warnings = privateInstall.stderr.split(separator: "\n").filter { $0.contains("warning") }
        #expect(warnings == ["install.sh: warning: other users cannot search \(closed) (700): only root can run "
            + "\(closed)/prefix/bin/fasttrace (chmod o+x, or install elsewhere)"], "\(privateInstall.stderr)")
        _ = runTool([script, "--uninstall", closed + "/prefix"], timeout: 60)
    }
}
