"""Runs DIR/model.onnx in onnxruntime (one thread, no graph optimisations) on DIR/input.bin (raw float32, the
single input's declared shape) and writes each output as raw float32 DIR/output{k}.bin.

usage: run_model.py DIR
"""
import os
import sys

import numpy as np
import onnxruntime as ort

d = sys.argv[1]
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
x = np.fromfile(os.path.join(d, "input.bin"), dtype=np.float32).reshape(inp.shape)
for k, y in enumerate(sess.run(None, {inp.name: x})):
    np.asarray(y, dtype=np.float32).tofile(os.path.join(d, f"output{k}.bin"))
