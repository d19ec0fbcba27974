extension Duration {
    /// The duration in seconds, as the timings and benchmarks print and average them.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
