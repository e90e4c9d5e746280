// Peak memory at defaults (issue 13 item 13): the probe tables are sized to the traces a run can have
// (one target: one trace) and take memory only for the slots it uses, and the receive ring to the probe
// rate. A single trace took 85 MB and a 128-target list as much before; the binary alone is about 16 MB
// (debug build). Peak resident memory is read from the kernel (getrusage of the finished child) by a
// small python3 wrapper, not estimated. Root and the lab (FT_LAB_PREFIX picks it).

import Foundation
import Testing

@Suite(.serialized, .enabled(if: isRoot, "needs root: network namespaces and raw sockets"))
struct MemoryTests {
    /// Runs fasttrace with `arguments` and returns its exit status and peak resident memory in KiB.
    func peakKiB(_ arguments: [String]) throws -> (status: Int32, kib: Int, stderr: String) {
        let wrapper = """
            import resource, subprocess, sys
            r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
            print("maxrss", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
            sys.exit(r.returncode)
            """
        let r = runTool([python3, "-c", wrapper, fasttraceBinary] + arguments, timeout: 120)
        let line = try #require(r.stderr.split(separator: "\n").last { $0.hasPrefix("maxrss ") })
        return (r.status, try #require(Int(line.dropFirst(7))), r.stderr)
    }

    @Test("One trace at defaults peaks far below the 85 MB it took with tables sized for 8,192 traces")
    func oneTrace() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open").example
        let r = try peakKiB(["--netns", lab.namespace, "-n", open, "443"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.kib < 40 * 1024, "peak \(r.kib) KiB")
    }

    @Test("128 targets at defaults peak far below 85 MB")
    func aShortList() throws {
        let lab = try Lab.get()
        let open = lab.truth.kind(named: "open").example
        let parts = open.split(separator: ".")
        let scratch = Scratch()
        defer { scratch.cleanup() }
        FileManager.default.createFile(atPath: scratch.file("list"),
            contents: Data("\(parts[0]).\(parts[1]).\(parts[2]).0/25\n".utf8))
        let r = try peakKiB(["--netns", lab.namespace, "-n", "--targets", scratch.file("list"), "-p", "443",
            "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.kib < 48 * 1024, "peak \(r.kib) KiB")
    }
}
