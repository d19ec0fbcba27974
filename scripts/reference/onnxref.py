"""Shared by skipd's reference scripts (tests and benchmarks): the ONNX fix-ups of docs/test-data.md and
GStreamer frame decoding, so that onnxruntime sees exactly what skipd sees."""
import os
import subprocess
import tempfile

import numpy as np
import onnx


def fixed_model(path, input_shape):
    """The model with initializers removed from graph.input (else onnxruntime neither folds nor fuses) and its
    single input's dims set; output dims become symbolic."""
    m = onnx.load(path)
    g = m.graph
    inits = {t.name for t in g.initializer}
    real = [i for i in g.input if i.name not in inits]
    del g.input[:]
    g.input.extend(real)
    for d, v in zip(g.input[0].type.tensor_type.shape.dim, input_shape):
        d.ClearField("dim_param")
        d.dim_value = v
    for o in g.output:
        for d in o.type.tensor_type.shape.dim:
            d.ClearField("dim_value")
            d.dim_param = "?"
    return m


def declared_input_shape(path):
    """Declared dims of the model's single real input (0 where dynamic)."""
    g = onnx.load(path).graph
    inits = {t.name for t in g.initializer}
    real = [i for i in g.input if i.name not in inits]
    return [d.dim_value for d in real[0].type.tensor_type.shape.dim]


def decode_rgb(clip, max_frames=None, scale=1):
    """The clip's frames as uint8 [n, height, width, 3], decoded to RGB by GStreamer as skipd does (`scale` > 1:
    upscaled by videoscale first, as `skipd bench skip --scale` does)."""
    info = subprocess.run(["gst-discoverer-1.0", clip], capture_output=True, text=True, check=True).stdout
    lines = info.splitlines()
    width = int([l for l in lines if "Width:" in l][0].split(":")[1]) * scale
    height = int([l for l in lines if "Height:" in l][0].split(":")[1]) * scale
    # identity's eos-after lets N−1 or N buffers through depending on timing: ask for one more and cut.
    limit = ["!", "identity", f"eos-after={max_frames + 1}"] if max_frames else []
    caps = f"video/x-raw,format=RGB,width={width},height={height}" if scale != 1 else "video/x-raw,format=RGB"
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "frames.rgb")
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!", "videoconvert",
                        "!", "videoscale", "!", caps, *limit, "!", "filesink", f"location={raw}"], check=True)
        frames = np.fromfile(raw, dtype=np.uint8).reshape(-1, height, width, 3)
        return frames[:max_frames] if max_frames else frames
