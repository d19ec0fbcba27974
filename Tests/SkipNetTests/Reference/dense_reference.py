"""onnxruntime's outputs on real frames of a clip, for SkipNet's dense executor tests.

usage: dense_reference.py MODEL CLIP FRAMES(0,100,…) LAYOUT(nchw|nhwc) OUTDIR
Decodes the clip with GStreamer (gst-launch, RGB), builds each input (raw 0-255 for nchw as CenterFace expects;
(x-127.5)/128 for nhwc as MTCNN expects), runs onnxruntime with one thread and writes OUTDIR/meta.json plus raw
little-endian float32 files: frame{i}.input and frame{i}.out{k}.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

model_path, clip, frames_text, layout, out = sys.argv[1:6]
frames = [int(f) for f in frames_text.split(",")]
ort.set_default_logger_severity(3)

with tempfile.TemporaryDirectory() as tmp:
    raw = os.path.join(tmp, "frames.rgb")
    caps = "video/x-raw,format=RGB"
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!", "videoconvert", "!",
                    caps, "!", "filesink", f"location={raw}"], check=True)
    probe = subprocess.run(["gst-discoverer-1.0", clip], capture_output=True, text=True).stdout
    size = [l for l in probe.splitlines() if "Width:" in l or "Height:" in l]
    width = int(size[0].split(":")[1])
    height = int(size[1].split(":")[1])
    data = np.fromfile(raw, dtype=np.uint8).reshape(-1, height, width, 3)

m = onnx.load(model_path)
g = m.graph
inits = {t.name for t in g.initializer}
real = [i for i in g.input if i.name not in inits]
del g.input[:]
g.input.extend(real)
shape = [1, 3, height, width] if layout == "nchw" else [1, height, width, 3]
for d, v in zip(g.input[0].type.tensor_type.shape.dim, shape):
    d.ClearField("dim_param")
    d.dim_value = v
for o in g.output:
    for d in o.type.tensor_type.shape.dim:
        d.ClearField("dim_value")
        d.dim_param = "?"
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
