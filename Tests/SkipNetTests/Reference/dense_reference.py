"""onnxruntime's outputs on real frames of a clip, for SkipNet's dense executor tests.

usage: dense_reference.py MODEL CLIP FRAMES(0,100,…) LAYOUT(nchw|nhwc) OUTDIR
Decodes the clip with GStreamer (gst-launch, RGB), builds each input (raw 0-255 for nchw as CenterFace expects;
(x-127.5)/128 for nhwc as MTCNN expects), runs onnxruntime with one thread and writes OUTDIR/meta.json plus raw
little-endian float32 files: frame{i}.input and frame{i}.out{k}.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../scripts/reference"))
from onnxref import decode_rgb, fixed_model  # noqa: E402

model_path, clip, frames_text, layout, out = sys.argv[1:6]
frames = [int(f) for f in frames_text.split(",")]
ort.set_default_logger_severity(3)
data = decode_rgb(clip, max(frames) + 1)
height, width = data.shape[1], data.shape[2]
shape = [1, 3, height, width] if layout == "nchw" else [1, height, width, 3]
m = fixed_model(model_path, shape)
g = m.graph
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
meta = {"input_shape": shape, "frames": frames, "outputs": []}
for f in frames:
    rgb = data[f].astype(np.float32)
    x = rgb.transpose(2, 0, 1)[None] if layout == "nchw" else ((rgb - 127.5) / 128.0)[None]
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.tofile(os.path.join(out, f"frame{f}.input"))
    outs = sess.run(None, {g.input[0].name: x})
    for k, y in enumerate(outs):
        y.astype(np.float32).tofile(os.path.join(out, f"frame{f}.out{k}"))
    meta["outputs"] = [{"name": o.name, "shape": list(y.shape)} for o, y in zip(sess.get_outputs(), outs)]
with open(os.path.join(out, "meta.json"), "w") as fh:
    json.dump(meta, fh)
