// swift-tools-version:6.1
// Micro-benchmarks of fasttrace's per-packet hot paths (package-benchmark). A separate package so a
// plain `swift build` of fasttrace does not build the benchmark harness.
//
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
//   swift package --allow-writing-to-package-directory benchmark thresholds check   (0 mallocs per op)
//
// Thresholds/ holds the static thresholds (mallocCountTotal 0 only: wall-clock limits would be noise
// on shared machines). package-benchmark 1.38.1 writes them with `_` for spaces in benchmark names
// but reads them back by the name as written, with spaces: keep the files named with spaces.
import PackageDescription

let package = Package(
    name: "FastTraceBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "fasttrace", path: ".."),
        // The MallocInterposer trait is what makes malloc counting (and resolution here) work.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "FastTraceBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "FastTraceCore", package: "fasttrace"),
                .product(name: "FastTraceWire", package: "fasttrace"),
                .product(name: "FastTraceAnnotations", package: "fasttrace"),
            ],
            path: "Benchmarks/FastTraceBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
