// Which next hop the transmit ring sends each destination's frame to, from a routing table built in
// the test (no kernel): the longest prefix wins, as in RouteTable.lookup; a gateway route sends to
// the gateway, an on-link route to the destination itself; a route the ring cannot follow as the
// kernel would (another interface, a multipath route, a reject route, none) sends the probe through
// the raw socket. Both lookups (the short linear list and, past 32 routes, RouteTable's hashed match)
// must agree. The same for IPv6 (RouteTable6), whose gateways are often link-local (fe80::) addresses.

import Testing
@testable import FastTraceLinux
import FastTraceWire

@Suite("Next hops for the TX ring (no privileges needed)")
struct NextHopTests {
    static let eth0: Int32 = 2
    static let eth1: Int32 = 3
    static let gateway = IPv4Address(198, 18, 0, 1)

    static func entries() -> [RouteTable.Entry] {
        [
            .init(destination: IPv4Address(0), prefixLength: 0, interfaceIndex: eth0, gateway: gateway, metric: 100),
            // A worse default through another interface: the better metric wins.
            .init(destination: IPv4Address(0), prefixLength: 0, interfaceIndex: eth1,
                  gateway: IPv4Address(203, 0, 113, 1), metric: 200),
            .init(destination: IPv4Address(198, 18, 0, 0), prefixLength: 30, interfaceIndex: eth0),
            .init(destination: IPv4Address(198, 51, 100, 0), prefixLength: 24, interfaceIndex: eth1),
            .init(destination: IPv4Address(198, 19, 50, 0), prefixLength: 24, interfaceIndex: eth0, gateway: gateway,
                  nexthops: 2),
            .init(destination: IPv4Address(198, 19, 99, 0), prefixLength: 24, kind: .reject, interfaceIndex: 0),
            .init(destination: IPv4Address(198, 19, 7, 0), prefixLength: 24, interfaceIndex: eth0,
                  gateway: IPv4Address(198, 18, 0, 2)),
        ]
    }

    static let cases: [(IPv4Address, NextHop)] = [
        (IPv4Address(198, 19, 0, 10), .address(gateway.value)),  // default route
        (IPv4Address(198, 18, 0, 1), .address(IPv4Address(198, 18, 0, 1).value)),  // on the link
        (IPv4Address(198, 19, 7, 9), .address(IPv4Address(198, 18, 0, 2).value)),  // a more specific gateway
        (IPv4Address(198, 51, 100, 7), .socketOnly),  // another interface
        (IPv4Address(198, 19, 50, 5), .socketOnly),  // multipath: the kernel picks per flow
        (IPv4Address(198, 19, 99, 5), .socketOnly),  // blackhole
    ]

    @Test("longest prefix, gateway or on-link; anything the ring cannot follow goes through the socket")
    func smallTable() {
        let routes = NextHopRoutes(table: RouteTable(entries: Self.entries(), addresses: []), interfaceIndex: Self.eth0)
        for (destination, expected) in Self.cases {
            #expect(routes.nextHop(destination.value) == expected, "\(destination)")
        }
        #expect(routes.gateways.sorted() == [Self.gateway.value, IPv4Address(198, 18, 0, 2).value].sorted())
    }

    @Test("with more routes than the linear list holds, the hashed lookup gives the same answers")
    func largeTable() {
        var entries = Self.entries()
        for i in 0..<100 {
            entries.append(.init(destination: IPv4Address(203, 0, 113, UInt8(i)), prefixLength: 32, interfaceIndex: Self.eth1))
        }
        let routes = NextHopRoutes(table: RouteTable(entries: entries, addresses: []), interfaceIndex: Self.eth0)
        for (destination, expected) in Self.cases {
            #expect(routes.nextHop(destination.value) == expected, "\(destination)")
        }
        #expect(routes.nextHop(IPv4Address(203, 0, 113, 5).value) == .socketOnly)
        // No route at all (only a table without a default): the socket, where the kernel says so.
        let bare = NextHopRoutes(table: RouteTable(entries: Array(entries.dropFirst(2)), addresses: []),
                                 interfaceIndex: Self.eth0)
        #expect(bare.nextHop(IPv4Address(192, 0, 2, 1).value) == .socketOnly)
    }

    static func a(_ text: String) -> IPAddress { IPAddress(text)! }
    static let linkLocalGateway = a("fe80::1")

