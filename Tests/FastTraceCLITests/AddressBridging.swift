// The CLI tests build their hops from IPv4 addresses; the formatters take addresses of either family.
// These overloads let an IPv4 test pass what it built.

@testable import fasttrace
import FastTraceWire
import FastTraceAnnotations

extension HopAnnotator {
    init(showsNames: Bool, asnTable: ASNTable?, v4Names names: [(IPv4Address, String)]) {
        self.init(showsNames: showsNames, asnTable: asnTable, names: names.map { (IPAddress($0.0), $0.1) })
    }

    subscript(_ address: IPv4Address) -> HopAnnotation { self[IPAddress(address)] }
}

extension OutputStage {
    func submit(addresses: [IPv4Address], write: @escaping (HopAnnotator) -> Void) {
        submit(addresses: addresses.map(IPAddress.init), write: write)
    }
}

func looksUpName(of address: IPv4Address, includePrivate: Bool) -> Bool {
    looksUpName(of: IPAddress(address), includePrivate: includePrivate)
}

func == (lhs: IPAddress?, rhs: IPv4Address) -> Bool { lhs == IPAddress(rhs) }
