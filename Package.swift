// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .library(name: "FerryCore", targets: ["FerryCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", exact: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", exact: "0.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
    ],
    targets: [
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "FerryCore", swiftSettings: strict),
        .target(name: "FerryCrypto", dependencies: ["CSodium"], swiftSettings: strict),
        .target(
            name: "FerryProtocol",
            dependencies: [
                "FerryCore", "FerryCrypto", "CZstd", "CZlib",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),
        .target(
            name: "FerryStore",
            dependencies: [
                "FerryCore", "FerryProtocol", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "SwiftCSV", package: "SwiftCSV"),
            ],
            swiftSettings: strict),
        .target(
            name: "FerryAgent",
            dependencies: [
                "FerryStore", "FerryProtocol", "FerryCrypto",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The local data-entry page (EntryPage/): the hub console's stack.
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: strict),
        .target(
            name: "FerryHub",
            dependencies: [
                "FerryStore", "FerryProtocol", "FerryCrypto", "FerryPostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // The hub's store on PostgreSQL (issue 10): several `ferry hub serve` processes, one database.
        .target(
            name: "FerryPostgres",
            dependencies: [
                "FerryStore", "FerryCore", "FerryProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "FerryTesting", dependencies: ["FerryCore", "FerryCrypto", "FerryProtocol"], swiftSettings: strict),
        // libFuzzer harnesses (scripts/fuzz.sh); replayed in the normal test run.
        .target(
            name: "FerryFuzz",
            dependencies: ["FerryCore", "FerryCrypto", "FerryProtocol", "FerryStore", "FerryHub", "FerryTesting"],
            swiftSettings: strict),
        .executableTarget(name: "FuzzEnvelope", dependencies: ["FerryFuzz"], swiftSettings: strict),
        .executableTarget(name: "FuzzBody", dependencies: ["FerryFuzz"], swiftSettings: strict),
        .executableTarget(name: "FuzzForm", dependencies: ["FerryFuzz"], swiftSettings: strict),
        .executableTarget(name: "FuzzRequest", dependencies: ["FerryFuzz"], swiftSettings: strict),
        .executableTarget(name: "FuzzIngest", dependencies: ["FerryFuzz"], swiftSettings: strict),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryCore", "FerryCrypto", "FerryProtocol", "FerryStore", "FerryAgent", "FerryHub", "FerryPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict),
        .testTarget(name: "FerryCoreTests", dependencies: ["FerryCore", "FerryTesting"], swiftSettings: strict),
        .testTarget(name: "FerryCryptoTests", dependencies: ["FerryCrypto"], swiftSettings: strict),
        .testTarget(
            name: "FerryProtocolTests", dependencies: ["FerryProtocol", "FerryTesting"], swiftSettings: strict),
        .testTarget(
            name: "FerryStoreTests",
            dependencies: [
                "FerryStore", "FerryHub", "FerryTesting", "FerryCore", "FerryProtocol", "FerryCrypto", "FerryPostgres",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "FerryFuzzTests",
            dependencies: ["FerryFuzz", "FerryProtocol", "FerryCore", "FerryStore", "FerryTesting"],
            swiftSettings: strict),
        // Drives the built `ferry` executable; reads replicas and crafts envelopes directly.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "FerryCore", "FerryTesting", "FerryStore", "FerryAgent", "FerryProtocol", "FerryCrypto",
                "FerryPostgres",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
    ]
)
