// MPLS label stacks (RFC 4950) as the outputs show them: traceroute's `<MPLS:L=…,E=…,S=…,T=…>` mark after
// the router's address in text, `mpls` (and `mpls_depth` past two entries) on the JSON hop.

import FastTraceCore
import FastTraceWire
import Foundation
import Testing

@testable import fasttrace

@Suite struct MPLSFormatTests {
    @Test func textMarksTheStackAfterTheRouter() {
        let lines = TextFormatter().block(mplsTrace).split(separator: "\n").map(String.init)
        let second = lines.first { $0.hasPrefix(" 2  ") } ?? ""
        #expect(second.contains("198.18.0.5 <MPLS:L=24001,E=0,S=0,T=1/L=16,E=5,S=0,T=1/+1 more>  0.080 ms"), "\(second)")
        let third = lines.first { $0.hasPrefix(" 3  ") } ?? ""
        #expect(third.contains("198.18.0.9 <MPLS:L=1048575,E=7,S=1,T=255>  0.090 ms"), "\(third)")
        #expect(!(lines.first { $0.hasPrefix(" 1  ") } ?? "").contains("MPLS"))
    }

    @Test func jsonCarriesTheStackAndItsDepth() throws {
        let line = JSONFormatter.line(mplsTrace, start: nil, .plain)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let hops = try #require(object["hops"] as? [[String: Any]])
        let second = try #require(hops[1]["mpls"] as? [[String: Int]])
        #expect(second == [["label": 24001, "tc": 0, "s": 0, "ttl": 1], ["label": 16, "tc": 5, "s": 0, "ttl": 1]])
        #expect(hops[1]["mpls_depth"] as? Int == 3)
        #expect((hops[2]["mpls"] as? [[String: Int]]) == [["label": 1048575, "tc": 7, "s": 1, "ttl": 255]])
        #expect(hops[2]["mpls_depth"] == nil && hops[0]["mpls"] == nil)
    }
}
