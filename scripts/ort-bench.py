"""onnxruntime's side of scripts/bench-vs-onnxruntime: the same frames, the same thread count, dense fp32 CPU.

usage: ort-bench.py MODEL CLIP FRAMES THREADS WARMUP
Applies the two fix-ups of ../shared/ASSETS.md (initializers out of graph.input, input dims set), decodes the clip
with GStreamer to RGB, times sess.run per frame and prints 'result median_ms=… p95_ms=…'.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

model_path, clip, frames, threads, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ort.set_default_logger_severity(3)
info = subprocess.run(["gst-discoverer-1.0", clip], capture_output=True, text=True).stdout.splitlines()
width = int([l for l in info if "Width:" in l][0].split(":")[1])
height = int([l for l in info if "Height:" in l][0].split(":")[1])
with tempfile.TemporaryDirectory() as tmp:
    raw = os.path.join(tmp, "f.rgb")
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!", "videoconvert", "!",
                    "video/x-raw,format=RGB", "!", "identity", f"eos-after={min(frames, 100)}", "!", "filesink",
                    f"location={raw}"], check=True)
    rgb = np.fromfile(raw, dtype=np.uint8).reshape(-1, height, width, 3)

m = onnx.load(model_path)
g = m.graph
inits = {t.name for t in g.initializer}
real = [i for i in g.input if i.name not in inits]
del g.input[:]
g.input.extend(real)
declared = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
nchw = declared[1] == 3
shape = [1, 3, height, width] if nchw else [1, height, width, 3]
for d, v in zip(g.input[0].type.tensor_type.shape.dim, shape):
    d.ClearField("dim_param")
    d.dim_value = v
for o in g.output:
    for d in o.type.tensor_type.shape.dim:
        d.ClearField("dim_value")
        d.dim_param = "?"
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
