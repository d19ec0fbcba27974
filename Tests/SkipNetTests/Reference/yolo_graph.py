#!/usr/bin/env python3
"""Builds a YOLOv8-structured detector as ultralytics exports it with dynamic axes (opset 17), random weights.

Usage: yolo_graph.py OUT.onnx [--width 8] [--classes 80]

The graph has what real exports have: Conv + SiLU (Sigmoid·Mul), C2f blocks (Split, Concat, residual Add), SPPF
(three MaxPools), nearest Resize and Concat in the neck, and the Detect head: per-level box (4·16) and class
convolutions, reshape targets computed at run time (Shape → Gather → Unsqueeze → Concat → Reshape), anchors and
strides from the feature maps' sizes (Range, Cast, Expand, ConstantOfShape, Mul), the DFL (Reshape, Transpose,
Softmax, a 1×1 Conv with weights 0…15), box decoding (Slice, Sub, Add, Div, Mul) and class Sigmoid, giving
`output0` [1, 4 + classes, anchors]. The input is `images` [1, 3, height, width], height and width dynamic.
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, seed=7):
        self.nodes, self.inits, self.rng, self.n = [], [], np.random.default_rng(seed), 0

    def name(self, prefix):
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, array, prefix="c"):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, outputs=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if outputs == 1 else outs

    def conv(self, x, cin, cout, k=1, s=1, act=True, weights=None, bias=True):
        w = weights if weights is not None else (
            self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k)) * 0.8).astype(np.float32)
        inputs = [x, self.const(w, "w")]
        if bias:
            inputs.append(self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32), "b"))
        y = self.op("Conv", inputs, kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)
        if act:  # SiLU as PyTorch exports it
            y = self.op("Mul", [y, self.op("Sigmoid", [y])])
        return y

    def c2f(self, x, cin, cout, n, shortcut):
        c = cout // 2
        y = self.conv(x, cin, 2 * c)
        parts = self.op("Split", [y, self.const(np.array([c, c], np.int64))], outputs=2, axis=1)
        parts = list(parts)
        for _ in range(n):
            t = self.conv(self.conv(parts[-1], c, c, 3), c, c, 3)
            parts.append(self.op("Add", [parts[-1], t]) if shortcut else t)
        return self.conv(self.op("Concat", parts, axis=1), (2 + n) * c, cout)

    def sppf(self, x, cin, cout):
        c = cin // 2
        y = [self.conv(x, cin, c)]
        for _ in range(3):
            y.append(self.op("MaxPool", [y[-1]], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2]))
        return self.conv(self.op("Concat", y, axis=1), 4 * c, cout)

    def upsample(self, x):
        return self.op("Resize", [x, "", self.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest",
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    def dim(self, x, axis):
        """Dimension `axis` of x as a 1-element int64 tensor, the way torch.onnx traces `x.shape[axis]`."""
        shape = self.op("Shape", [x])
        scalar = self.op("Gather", [shape, self.const(np.array(axis, np.int64))], axis=0)
        return self.op("Unsqueeze", [scalar, self.const(np.array([0], np.int64))])

    def reshape(self, x, dims):
        """Reshape to `dims`, whose entries are ints or 1-element int64 tensor names."""
        parts = [d if isinstance(d, str) else self.const(np.array([d], np.int64)) for d in dims]
        return self.op("Reshape", [x, self.op("Concat", parts, axis=0)])


def build(width, classes, reg_max=16):
    b = Builder()
    c1, c2, c3, c4, c5 = width, 2 * width, 4 * width, 8 * width, 16 * width
    x = b.conv("images", 3, c1, 3, 2)
    x = b.conv(x, c1, c2, 3, 2)
    x = b.c2f(x, c2, c2, 1, True)
    x = b.conv(x, c2, c3, 3, 2)
    p3 = b.c2f(x, c3, c3, 2, True)
    x = b.conv(p3, c3, c4, 3, 2)
    p4 = b.c2f(x, c4, c4, 2, True)
    x = b.conv(p4, c4, c5, 3, 2)
    x = b.c2f(x, c5, c5, 1, True)
    p5 = b.sppf(x, c5, c5)
    h12 = b.c2f(b.op("Concat", [b.upsample(p5), p4], axis=1), c5 + c4, c4, 1, False)
    o3 = b.c2f(b.op("Concat", [b.upsample(h12), p3], axis=1), c4 + c3, c3, 1, False)
    o4 = b.c2f(b.op("Concat", [b.conv(o3, c3, c3, 3, 2), h12], axis=1), c3 + c4, c4, 1, False)
    o5 = b.c2f(b.op("Concat", [b.conv(o4, c4, c4, 3, 2), p5], axis=1), c4 + c5, c5, 1, False)

    # Detect head.
    box_ch, cls_ch, no = max(16, c3 // 4, 4 * reg_max), max(c3, min(classes, 100)), 4 * reg_max + classes
    flat, anchors, strides = [], [], []
    for level, (feat, ch, stride) in enumerate([(o3, c3, 8), (o4, c4, 16), (o5, c5, 32)]):
        box = b.conv(b.conv(b.conv(feat, ch, box_ch, 3), box_ch, box_ch, 3), box_ch, 4 * reg_max, act=False)
        cls = b.conv(b.conv(b.conv(feat, ch, cls_ch, 3), cls_ch, cls_ch, 3), cls_ch, classes, act=False)
        y = b.op("Concat", [box, cls], axis=1)
        flat.append(b.reshape(y, [b.dim(y, 0), no, -1]))
        # make_anchors: grid cell centres and the level's stride, from the feature map's size.
        h = b.op("Squeeze", [b.dim(y, 2), b.const(np.array([0], np.int64))])
        w = b.op("Squeeze", [b.dim(y, 3), b.const(np.array([0], np.int64))])
        start, step = b.const(np.array(0, np.int64)), b.const(np.array(1, np.int64))
        sx = b.op("Add", [b.op("Cast", [b.op("Range", [start, w, step])], to=TensorProto.FLOAT),
                          b.const(np.array(0.5, np.float32))])
        sy = b.op("Add", [b.op("Cast", [b.op("Range", [start, h, step])], to=TensorProto.FLOAT),
                          b.const(np.array(0.5, np.float32))])
        hw = b.op("Concat", [b.dim(y, 2), b.dim(y, 3)], axis=0)
        gx = b.op("Expand", [b.reshape(sx, [1, -1]), hw])
        gy = b.op("Expand", [b.reshape(sy, [-1, 1]), hw])
        grid = b.op("Concat", [b.op("Unsqueeze", [g, b.const(np.array([-1], np.int64))]) for g in (gx, gy)], axis=-1)
        anchors.append(b.reshape(grid, [-1, 2]))
        count = b.op("Mul", [b.dim(y, 2), b.dim(y, 3)])
        ones = b.op("ConstantOfShape", [b.op("Concat", [count, b.const(np.array([1], np.int64))], axis=0)],
                    value=helper.make_tensor("value", TensorProto.FLOAT, [1], [1.0]))
        strides.append(b.op("Mul", [ones, b.const(np.array(stride, np.float32))]))
    x = b.op("Concat", flat, axis=2)
    anchor_t = b.op("Transpose", [b.op("Concat", anchors, axis=0)], perm=[1, 0])  # [2, A]
    stride_t = b.op("Transpose", [b.op("Concat", strides, axis=0)], perm=[1, 0])  # [1, A]
    box, cls = b.op("Split", [x, b.const(np.array([4 * reg_max, classes], np.int64))], outputs=2, axis=1)
    # DFL: softmax over each side's 16 bins, expectation by a 1×1 conv with weights 0…15.
    a = b.dim(box, 2)
    d = b.op("Transpose", [b.reshape(box, [b.dim(box, 0), 4, reg_max, a])], perm=[0, 2, 1, 3])
    d = b.op("Softmax", [d], axis=1)
    d = b.conv(d, reg_max, 1, act=False, bias=False,
               weights=np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1))
    dist = b.reshape(d, [b.dim(box, 0), 4, a])
    # dist2bbox (xywh): lt, rb = chunk(2); centre and size, in pixels by the stride.
    lt = b.op("Slice", [dist, b.const(np.array([0], np.int64)), b.const(np.array([2], np.int64)),
                        b.const(np.array([1], np.int64))])
    rb = b.op("Slice", [dist, b.const(np.array([2], np.int64)), b.const(np.array([np.iinfo(np.int64).max], np.int64)),
                        b.const(np.array([1], np.int64))])
    anchor_b = b.op("Unsqueeze", [anchor_t, b.const(np.array([0], np.int64))])
    x1y1 = b.op("Sub", [anchor_b, lt])
    x2y2 = b.op("Add", [anchor_b, rb])
    centre = b.op("Div", [b.op("Add", [x1y1, x2y2]), b.const(np.array(2, np.float32))])
    size = b.op("Sub", [x2y2, x1y1])
    dbox = b.op("Mul", [b.op("Concat", [centre, size], axis=1), stride_t])
    out = b.op("Concat", [dbox, b.op("Sigmoid", [cls])], axis=1)
    b.nodes.append(helper.make_node("Identity", [out], ["output0"], name="output"))

    graph = helper.make_graph(
        b.nodes, "yolov8-structured",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, "anchors"])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--classes", type=int, default=80)
    args = p.parse_args()
    onnx.save(build(args.width, args.classes), args.out)


if __name__ == "__main__":
    main()
