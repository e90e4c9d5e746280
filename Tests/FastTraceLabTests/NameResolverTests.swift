// The resolver threads with a stand-in lookup (no DNS, no root needed): asking never blocks however
// slow lookups are, one lookup per address however often it is asked for, at most `threads` lookups in
// flight, and answers that arrive after the caller gave up still fill the cache.

import FastTraceAnnotations
import FastTraceCore
import FastTraceLinux
import FastTraceWire
import Foundation
import Synchronization
import Testing

/// Counts calls and the most lookups running at once.
final class LookupProbe: Sendable {
    let state = Mutex<(calls: [IPAddress: Int], running: Int, maxRunning: Int)>(([:], 0, 0))

    func enter(_ address: IPAddress) {
        state.withLock {
            $0.calls[address, default: 0] += 1
            $0.running += 1
            $0.maxRunning = max($0.maxRunning, $0.running)
        }
    }

    func leave() { state.withLock { $0.running -= 1 } }
}

@Suite struct NameResolverTests {
    /// Polls `resolver` for `address` until it is known or `seconds` pass.
    func waitForAnswer(_ resolver: NameResolver, _ address: IPAddress, seconds: Double) -> NameBook.Answer {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let answer = resolver.peek(address)
            if case .known = answer { return answer }
            usleep(2_000)
        }
        return resolver.peek(address)
    }

    @Test func slowLookupsNeverBlockTheAskerAndRunAtMostThreadsAtOnce() {
        let probe = LookupProbe()
        var limits = NameResolver.Limits()
        limits.threads = 3
        let resolver = NameResolver(waitNanos: 5_000_000_000, limits: limits) { address in
            probe.enter(address)
            defer { probe.leave() }
            usleep(300_000)
            return address.ipv4!.value & 1 == 0 ? "even-\(address.ipv4!.value & 0xFF).example" : nil
        }
        defer { resolver.stop() }
        let addresses = (1...12).map { IPAddress(IPv4Address(192, 0, 2, UInt8($0))) }
        let started = Date()
        for _ in 0..<50 {
            for address in addresses { #expect(resolver.ask(address) == .pending) }
        }
        #expect(Date().timeIntervalSince(started) < 0.25, "600 asks while lookups sleep 300 ms each")
        for address in addresses {
            let want: String? = address.ipv4!.value & 1 == 0 ? "even-\(address.ipv4!.value & 0xFF).example" : nil
            #expect(waitForAnswer(resolver, address, seconds: 5) == .known(want))
        }
        let (calls, _, maxRunning) = probe.state.withLock { $0 }
        #expect(calls.count == 12 && calls.values.allSatisfy { $0 == 1 }, "one lookup per address: \(calls)")
        #expect(maxRunning == 3, "lookups in flight: \(maxRunning)")
        // Cached: asked again, answered at once and not looked up again.
        #expect(resolver.ask(addresses[1]) == .known("even-2.example"))
        #expect(probe.state.withLock { $0.calls[addresses[1]] } == 1)
        #expect(resolver.counters.started == 12)
    }

    @Test func lookupsQueuedPastEveryCallersWaitAreDropped() {
        let probe = LookupProbe()
        var limits = NameResolver.Limits()
        limits.threads = 1
        // Callers wait 100 ms; the one thread is busy 400 ms with the first address, by which time nobody
        // waits for the other four any more.
        let resolver = NameResolver(waitNanos: 100_000_000, limits: limits) { address in
            probe.enter(address)
            defer { probe.leave() }
            usleep(400_000)
            return "x.example"
        }
        defer { resolver.stop() }
        let addresses = (1...5).map { IPAddress(IPv4Address(198, 51, 100, UInt8($0))) }
        for address in addresses { _ = resolver.ask(address) }
        #expect(waitForAnswer(resolver, addresses[0], seconds: 3) == .known("x.example"))
        usleep(100_000)
        #expect(probe.state.withLock { $0.calls.count } == 1)
        #expect(resolver.counters.abandoned == 4)
        #expect(resolver.peek(addresses[4]) == .unavailable)
    }
}
