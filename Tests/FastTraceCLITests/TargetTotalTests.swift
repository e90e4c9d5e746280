// The list's total, known from the first seconds (issue 13, item 12): counted ahead of the stream for a
// regular file, said to be unknown for a pipe, and shown on the progress line either way.

import FastTraceCore
import FastTraceLinux
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

@Suite struct TargetTotalTests {
    @Test func theProgressLineShowsTheTotalOrSaysWhyNot() {
        #expect(progressText(finished: 1234, total: .expected(20_000), inFlight: 64, probes: 123_456, perSecond: 2000)
            == "[fasttrace] 1,234/20,000 traces, 64 in flight, 123,456 probes, 2,000 probes/s")
        #expect(progressText(finished: 30, total: .exact(30), inFlight: 0, probes: 231, perSecond: 8)
            == "[fasttrace] 30/30 traces, 0 in flight, 231 probes, 8 probes/s")
        #expect(progressText(finished: 1234, total: .unknown, inFlight: 6, probes: 5000, perSecond: 0)
            == "[fasttrace] 1,234 traces done, list still being read, 6 in flight, 5,000 probes, 0 probes/s")
        #expect(progressText(finished: 0, total: .counting, inFlight: 6, probes: 12, perSecond: 12)
            == "[fasttrace] 0 traces done, list still being counted, 6 in flight, 12 probes, 12 probes/s")
        #expect(grouped(0) == "0" && grouped(999) == "999" && grouped(1000) == "1,000" && grouped(1_000_000) == "1,000,000")
    }

    /// A stream over `path` whose every address has a route, with a small queue that nobody drains:
    /// the reader stops after a few requests, as it does behind a busy engine.
    func stream(_ path: String, ports: [UInt16]) throws -> TargetStream {
        var limits = TargetStream.Limits()
        limits.queueCapacity = 16
        return try TargetStream(path: path, ports: ports, maxPrefixAddresses: 65_536, limits: limits,
            resolve: { _ in .success(IPAddress(IPv4Address(198, 18, 0, 77))) },
            sourceFor: { _ in .success(IPAddress(IPv4Address(198, 18, 0, 2))) })
    }

    /// Polls `stream.totalSoFar` until it is not `.counting` (at most 10 s: a bound, not a timing).
    func settledTotal(_ stream: TargetStream) -> TargetStream.Total {
        for _ in 0..<1000 {
            let total = stream.totalSoFar
            if total != .counting { return total }
            usleep(10_000)
        }
        return .counting
    }

    @Test func aRegularFileIsCountedAheadOfTheStream() throws {
        // 20,000 lines, a /28 (16 addresses) and a name, traced on 2 ports: 20,017 × 2 requests. The
        // reader is held after 16 of them, yet the total is known.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ft-count-\(UUID().uuidString)").path
        let text = (0..<20_000).map { "198.18.\($0 / 250).\($0 % 250 + 1)\n" }.joined()
            + "198.19.0.0/28\n# a comment\nnot a target\nexample.net\n"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let s = try stream(path, ports: [443, 80])
        try s.start()
        defer { s.cancel() }
        #expect(settledTotal(s) == .expected(20_017 * 2))
        #expect(s.produced < 20_017 * 2, "the reader was meant to be held back: the test proves nothing")
    }

    @Test func duplicatesAndUntraceableTargetsComeOffTheCount() throws {
        // 3 addresses, one listed twice, and a /30 holding one of them: 3 + 1 + 4 counted, 2 duplicates.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ft-count-\(UUID().uuidString)").path
        let text = "198.18.0.1\n198.18.0.2\n198.18.0.1\n198.18.0.0/30\n"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let s = try stream(path, ports: [443])
        try s.start()
        defer { s.cancel() }
        // Before draining, the count is what the counting pass found, less what the reader has already
        // found listed before (it is never below what was handed out).
        // (A list this short may be read, queued and complete first: then the total is exact already.)
        switch settledTotal(s) {
        case .expected(let n): #expect(n >= 4 && n <= 7)
        case .exact(let n): #expect(n == 4)
        case let other: Issue.record("no total: \(other)")
        }
        // Drain it (bounded): the count ends exact, and equal to what was handed out.
        var handedOut = 0
        draining: for _ in 0..<10_000 {
            switch s.poll() {
            case .finished: break draining
            case .request: handedOut += 1
            case .pending: usleep(1000)
            }
        }
        #expect(s.totalSoFar == .exact(4) && handedOut == 4)
        #expect(s.produced == 4 && s.duplicates == 3)
    }

    @Test func aPipeHasNoTotalUntilItEnds() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let line = "198.18.0.1\n"
        #expect(line.withCString { write(fds[1], $0, strlen($0)) } == line.utf8.count)
        let s = try stream("/dev/fd/\(fds[0])", ports: [443])
        try s.start()
        defer { s.cancel() }
        #expect(settledTotal(s) == .unknown)
    }
}
