// `--shard I/N` (issue 12): every target × port in exactly one shard, the shards even, the split the same on
// every host (a fixed default seed), another seed another split, and bad values refused in one sentence.

import FastTraceCore
import FastTraceWire
import Testing

@Suite struct ShardTests {
    /// 100,000 target × ports: four /16-sized runs of consecutive addresses (as prefixes expand) on two ports
    /// and a scatter of single addresses on five, the kind of list a split is for.
    static let list: [(IPv4Address, UInt16)] = {
        var items: [(IPv4Address, UInt16)] = []
        for base in [UInt32(0xC612_0000), 0xC613_0000, 0xCB00_7100, 0xC633_6400] {
            for offset in UInt32(0)..<10_000 { for port in [UInt16(80), 443] { items.append((IPv4Address(base &+ offset), port)) } }
        }
        var x: UInt32 = 12345
        while items.count < 100_000 {
            x = x &* 1_103_515_245 &+ 12345
            for port in [UInt16(22), 25, 53, 123, 8080] where items.count < 100_000 { items.append((IPv4Address(x), port)) }
        }
        return items
    }()

    @Test("each target × port is in exactly one of N shards, and the shards are even", arguments: [1, 2, 3, 7, 64])
    func partitionAndBalance(count: Int) throws {
        let shards = (1...count).map { Shard(index: $0, count: count)! }
        var sizes = Array(repeating: 0, count: count)
        for (address, port) in Self.list {
            // Exactly one shard claims it, and it is the one `owner` names, the same from every shard's view.
            let claims = shards.filter { $0.contains(address, port: port) }
            #expect(claims.count == 1, "\(address):\(port) claimed by \(claims.map(\.description))")
            let owner = shards[0].owner(of: address, port: port)
            #expect(shards.allSatisfy { $0.owner(of: address, port: port) == owner } && claims.first?.index == owner)
            sizes[owner - 1] += 1
        }
        #expect(sizes.reduce(0, +) == Self.list.count)
        // As even as a random split: each shard within 4 standard deviations of its share (a binomial's:
        // 3.1 % of a seventh here, 10 % of a 64th); a split by a poor mix of consecutive addresses is not.
        let even = Double(Self.list.count) / Double(count)
        let sigma = (even * (1 - 1 / Double(count))).squareRoot()
        for (i, size) in sizes.enumerated() {
            #expect(abs(Double(size) - even) <= 4 * sigma, "shard \(i + 1)/\(count): \(size), a share \(even)")
        }
        print("shards \(count): largest off its share by \(sizes.map { abs(Double($0) - even) / even * 100 }.max()!) %")
    }

    @Test("a prefix is scattered over every shard, not given to one; ports of one address split too")
    func scattered() {
        let shard = Shard(index: 1, count: 4)!
        let owners = (UInt32(0)..<256).map { shard.owner(of: IPv4Address(0xC612_4000 + $0), port: 443) }
        #expect(Set(owners) == [1, 2, 3, 4])
        let ports = (UInt16(1)...64).map { shard.owner(of: IPv4Address(198, 18, 64, 10), port: $0) }
        #expect(Set(ports).count == 4)
    }

    @Test("IPv6 target × ports: each in exactly one shard, the shards even, a /112's addresses scattered; IPv4 through IPAddress as before", arguments: [2, 7])
    func ipv6(count: Int) {
        let shards = (1...count).map { Shard(index: $0, count: count)! }
        var sizes = Array(repeating: 0, count: count)
        let base = IPAddress("2001:db8:100::")!
        var items: [(IPAddress, UInt16)] = []
        for i in UInt64(0)..<10_000 {
            items.append((base.advanced(by: i), 443))
            items.append((base.advanced(by: i), 53))
        }
        for (address, port) in items {
            let claims = shards.filter { $0.contains(address, port: port) }
            #expect(claims.count == 1, "\(address):\(port) claimed by \(claims.map(\.description))")
            sizes[shards[0].owner(of: address, port: port) - 1] += 1
        }
        let even = Double(items.count) / Double(count)
        let sigma = (even * (1 - 1 / Double(count))).squareRoot()
        #expect(sizes.allSatisfy { abs(Double($0) - even) <= 4 * sigma }, "\(sizes)")
        let v4 = IPv4Address(198, 18, 64, 10)
        #expect(shards[0].owner(of: IPAddress(v4), port: 443) == shards[0].owner(of: v4, port: 443))
    }

    @Test("every host computes the same split from the default seed; another seed is another split")
    func seeds() {
        let a = Shard(index: 1, count: 5)!, b = Shard(index: 1, count: 5, seed: Shard.defaultSeed)!
        let c = Shard(index: 1, count: 5, seed: 42)!
        var same = 0
        for (address, port) in Self.list.prefix(10_000) {
            #expect(a.owner(of: address, port: port) == b.owner(of: address, port: port))
            if a.owner(of: address, port: port) == c.owner(of: address, port: port) { same += 1 }
        }
        // Independent splits agree about a fifth of the time.
        #expect(abs(same - 2_000) < 200, "\(same)")
        // Pinned: a change of the permutation would split lists differently from hosts running older builds.
        #expect(a.owner(of: IPv4Address(198, 18, 64, 10), port: 443) == Shard(index: 1, count: 5)!
            .owner(of: IPv4Address(198, 18, 64, 10), port: 443))
        #expect(Shard.defaultSeed == 0x6661_7374_7472_6163)
    }

    @Test("a name is sharded by the name, case aside, on every host alike")
    func names() {
        let shard = Shard(index: 2, count: 3)!
        #expect(shard.owner(ofName: "WWW.Example.com", port: 443) == shard.owner(ofName: "www.example.com", port: 443))
        let owners = (0..<300).map { shard.owner(ofName: "host\($0).example", port: 443) }
        for i in 1...3 { #expect(owners.count { $0 == i } > 70) }
    }

    @Test("bad values are refused in one sentence that says what is wanted")
    func badValues() {
        for (text, reason) in [
            ("0/3", "0/3: the shard must be 1...3 (shards count from 1: 1/3 to 3/3)"),
            ("4/3", "4/3: the shard must be 1...3 (shards count from 1: 1/3 to 3/3)"),
            ("1/0", "1/0: the number of shards must be 1...1048576"),
            ("a/b", "'a/b' is not I/N: two whole numbers, this host's shard and how many share the list (--shard 1/3)"),
            ("1/3/3", "'1/3/3' is not I/N: two whole numbers, this host's shard and how many share the list (--shard 1/3)"),
            ("-1/3", "'-1/3' is not I/N: two whole numbers, this host's shard and how many share the list (--shard 1/3)"),
            ("2", "'2' is not I/N: two whole numbers, this host's shard and how many share the list (--shard 1/3)"),
        ] {
            #expect(Shard.parse(text) == .failure(ShardError(reason)), "\(text)")
        }
        #expect(Shard.parse("3/3") == .success(Shard(index: 3, count: 3)!))
        #expect(Shard.parse("1/1").map(\.description) == .success("1/1"))
    }
}
