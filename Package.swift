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
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ", providers: [.apt(["libzmq3-dev"])]),
        .target(
            name: "Core",
            dependencies: ["CBLAS", .product(name: "Logging", package: "swift-log")],
            swiftSettings: optimised),
        .target(
            name: "Protocol",
            dependencies: ["CZMQ", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "Coordinator",
            dependencies: ["Core", "Protocol", .product(name: "Logging", package: "swift-log"),
                           .product(name: "GRDB", package: "GRDB.swift")]),
        .target(
            name: "Worker",
            dependencies: ["Core", "Protocol", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "factsweep",
            dependencies: [
                "Core", "Coordinator", "Worker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "TestSupport", dependencies: ["Core"], path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: ["Core", "TestSupport"],
                    resources: [.copy("Golden")]),
        .testTarget(name: "SweepTests", dependencies: ["Core", "Protocol", "Coordinator", "Worker", "TestSupport", .product(name: "GRDB", package: "GRDB.swift"), "CZMQ",
                                                          .product(name: "Logging", package: "swift-log")],
                    exclude: ["Fixtures"]),
    ]
)
