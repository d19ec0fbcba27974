"""onnxruntime's side of scripts/bench-vs-onnxruntime: the same frames, the same thread count, dense fp32 CPU.

usage: ort-bench.py MODEL CLIP FRAMES THREADS WARMUP [SCALE]
Applies the two fix-ups of docs/test-data.md (initializers out of graph.input, input dims set), decodes the clip
with GStreamer to RGB, times sess.run per frame and prints 'result median_ms=… p95_ms=…'.
"""
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from onnxref import declared_input_shape, decode_rgb, fixed_model  # noqa: E402

model_path, clip, frames, threads, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ort.set_default_logger_severity(3)
scale = int(sys.argv[6]) if len(sys.argv) > 6 else 1
rgb = decode_rgb(clip, min(frames, 100), scale)
height, width = rgb.shape[1], rgb.shape[2]
nchw = declared_input_shape(model_path)[1] == 3
shape = [1, 3, height, width] if nchw else [1, height, width, 3]
m = fixed_model(model_path, shape)
g = m.graph
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
name = g.input[0].name
inputs = [np.ascontiguousarray((f.astype(np.float32).transpose(2, 0, 1) if nchw else f.astype(np.float32))[None])
          for f in rgb]
for i in range(warmup):
    sess.run(None, {name: inputs[i % len(inputs)]})
times = []
for i in range(frames):
    x = inputs[i % len(inputs)]
    t = time.perf_counter()
    sess.run(None, {name: x})
    times.append((time.perf_counter() - t) * 1e3)
times.sort()
p95 = times[min(len(times) - 1, int(np.ceil(len(times) * 0.95)) - 1)]
print(f"result median_ms={np.median(times):.3f} p95_ms={p95:.3f}")
