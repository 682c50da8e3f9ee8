// swift-tools-version: 6.0
// FactSweep: a distributed sweep coordinator for fine-tuning studies, with a
// CPU training core (OpenBLAS) for Llama-architecture models.
import PackageDescription

/// Numeric code is unusable unoptimised; `-Ounchecked` is not used so that
/// bounds and overflow traps stay on in the libraries.
let optimised: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"])]

let package = Package(
    name: "FactSweep",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "factsweep", targets: ["factsweep"]),
        .library(name: "Core", targets: ["Core"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // oneDNN's matmul primitive (Debian ships no pkg-config file for it).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ", providers: [.apt(["libzmq3-dev"])]),
        // The leaf: a trial's configuration and records as plain values, used by every module above.
        .target(name: "Trial"),
        // Element-wise kernels in C where Swift cannot vectorise them (AdamW's square root).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=off", "-fveclib=libmvec"])],
                linkerSettings: [.linkedLibrary("mvec")]),
        .target(name: "Core", dependencies: ["Trial", "CBLAS", "CDNNL", "CKernels"], swiftSettings: optimised),
        .target(
            name: "Protocol",
            dependencies: ["Trial", "CZMQ", .product(name: "Logging", package: "swift-log")]),
        // The run database: the coordinator is its only writer, the report a reader.
        .target(
            name: "Store",
            dependencies: ["Trial", .product(name: "Logging", package: "swift-log"),
                           .product(name: "GRDB", package: "GRDB.swift")]),
        // Plans and schedules; trains nothing, so it does not link Core (or OpenBLAS).
        .target(
            name: "Coordinator",
            dependencies: ["Trial", "Store", "Protocol", .product(name: "Logging", package: "swift-log")]),
        // A read-only view of a run database: `factsweep report` (and the live dashboard's charts).
        .target(
            name: "Report",
            dependencies: ["Trial", "Store", .product(name: "Logging", package: "swift-log"),
                           .product(name: "GRDB", package: "GRDB.swift")]),
        // `factsweep serve`: the live dashboard, a read-only web view of a run database.
        .target(
            name: "Dashboard",
            dependencies: ["Trial", "Store", "Report", .product(name: "Logging", package: "swift-log"),
                           .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Hummingbird", package: "hummingbird")]),
        .target(
            name: "Worker",
            dependencies: ["Trial", "Core", "Protocol", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "factsweep",
            dependencies: [
                "Trial", "Core", "Store", "Coordinator", "Report", "Dashboard", "Worker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "TestSupport", dependencies: ["Trial", "Core"], path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: ["Trial", "Core", "TestSupport"],
                    resources: [.copy("Golden")]),
        // End to end through the `factsweep` binary: train, generate, tokenize on real and tiny models.
        .testTarget(name: "CommandLineTests", dependencies: ["TestSupport"]),
        .testTarget(name: "SweepTests", dependencies: [
            "Trial", "Core", "Protocol", "Store", "Coordinator", "Report", "Dashboard", "Worker", "TestSupport", "CZMQ",
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
        ], exclude: ["Fixtures"]),
    ]
)
