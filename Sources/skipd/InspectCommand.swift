import ArgumentParser
import Foundation
import PipelineKit
import SkipNet
import SkipdTools

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show an ONNX model's layers: operators, shapes, parameters and multiply-accumulates.",
        discussion: "MACs count convolutions, transposed convolutions and matrix products (1 MAC = 2 FLOP), "
            + "after batch normalisation is folded into the convolution before it.")

    @Argument(help: "ONNX model file.")
    var model: String

    @Option(help: "Input shape NxCxHxW (or the model's own rank), replacing the declared dims, e.g. 1x3x576x768.")
    var input: String?

    @Flag(help: "Totals only.")
    var summary = false

    func run() async throws {
        let shape: [Int]?
        if let input {
            let dims = input.split(separator: "x").map { Int($0) }
            guard !dims.isEmpty, dims.allSatisfy({ ($0 ?? 0) > 0 }) else {
                printError("error: --input '\(input)' is not a shape like 1x3x576x768")
                throw ExitCode(2)
            }
            shape = dims.compactMap { $0 }
        } else {
            shape = nil
        }
        let graph: Graph
        do {
            graph = try ONNXImporter.load(path: model, inputShape: shape)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        let s = ModelSummary(graph)
        if !summary {
            let rows = s.layers.enumerated().map { i, l in
                [
                    "\(i)", l.op, l.name, l.inputShape.shapeText, l.outputShape.shapeText, "\(l.parameters)",
                    l.macs > 0 ? String(format: "%.2f M", Double(l.macs) / 1e6) : "",
                ]
            }
            print(table(header: ["#", "op", "node", "input", "output", "params", "MACs"], rows: rows))
            print("")
        }
        for (name, shape) in s.inputs { print("input   \(name)  \(shape.shapeText)") }
        for (name, shape) in s.outputs { print("output  \(name)  \(shape.shapeText)") }
        var byOp: [String: Int] = [:]
        for l in s.layers { byOp[l.op, default: 0] += 1 }
        print(
            "layers  \(s.layers.count) ("
                + byOp.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
        print("params  \(s.totalParameters)")
        print(String(format: "MACs    %.3f G", Double(s.totalMACs) / 1e9) + " (\(s.totalMACs))")
    }

    private func table(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { c, cell in
                c == row.count - 1 || c == 5 || c == 0
                    ? String(repeating: " ", count: widths[c] - cell.count) + cell
                    : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
