// swift-tools-version:6.1
// fasttrace: a port-aware, many-target traceroute engine for Linux.
import PackageDescription

let package = Package(
    name: "fasttrace",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fasttrace", targets: ["fasttrace"]),
        .library(name: "FastTraceCore", targets: ["FastTraceCore"]),
        .library(name: "FastTraceWire", targets: ["FastTraceWire"]),
        .library(name: "FastTraceLinux", targets: ["FastTraceLinux"]),
        .library(name: "FastTraceAnnotations", targets: ["FastTraceAnnotations"]),
        .library(name: "FastTraceStats", targets: ["FastTraceStats"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // --metrics-listen only: the Prometheus exposition and its HTTP server (FastTraceMetricsServer).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The one C shim: TPACKET_V3 accessors, libbpf loading of the embedded filter, libmnl queries,
        // sendmmsg. Only FastTraceLinux imports it.
        .target(
            name: "CFastTrace",
            linkerSettings: [.linkedLibrary("mnl"), .linkedLibrary("bpf")]
        ),
        // Pure Swift packet code: views, writers, checksums, the probe-tag codec, the reply parser.
        .target(name: "FastTraceWire"),
        // The engine without syscalls: targets, scheduler, dispatcher, slot table, results, the
        // transport seam.
        .target(name: "FastTraceCore", dependencies: ["FastTraceWire"]),
        // What is added to hops after the fact: the offline AS table and the hop-name bookkeeping.
        .target(name: "FastTraceAnnotations", dependencies: ["FastTraceCore", "FastTraceWire"]),
        // Rounds (-c): per-hop and per-path statistics over repeated traces, and what they mean (where
        // loss and latency start and persist). Pure Swift, no syscalls.
        .target(name: "FastTraceStats", dependencies: ["FastTraceCore", "FastTraceWire"]),
        // The in-process simulated network (transport and clock) the engine tests run on; shipped to
        // tests only.
        .target(name: "FastTraceTestSupport", dependencies: ["FastTraceCore", "FastTraceWire"]),
        // The real transport: AF_PACKET TPACKET_V3 ring + eBPF filter, raw sends, netlink routes.
        .target(
            name: "FastTraceLinux",
            dependencies: [
                "CFastTrace", "FastTraceCore", "FastTraceWire", "FastTraceAnnotations",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `--metrics-listen`: the run's metrics in a Prometheus registry and the HTTP server that serves them
        // (SwiftNIO). Only the executable links it, so the engine's tests never compile NIO.
        .target(
            name: "FastTraceMetricsServer",
            dependencies: [
                "FastTraceCore", "FastTraceStats", "FastTraceWire",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "fasttrace",
            dependencies: [
                "FastTraceCore", "FastTraceWire", "FastTraceLinux", "FastTraceAnnotations", "FastTraceStats",
                "FastTraceMetricsServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "FastTraceWireTests", dependencies: ["FastTraceWire"]),
        .testTarget(
            name: "FastTraceStatsTests", dependencies: ["FastTraceStats", "FastTraceCore", "FastTraceWire", "FastTraceTestSupport"]),
        .testTarget(name: "FastTraceCoreTests", dependencies: ["FastTraceCore", "FastTraceWire", "FastTraceTestSupport"]),
        .testTarget(
            name: "FastTraceAnnotationsTests", dependencies: ["FastTraceAnnotations", "FastTraceCore", "FastTraceTestSupport"]),
        // The command line's own pieces (no root, no lab): option values, marks, escaping, progress,
        // the formatters (CSV quoting and rows, the DOT graph) and hop annotations, through
        // `@testable import fasttrace`.
        .testTarget(
            name: "FastTraceCLITests",
            dependencies: ["fasttrace", "FastTraceCore", "FastTraceLinux", "FastTraceWire", "FastTraceAnnotations",
                "FastTraceStats", "FastTraceMetricsServer"]),
        // Privileged: root + network namespaces built by scripts/lab.sh. Skipped (with a reason) when not root.
        .testTarget(
            name: "FastTraceLabTests",
            dependencies: ["FastTraceLinux", "FastTraceCore", "FastTraceWire", "FastTraceAnnotations"]
        ),
    ]
)

// FASTTRACE_ENGINE_ONLY=1 (scripts/test.sh's ThreadSanitizer build, which runs FastTraceCoreTests only):
// the engine and its tests alone, so that build compiles neither SwiftNIO nor the command line.
if Context.environment["FASTTRACE_ENGINE_ONLY"] != nil {
    let engine: Set<String> = ["FastTraceWire", "FastTraceCore", "FastTraceTestSupport", "FastTraceCoreTests"]
    package.targets.removeAll { !engine.contains($0.name) }
    package.products.removeAll { $0.name != "FastTraceCore" && $0.name != "FastTraceWire" }
}
