// Loading a full-size --asn-db table: 500,000 rows in iptoasn.com's TSV layout (450,000 IPv4 and
// 50,000 IPv6 ranges, 75,000 ASes with names), generated here so no table is committed. The measured
// work is what `fasttrace --asn-db` does after reading the file: cut it into lines (fed in 1 MiB
// chunks, as the file is read), parse every row, flatten, intern the names. Not a per-packet path, so
// no malloc threshold: the figures go into the README (load time, and the table's size).

import Benchmark
import FastTraceAnnotations
import FastTraceCore
import FastTraceWire

/// The synthetic table: consecutive IPv4 ranges of 256-4096 addresses from 1.0.0.0 (every tenth
/// "Not routed", AS 0), then IPv6 /32-/48-sized ranges from 2001::, ASes drawn from 75,000.
func syntheticASNTable(rows: Int = 500_000) -> [UInt8] {
    var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        return random &* 0x2545_F491_4F6C_DD1D
    }
    var text = "# synthetic iptoasn-style table\n"
    text.reserveCapacity(rows * 56)
    var v4: UInt32 = 0x0100_0000
    let v4Rows = rows * 9 / 10
    for i in 0..<v4Rows {
        let size = UInt32(256 << (next() % 5))
        let last = v4 + size - 1
        let asn = i % 10 == 9 ? 0 : UInt32(1 + next() % 75_000)
        let name = asn == 0 ? "Not routed" : "AS-\(asn) Example Networks \(asn % 97) Ltd"
        text += "\(IPv4Address(v4))\t\(IPv4Address(last))\t\(asn)\t\(asn == 0 ? "None" : "ZZ")\t\(name)\n"
        v4 = last + 1
    }
    var v6: UInt64 = 0x2001_0000_0000_0000
    for _ in v4Rows..<rows {
        let size = UInt64(1) << (16 + next() % 17)  // /48 ... /32 worth of the top 64 bits
        let last = v6 + size - 1
        let asn = UInt32(1 + next() % 75_000)
        func hex(_ value: UInt64) -> String {
            (0..<4).map { String(value >> (48 - 16 * $0) & 0xFFFF, radix: 16) }.joined(separator: ":")
        }
        text += "\(hex(v6))::\t\(hex(last)):ffff:ffff:ffff:ffff\t\(asn)\tZZ\tAS-\(asn) Example Networks \(asn % 97) Ltd\n"
        v6 = last + 1
    }
    return Array(text.utf8)
}

/// The lookup structure's size once built (`ASNTable.memoryBytes`), reported beside the time.
let tableBytes = BenchmarkMetric.custom("lookup structure (bytes)", polarity: .prefersSmaller, useScalingFactor: false)

func asnTableBenchmarks() {
    let table = syntheticASNTable()
    Benchmark(
        "load ASN table (500k rows)",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal, tableBytes], timeUnits: .milliseconds,
            warmupIterations: 1, scalingFactor: .one, maxDuration: .seconds(20), maxIterations: 10,
            thresholds: [:])
    ) { benchmark in
        benchmark.startMeasurement()
        var builder = ASNTableBuilder()
        table.withUnsafeBytes { bytes in
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + (1 << 20))
                builder.feed(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
                start = end
            }
        }
        let report = builder.endFile()
        let built = builder.build()
        benchmark.stopMeasurement()
        precondition(report.rows == 500_000 && report.badLines == 0, "synthetic table misread: \(report)")
        benchmark.measurement(tableBytes, built.memoryBytes)
        blackHole(built)
    }
}