    static func entries6() -> [RouteTable6.Entry] {
        [
            // The usual IPv6 default: via the router's link-local address.
            .init(destination: a("::"), prefixLength: 0, interfaceIndex: eth0, gateway: linkLocalGateway, metric: 1024),
            .init(destination: a("::"), prefixLength: 0, interfaceIndex: eth1, gateway: a("fe80::2"), metric: 2048),
            .init(destination: a("2001:db8:0:1::"), prefixLength: 64, interfaceIndex: eth0),
            .init(destination: a("fe80::"), prefixLength: 64, interfaceIndex: eth0),
            .init(destination: a("2001:db8:9::"), prefixLength: 48, interfaceIndex: eth1),
            .init(destination: a("2001:db8:50::"), prefixLength: 48, interfaceIndex: eth0, gateway: linkLocalGateway,
                  nexthops: 2),
            .init(destination: a("2001:db8:99::"), prefixLength: 48, kind: .reject, interfaceIndex: 1),
            .init(destination: a("2001:db8:7::"), prefixLength: 48, interfaceIndex: eth0, gateway: a("2001:db8:0:1::fe")),
            // A more specific route back through the gateway inside the other-interface /48.
            .init(destination: a("2001:db8:9:1::"), prefixLength: 64, interfaceIndex: eth0, gateway: linkLocalGateway),
        ]
    }

    static let cases6: [(IPAddress, NextHop6)] = [
        (a("2001:db8:100::1"), .address(linkLocalGateway)),  // default route, link-local gateway
        (a("2001:db8:0:1::77"), .address(a("2001:db8:0:1::77"))),  // on the link
        (a("2001:db8:7::9"), .address(a("2001:db8:0:1::fe"))),  // a more specific global gateway
        (a("2001:db8:9::5"), .socketOnly),  // another interface
        (a("2001:db8:9:1::5"), .address(linkLocalGateway)),  // the longer prefix wins
        (a("2001:db8:50::5"), .socketOnly),  // multipath: the kernel picks per flow
        (a("2001:db8:99::5"), .socketOnly),  // reject
        (a("fe80::99"), .socketOnly),  // link-local destination: its scope is not in the address
    ]

    @Test("IPv6: longest prefix, gateway (link-local or global) or on-link; the rest through the socket")
    func smallTable6() {
        let routes = NextHopRoutes6(table: RouteTable6(entries: Self.entries6(), addresses: []), interfaceIndex: Self.eth0)
        for (destination, expected) in Self.cases6 {
            #expect(routes.nextHop(destination) == expected, "\(destination)")
        }
        #expect(routes.gateways.sorted() == [Self.linkLocalGateway, Self.a("2001:db8:0:1::fe")].sorted())
    }

    @Test("IPv6: with more routes than the linear list holds, the hashed lookup gives the same answers")
    func largeTable6() {
        var entries = Self.entries6()
        for i in 0..<100 {
            entries.append(.init(destination: Self.a("2001:db8:ff::").advanced(by: UInt64(i)), prefixLength: 128,
                                 interfaceIndex: Self.eth1))
        }
        let routes = NextHopRoutes6(table: RouteTable6(entries: entries, addresses: []), interfaceIndex: Self.eth0)
        for (destination, expected) in Self.cases6 {
            #expect(routes.nextHop(destination) == expected, "\(destination)")
        }
        #expect(routes.nextHop(Self.a("2001:db8:ff::5")) == .socketOnly)
        let bare = NextHopRoutes6(table: RouteTable6(entries: Array(entries.dropFirst(2)), addresses: []),
                                  interfaceIndex: Self.eth0)
        #expect(bare.nextHop(Self.a("2001:db8:abcd::1")) == .socketOnly, "no route")
    }

    @Test("the summary names the ring's interface, or why the socket ran")
    func reportText() {
        let ring = SendPathReport(usesRing: true, interfaceName: "veth0", reason: nil, detail: "")
        let socket = SendPathReport(usesRing: false, interfaceName: nil, reason: "lo is a loopback interface", detail: "")
        #expect(ring.summary == "TX ring on veth0")
        #expect(socket.summary == "raw socket (TX ring not used: lo is a loopback interface)")
        #expect(SendPathUnavailable(reason: "x").description == "--send-path ring: the TX ring cannot be used: x")
    }
}
