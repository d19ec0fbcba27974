// swift-tools-version: 6.1
import PackageDescription

// The AVX2 kernels' target CPU; other architectures build the same (portable Swift) code for their default CPU,
// and SkipNet never calls it there (it checks for avx2 and fma first).
#if arch(x86_64)
    let avx2Flags = ["-target-cpu", "haswell"]
#else
    let avx2Flags: [String] = []
#endif

let package = Package(
    name: "skipd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "skipd", targets: ["skipd"]),
        .executable(name: "skipd-testcam", targets: ["skipd-testcam"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", exact: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        // Hummingbird's own NIO, named for `Channel` (a live-view stream closes its connection at shutdown).
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CGStreamer",
            pkgConfig: "gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0",
            providers: [.apt(["libgstreamer1.0-dev", "libgstreamer-plugins-base1.0-dev"])]
        ),
        .target(
            name: "PipelineKit",
            dependencies: [
                "CGStreamer",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // libjpeg-turbo: the live view's JPEG encoder (docs/architecture.md).
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .target(
            name: "SkipNetAVX2",
            // Compiled for AVX2 + FMA; SkipNet calls it only after checking the CPU (see AVX2Kernels.swift).
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug)), .unsafeFlags(avx2Flags)]
        ),
        .target(
            name: "SkipNet",
            dependencies: [
                "COpenBLAS", "SkipNetAVX2", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            // The engine's loops are unusably slow unoptimised; tests and debug runs of real models need -O.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))],
            linkerSettings: [.linkedLibrary("m")]
        ),
        // The reference MQTT client, for the mqtt stage.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .target(
            name: "Plugins",
            dependencies: [
                "CMosquitto", "PipelineKit", "SkipNet", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The daemon: serve config, the supervised fleet of pipelines, the HTTP API, its metrics and live view.
        .target(
            name: "SkipdService",
            dependencies: [
                "PipelineKit", "Plugins", "SkipNet", "CJPEG",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // The lab tools: benchmarks against the dense engine and onnxruntime, threshold calibration, policy fitting.
        .target(
            name: "SkipdTools",
            dependencies: [
                "PipelineKit", "Plugins", "SkipNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "skipd",
            dependencies: [
                "PipelineKit", "Plugins", "SkipNet", "SkipdService", "SkipdTools",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .systemLibrary(
            name: "CGStreamerRTSP",
            pkgConfig: "gstreamer-rtsp-server-1.0",
            providers: [.apt(["libgstrtspserver-1.0-dev"])]
        ),
        // A local RTSP camera (test pattern or file) for tests and for trying `rtspsrc` pipelines without one.
        .executableTarget(
            name: "skipd-testcam",
            dependencies: [
                "CGStreamer", "CGStreamerRTSP", "PipelineKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "PipelineKitTests", dependencies: ["PipelineKit"]),
        .testTarget(name: "PluginsTests", dependencies: ["Plugins", "PipelineKit", "SkipNet"]),
        // skipd-testcam is listed so its binary is built beside the test bundle (TestCamTests runs it).
        .testTarget(name: "skipdTests", dependencies: ["skipd", "skipd-testcam"]),
        .testTarget(
            name: "SkipdServiceTests",
            dependencies: [
                "SkipdService", "PipelineKit", "Plugins", .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "SkipNetTests", dependencies: ["SkipNet", "SkipNetAVX2"], exclude: ["Reference"]),
    ],
    swiftLanguageModes: [.v6]
)
