// A list's targets expanded into trace requests, in the one place that does it (TargetStream): prefixes
// to their addresses in order, each within its own family, every port of an address before the next
// address, and the targets that cannot be traced skipped with their line while the rest go on.

import FastTraceCore
import FastTraceLinux
import FastTraceWire
import Foundation
import Testing

@Suite struct TargetExpansionTests {
    /// Every request and skip of `text` read as a list on `ports` (polled until finished, at most 10 s).
    func expand(_ text: String, ports: [UInt16], resolve: @escaping TargetStream.Resolve = { _ in .failure(ReasonError("x")) },
        sourceFor: @escaping TargetStream.SourceFor) throws -> (requests: [TraceRequest], skips: [String])
    {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ft-expand-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let stream = try TargetStream(path: path, ports: ports, maxPrefixAddresses: 65_536, resolve: resolve,
            sourceFor: sourceFor)
        var skips: [String] = []
        stream.onSkip = { skips.append("\($0.line): \($0.reason)") }
        try stream.start()
        defer { stream.cancel() }
        var requests: [TraceRequest] = []
        polling: for _ in 0..<10_000 {
            switch stream.poll() {
            case .request(let r): requests.append(r)
            case .finished: break polling
            default: usleep(1_000)
            }
        }
        return (requests, skips)
    }

    @Test func prefixHostBitsAreMaskedAndEveryPortOfAnAddressComesFirst() throws {
        let (got, _) = try expand("192.0.2.5/30\n", ports: [80, 443],
            sourceFor: { _ in .success(IPAddress(IPv4Address(198, 18, 0, 2))) })
        #expect(got.map { "\($0.index) \($0.destination):\($0.port)" } == [
            "0 192.0.2.4:80", "1 192.0.2.4:443", "2 192.0.2.5:80", "3 192.0.2.5:443",
            "4 192.0.2.6:80", "5 192.0.2.6:443", "6 192.0.2.7:80", "7 192.0.2.7:443",
        ])
    }

    @Test func aListMixingTheFamiliesExpandsInOrderEachPrefixInItsOwnFamily() throws {
        let (got, _) = try expand("2001:db8::fe/127\n192.0.2.6/31\n", ports: [443], sourceFor: {
            .success($0.family == .v4 ? IPAddress(IPv4Address(198, 18, 0, 2)) : IPAddress("2001:db8::2")!)
        })
        #expect(got.map { "\($0.destination) from \($0.source) (\($0.family))" } == [
            "2001:db8::fe from 2001:db8::2 (ipv6)", "2001:db8::ff from 2001:db8::2 (ipv6)",
            "192.0.2.6 from 198.18.0.2 (ipv4)", "192.0.2.7 from 198.18.0.2 (ipv4)",
        ])
    }

    @Test func unresolvableAndUnroutableTargetsAreSkippedAndTheRestGoOn() throws {
        let (got, skips) = try expand("nowhere.invalid\n192.0.2.1\n203.0.113.9\n", ports: [443],
            resolve: { .failure(ReasonError("cannot resolve '\($0)'")) },
            sourceFor: {
                $0 == IPAddress(IPv4Address(203, 0, 113, 9)) ? .failure(ReasonError("no route to host"))
                    : .success(IPAddress(IPv4Address.any))
            })
        #expect(got.map(\.destination) == [IPAddress(IPv4Address(192, 0, 2, 1))])
        #expect(skips.sorted() == ["1: cannot resolve 'nowhere.invalid'", "3: 203.0.113.9: no route to host"])
    }
}
