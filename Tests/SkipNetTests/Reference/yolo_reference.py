"""onnxruntime's outputs of the YOLOv8-structured graph (yolo_graph.py) on real frames, at two input sizes.

usage: yolo_reference.py CLIP OUTDIR [FRAMES(0,120) [SIZES(full,crop)]]
Writes OUTDIR/yolo.onnx, and per case (a frame at a size: the whole 768×576 frame, or a 320×256 centre crop)
raw little-endian float32 files CASE.input (RGB/255, NCHW, as ultralytics feeds it) and CASE.output, listed with
their shapes in OUTDIR/meta.json.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "../../../scripts/reference"))
sys.path.insert(0, here)
from onnxref import decode_rgb  # noqa: E402
from yolo_graph import build  # noqa: E402

clip, out = sys.argv[1:3]
wanted = [int(f) for f in (sys.argv[3] if len(sys.argv) > 3 else "0,120").split(",")]
sizes = (sys.argv[4] if len(sys.argv) > 4 else "full,crop").split(",")
model_path = os.path.join(out, "yolo.onnx")
with open(model_path, "wb") as fh:
    fh.write(build(width=8, classes=80).SerializeToString())
so = ort.SessionOptions()
so.intra_op_num_threads = 1
sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
frames = decode_rgb(clip, max(wanted) + 1)
cases = []
for f in wanted:
    rgb = frames[f]
    h, w = rgb.shape[:2]
    views = {"full": rgb, "crop": rgb[(h - 256) // 2:(h + 256) // 2, (w - 320) // 2:(w + 320) // 2]}
    for name, crop in ((n, views[n]) for n in sizes):
        x = np.ascontiguousarray(crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        y = sess.run(None, {"images": x})[0]
        case = f"{name}{f}"
        x.tofile(os.path.join(out, f"{case}.input"))
        y.astype(np.float32).tofile(os.path.join(out, f"{case}.output"))
        cases.append({"name": case, "input_shape": list(x.shape), "output_shape": list(y.shape)})
with open(os.path.join(out, "meta.json"), "w") as fh:
    json.dump({"model": model_path, "cases": cases}, fh)
