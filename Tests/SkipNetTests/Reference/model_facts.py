"""Independent facts about ONNX models for SkipNet's importer tests, from onnx and onnxruntime.

usage: model_facts.py facts MODEL NxCxHxW   -> JSON {outputs: {name: shape}, conv_macs: int, params: int}
       model_facts.py make OUTDIR           -> writes small test models and OUTDIR/expected.json
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../scripts/reference"))
from onnxref import fixed_model  # noqa: E402


def facts(path, shape_text):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    shape = [int(v) for v in shape_text.split("x")]
    m = fixed_model(path, shape)
    inferred = onnx.shape_inference.infer_shapes(m)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = numpy_helper.to_array(a.t)
    macs = 0
    for n in m.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv":
            w = inits[n.input[1]].shape
            y = shapes[n.output[0]]
            macs += y[0] * y[2] * y[3] * w[1] * w[0] * w[2] * w[3]
        elif n.op_type == "ConvTranspose":
            w = inits[n.input[1]].shape
            x = shapes[n.input[0]]
            macs += x[0] * x[2] * x[3] * w[0] * w[1] * w[2] * w[3]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {m.graph.input[0].name: np.zeros(shape, dtype=np.float32)}
    outs = sess.run(None, feed)
    names = [o.name for o in sess.get_outputs()]
    print(json.dumps({"outputs": {k: list(v.shape) for k, v in zip(names, outs)}, "conv_macs": int(macs)}))


def make(out):
    rng = np.random.default_rng(7)
    expected = {}

    # Conv (with bias) followed by BatchNormalization: the folded weights, computed here independently.
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    gamma, beta = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    mean, var = rng.standard_normal(4).astype(np.float32), (rng.random(4) + 0.5).astype(np.float32)
    eps = 1e-3
    inits = [numpy_helper.from_array(a, n) for a, n in [(w, "w"), (b, "b"), (gamma, "g"), (beta, "be"), (mean, "m"), (var, "v")]]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], name="bn", epsilon=eps),
    ]
    g = helper.make_graph(nodes, "conv_bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{out}/conv_bn.onnx")
    scale = gamma / np.sqrt(var + eps)
    expected["conv_bn"] = {"w": (w * scale[:, None, None, None]).ravel().tolist(), "b": (beta + scale * (b - mean)).tolist()}

    # Old-exporter style: initializers also listed as graph inputs; weights from a Constant node; opset 9.
    wc = rng.standard_normal((2, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["wc"], value=numpy_helper.from_array(wc, "wc")),
        helper.make_node("Conv", ["x", "wc"], ["c"], name="conv1x1"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    bias_in = helper.make_tensor_value_info("unused_b", TensorProto.FLOAT, [2])
    g = helper.make_graph(nodes, "legacy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [10, 3, 32, 32]), bias_in],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.zeros(2, np.float32), "unused_b")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)]), f"{out}/legacy.onnx")

    # An operator SkipNet does not have.
    g = helper.make_graph([helper.make_node("Einsum", ["x"], ["y"], name="the_einsum", equation="ij->ji")], "einsum",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{out}/einsum.onnx")

    # An opset beyond the supported range.
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "new",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), f"{out}/opset21.onnx")
    with open(f"{out}/expected.json", "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    if sys.argv[1] == "facts":
        facts(sys.argv[2], sys.argv[3])
    else:
        make(sys.argv[2])
