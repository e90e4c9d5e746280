// A tiny three-namespace network for the transport tests, built and torn down by each test:
//
//   vantage  v0 198.18.1.2/24 ── r0 198.18.1.1/24  router  r1 198.18.2.1/24 ── p0 198.18.2.2/24  peer
//
// The vantage has a default route via the router, a blackhole for 198.19.99.0/24 and a two-way
// multipath route for 198.19.50.0/24 (via 198.18.1.1 and 198.18.1.3); the router
// forwards and answers TTL-expired probes without ICMP rate limiting; the peer can run a TCP listener.
// Every veth is created inside a namespace (never in the root namespace) and every address comes
// from 198.18.0.0/15. `ip netns del` removes the namespaces and their links; tests call it in a defer.

import Foundation
import FastTraceLinux
import FastTraceWire

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The path of a python3 interpreter.
let python3: String = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"

/// The three namespaces and their addresses. `make()` builds them; `destroy()` removes them.
final class TestNetwork: @unchecked Sendable {
    // @unchecked Sendable: the listener process is started and stopped by the test that owns this.
    let vantage: String
    let router: String
    let peer: String
    static let vantageAddress = IPv4Address(198, 18, 1, 2)
    static let routerNear = IPv4Address(198, 18, 1, 1)
    static let routerFar = IPv4Address(198, 18, 2, 1)
    static let peerAddress = IPv4Address(198, 18, 2, 2)
    static let blackholed = IPv4Address(198, 19, 99, 5)
    static let multipath = IPv4Address(198, 19, 50, 5)
    private var listener: Child?

    private static let counter = Counter()

    private init() {
        let tag = "ftt\(getpid() % 100_000)x\(Self.counter.next())"
        vantage = tag + "v"
        router = tag + "r"
        peer = tag + "p"
    }

    /// Builds the namespaces. On failure removes whatever was made and rethrows.
    static func make() throws -> TestNetwork {
        let net = TestNetwork()
        do {
            try net.build()
        } catch {
            net.destroy()
            throw error
        }
        return net
    }

    private func build() throws {
        for ns in [vantage, router, peer] {
            try run(["ip", "netns", "add", ns])
            try run(["ip", "-n", ns, "link", "set", "lo", "up"])
        }
        try run(["ip", "-n", vantage, "link", "add", "v0", "type", "veth", "peer", "name", "r0", "netns", router])
        try run(["ip", "-n", router, "link", "add", "r1", "type", "veth", "peer", "name", "p0", "netns", peer])
        try run(["ip", "-n", vantage, "addr", "add", "198.18.1.2/24", "dev", "v0"])
        try run(["ip", "-n", router, "addr", "add", "198.18.1.1/24", "dev", "r0"])
        try run(["ip", "-n", router, "addr", "add", "198.18.2.1/24", "dev", "r1"])
        try run(["ip", "-n", peer, "addr", "add", "198.18.2.2/24", "dev", "p0"])
        try run(["ip", "-n", vantage, "link", "set", "v0", "up"])
        try run(["ip", "-n", router, "link", "set", "r0", "up"])
        try run(["ip", "-n", router, "link", "set", "r1", "up"])
        try run(["ip", "-n", peer, "link", "set", "p0", "up"])
        try run(["ip", "-n", vantage, "route", "add", "default", "via", "198.18.1.1"])
        try run(["ip", "-n", vantage, "route", "add", "blackhole", "198.19.99.0/24"])
        try run(["ip", "-n", vantage, "route", "add", "198.19.50.0/24",
                 "nexthop", "via", "198.18.1.1", "nexthop", "via", "198.18.1.3"])
        try run(["ip", "-n", peer, "route", "add", "default", "via", "198.18.2.1"])
        try run(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try run(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
        try run(["ip", "netns", "exec", peer, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
    }

    /// Starts a TCP listener on the peer at `port` and waits (bounded) until it listens.
    func startListener(port: UInt16) throws {
        let script = """
            import socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("198.18.2.2", \(port))); s.listen(1024)
            while True:
                c, _ = s.accept(); c.close()
            """
        guard let process = Child(["ip", "netns", "exec", peer, python3, "-c", script]) else {
            throw LabError("cannot start the listener")
        }
        listener = process
        for _ in 0..<200 {
            let sockets = try run(["ip", "netns", "exec", peer, "ss", "-Hltn", "sport = :\(port)"])
            if !sockets.isEmpty { return }
            usleep(20_000)
        }
        throw LabError("listener on port \(port) did not come up")
    }

    /// Runs a python3 snippet in the peer namespace (for injecting foreign packets).
    func runInPeer(python script: String) throws {
        try run(["ip", "netns", "exec", peer, python3, "-c", script])
    }

    /// Stops the listener and deletes the namespaces (and with them the veths). Safe to call twice.
    func destroy() {
        // `ip netns exec` execs python in place, so killing the child ends the listener.
        listener?.stop()
        listener = nil
        for ns in [vantage, router, peer] {
            _ = try? run(["ip", "netns", "del", ns])
        }
    }
}

private final class Counter: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

/// Runs `body` on a new thread that has entered the network namespace `namespace` (setns changes only
/// the calling thread, so the test's own thread and Swift's cooperative pool stay where they are).
func inNamespace<T: Sendable>(_ namespace: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    let result: Result<T, any Error> = await withCheckedContinuation { continuation in
        let thread = Thread {
            do {
                try enterNetworkNamespace(named: namespace)
                continuation.resume(returning: .success(try body()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    return try result.get()
}
