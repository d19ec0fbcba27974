import Foundation

/// Multinomial logistic regression by full-batch gradient descent with a little L2, enough for a handful of
/// features and a few hundred frames.
enum SoftmaxRegression {
    static func fit(_ samples: [(x: [Double], label: Int)], classes: Int, steps: Int = 3000, rate: Double = 0.5)
        -> [[Double]]
    {
        guard let dims = samples.first?.x.count else { return Array(repeating: [], count: classes) }
        var w = Array(repeating: Array(repeating: 0.0, count: dims), count: classes)
        let n = Double(samples.count)
        for _ in 0..<steps {
            var grad = Array(repeating: Array(repeating: 0.0, count: dims), count: classes)
            for (x, label) in samples {
                let scores = w.map { row in zip(row, x).reduce(0) { $0 + $1.0 * $1.1 } }
                let top = scores.max() ?? 0
                let e = scores.map { exp($0 - top) }
                let sum = e.reduce(0, +)
                for c in 0..<classes {
                    let g = e[c] / sum - (c == label ? 1 : 0)
                    for d in 0..<dims { grad[c][d] += g * x[d] }
                }
            }
            for c in 0..<classes {
                for d in 0..<dims { w[c][d] -= rate * (grad[c][d] / n + 1e-3 * w[c][d]) }
            }
        }
        return w
    }
}
