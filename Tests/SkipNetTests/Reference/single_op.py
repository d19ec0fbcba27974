#!/usr/bin/env python3
"""Runs one-node ONNX models in onnxruntime (CPU, 1 thread) for the SkipNet kernel tests.

Usage: single_op.py SPEC.json  — SPEC = {"cases": [case, ...]}; writes SPEC's "result" path (JSON).
case = {
  "name": str, "op": str, "opset": int, "domain": "" (optional),
  "attrs": {name: {"i": int} | {"f": float} | {"s": str} | {"ints": [...]} | {"floats": [...]}},
  "inputs": [ null (omitted optional input)
            | {"shape": [...], "file": "raw float32 path"}
            | {"shape": [...], "dtype": "float32"|"int64"|"bool", "data": [...]} ],
  "numOutputs": int, "outputType": "float32"|"int64"|"bool" (optional), "outputPrefix": "path prefix"
(attrs also take {"t": {"dtype": ..., "dims": [...], "data": [...]}} for tensor attributes)
}
Output k of a case is written as raw float32 to outputPrefix + "_k.bin"; the result JSON is
{"cases": [{"name": ..., "shapes": [[...], ...]} | {"name": ..., "error": "..."}]}.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "int64": (np.int64, TensorProto.INT64),
          "bool": (np.bool_, TensorProto.BOOL)}


def attr_value(v):
    if "i" in v:
        return int(v["i"])
    if "f" in v:
        return float(v["f"])
    if "s" in v:
        return str(v["s"])
    if "ints" in v:
        return [int(x) for x in v["ints"]]
    if "floats" in v:
        return [float(x) for x in v["floats"]]
    if "t" in v:
        np_t, onnx_t = DTYPES[v["t"]["dtype"]]
        return helper.make_tensor("value", onnx_t, v["t"]["dims"], np.array(v["t"]["data"], dtype=np_t).flatten())
    raise ValueError(f"bad attribute {v}")


def run_case(case):
    graph_inputs, feeds, node_inputs = [], {}, []
    for i, inp in enumerate(case["inputs"]):
        if inp is None:
            node_inputs.append("")
            continue
        name = f"in{i}"
        np_t, onnx_t = DTYPES[inp.get("dtype", "float32")]
        if "file" in inp:
            arr = np.fromfile(inp["file"], dtype=np.float32).astype(np_t)
        else:
            arr = np.array(inp["data"], dtype=np_t)
        arr = arr.reshape(inp["shape"])
        graph_inputs.append(helper.make_tensor_value_info(name, onnx_t, list(arr.shape)))
        feeds[name] = arr
        node_inputs.append(name)
    outs = [f"out{k}" for k in range(case.get("numOutputs", 1))]
    attrs = {k: attr_value(v) for k, v in case.get("attrs", {}).items()}
    node = helper.make_node(case["op"], node_inputs, outs, domain=case.get("domain", ""), **attrs)
    out_type = DTYPES[case.get("outputType", "float32")][1]
    graph_outputs = [helper.make_tensor_value_info(o, out_type, None) for o in outs]
    graph = helper.make_graph([node], "single_op", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(case["opset"]))])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    results = sess.run(outs, feeds)
    shapes = []
    for k, r in enumerate(results):
        r = np.array(r, dtype=np.float32, order="C")  # keeps 0-d results 0-d, unlike ascontiguousarray
        r.tofile(f"{case['outputPrefix']}_{k}.bin")
        shapes.append(list(r.shape))
    return {"name": case["name"], "shapes": shapes}


def main():
    spec = json.load(open(sys.argv[1]))
    out = []
    for case in spec["cases"]:
        try:
            out.append(run_case(case))
        except Exception as e:  # reported per case; the Swift test fails on it
            out.append({"name": case["name"], "error": f"{type(e).__name__}: {e}"})
    with open(spec["result"], "w") as f:
        json.dump({"cases": out}, f)


if __name__ == "__main__":
    main()
