#!/usr/bin/env python3
"""Build the demo fish classifier: triton-models/fish_classifier/1/model.onnx.

THE WEIGHTS ARE UNTRAINED. They are drawn from a seeded random number generator,
so the model has the right signature and runs everywhere the real one would, but
its predictions are meaningless. It exists so that the gateway, Triton and the
tests have a model to serve; replace it before classifying real fish.

Run it with `make model` (or `make generate`); it needs only the pinned packages
in triton-models/requirements.txt. It is deterministic: every run writes the same
bytes (check with sha256sum), and `make check-generated` fails when the committed
files differ from a fresh build.

Outputs
-------
fish_classifier/1/model.onnx
    ONNX, opset 17, IR version 8, no external data.
    input  "input"  FP32 [batch, 3, 224, 224]  (NCHW, ImageNet-normalised RGB)
    output "logits" FP32 [batch, 9]            (class i = line i+1 of labels.txt)
    The batch dimension is symbolic ("batch"); Triton's max_batch_size is 32.

    Architecture (6,329 parameters):
        Conv 3x3 stride 2 pad 1,  3 ->  8 channels, Relu   224 -> 112
        MaxPool 2x2 stride 2                                 112 ->  56
        Conv 3x3 stride 1 pad 1,  8 -> 16 channels, Relu     56
        MaxPool 2x2 stride 2                                  56 ->  28
        Conv 3x3 stride 1 pad 1, 16 -> 32 channels, Relu     28
        MaxPool 2x2 stride 2                                  28 ->  14
        GlobalAveragePool, Flatten                            [batch, 32]
        Gemm 32 -> 9 (transB=1)                               [batch, 9] logits
    Convolution weights are He-initialised (normal, std sqrt(2 / fan_in)) from
    numpy's PCG64 seeded with SEED; biases are small; the Gemm weights are scaled
    so the logits of ImageNet-normalised inputs are of order 1 (not saturated).

fish_classifier/reference.json
    The logits of the model for a fixed input, computed without ONNX Runtime:
    a hand-written numpy forward pass in float64, rounded to float32 (so the
    file is the same on every CPU), which onnx.reference.ReferenceEvaluator
    (ONNX's own interpreter, float32) must match within 1e-5 or the build
    fails. Backends must reproduce them within 1e-5. The input is not stored; it is regenerated from
    this recipe, which Go reproduces bit for bit:

        shape [2, 3, 224, 224], row-major (C order), flat index i = 0 .. 301055
        u = (i * 2654435761) mod 2^32            (unsigned 32-bit multiply)
        x = float32(u / 2^30 - 2)                (computed in float64, then
                                                  rounded to nearest float32)

    so x is in [-2, 2). In Go:

        u := uint32(i) * 2654435761
        x := float32(float64(u)/(1<<30) - 2)

    The file records the SHA-256 of the input's little-endian float32 bytes so a
    port can check its regeneration before comparing logits.

Putting a real model in place
-----------------------------
Keep the tensor names, shapes and type, or change config.pbtxt to match:
input "input" FP32 NCHW [N, 3, 224, 224] and output "logits" FP32 [N, 9] in the
order of labels.txt. Then delete this demo's reference.json (it describes the
demo's weights only) and drop the `model` step from the Makefile's `generate`.

* PyTorch:
      torch.onnx.export(model.eval(), torch.zeros(1, 3, 224, 224), "model.onnx",
                        input_names=["input"], output_names=["logits"],
                        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                        opset_version=17)
* Keras / TensorFlow (tf2onnx; Keras models are usually NHWC):
      spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="input"),)
      tf2onnx.convert.from_keras(model, input_signature=spec, opset=17,
                                 output_path="model.onnx")
  then rename the output to "logits" (or set the output name in config.pbtxt),
  and in config.pbtxt set format FORMAT_NHWC and dims [224, 224, 3]. A final
  softmax layer makes the output probabilities: set output_kind "probabilities".
* TensorRT (Triton on GPU only; the embedded CPU backend cannot load it):
      trtexec --onnx=model.onnx --saveEngine=model.plan \\
              --minShapes=input:1x3x224x224 --optShapes=input:8x3x224x224 \\
              --maxShapes=input:32x3x224x224
  put it at fish_classifier/1/model.plan and in config.pbtxt set platform
  "tensorrt_plan" and remove the backend line. Build the plan on the GPU model
  and TensorRT version that Triton runs.

Whatever the route, set the preprocessing the model was trained with in the
`parameters` of config.pbtxt (preprocess_resize, preprocess_shorter_side,
preprocess_mean, preprocess_std, preprocess_scale, preprocess_channel_order,
output_kind; see gateway/params.go).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

SEED = 20240604
OPSET = 17
IR_VERSION = 8
NUM_CLASSES = 9
CHANNELS = (8, 16, 32)
INPUT_SHAPE = (2, 3, 224, 224)
HASH_MULTIPLIER = 2654435761
# Multiplies the He-initialised Gemm weights: the pooled ReLU features are all
# positive with a large common mean, so plain He weights give logits of order 10;
# 0.5 brings them to order 1 (std across classes about 1 for ImageNet-normalised
# photos, about 2.5 for the noisier reference input), far from saturating softmax.
HEAD_GAIN = 0.5
# How far a backend's logits may be from the reference.
TOLERANCE = 1e-5

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "fish_classifier")
MODEL_PATH = os.path.join(MODEL_DIR, "1", "model.onnx")
REFERENCE_PATH = os.path.join(MODEL_DIR, "reference.json")


def make_weights() -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(SEED))
    w: dict[str, np.ndarray] = {}
    cin = 3
    for k, cout in enumerate(CHANNELS, start=1):
        fan_in = cin * 3 * 3
        w[f"conv{k}.weight"] = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        w[f"conv{k}.bias"] = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        cin = cout
    w["fc.weight"] = (rng.standard_normal((NUM_CLASSES, cin)) * np.sqrt(2.0 / cin) * HEAD_GAIN).astype(np.float32)
    w["fc.bias"] = (rng.standard_normal(NUM_CLASSES) * 0.1).astype(np.float32)
    return w


def make_model(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes = []
    x = "input"
    for k in range(1, len(CHANNELS) + 1):
        stride = 2 if k == 1 else 1
        nodes.append(helper.make_node(
            "Conv", [x, f"conv{k}.weight", f"conv{k}.bias"], [f"conv{k}"], name=f"conv{k}",
            kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{k}"], [f"relu{k}"], name=f"relu{k}"))
        nodes.append(helper.make_node(
            "MaxPool", [f"relu{k}"], [f"pool{k}"], name=f"pool{k}",
            kernel_shape=[2, 2], strides=[2, 2]))
        x = f"pool{k}"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"], name="flatten", axis=1))
    nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))

    graph = helper.make_graph(
        nodes,
        "fish_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", NUM_CLASSES])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in w.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fish-classifier/triton-models/build_model.py",
        producer_version="1",
        doc_string="Demo fish classifier with UNTRAINED random weights: predictions are meaningless.",
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    onnx.checker.check_model(model, full_check=True)
    return model


def reference_input() -> np.ndarray:
    n = int(np.prod(INPUT_SHAPE))
    u = (np.arange(n, dtype=np.uint64) * np.uint64(HASH_MULTIPLIER)) % np.uint64(1 << 32)
    x = (u.astype(np.float64) / float(1 << 30) - 2.0).astype(np.float32)
    return x.reshape(INPUT_SHAPE)


def numpy_forward(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """An independent forward pass in float64, to cross-check the evaluator."""

    def conv(x, wt, b, stride):
        n, c, h, wd = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        ho, wo = (h + 2 - 3) // stride + 1, (wd + 2 - 3) // stride + 1
        out = np.zeros((n, wt.shape[0], ho, wo))
        for dy in range(3):
            for dx in range(3):
                patch = xp[:, :, dy:dy + stride * ho:stride, dx:dx + stride * wo:stride]
                out += np.einsum("nchw,oc->nohw", patch, wt[:, :, dy, dx])
        return out + b[None, :, None, None]

    def pool(x):
        n, c, h, wd = x.shape
        return x[:, :, :h // 2 * 2, :wd // 2 * 2].reshape(n, c, h // 2, 2, wd // 2, 2).max(axis=(3, 5))

    y = x.astype(np.float64)
    for k in range(1, len(CHANNELS) + 1):
        y = pool(np.maximum(conv(y, w[f"conv{k}.weight"].astype(np.float64), w[f"conv{k}.bias"].astype(np.float64), 2 if k == 1 else 1), 0))
    feats = y.mean(axis=(2, 3))
    return feats @ w["fc.weight"].astype(np.float64).T + w["fc.bias"].astype(np.float64)


# A real photo-like fixture, preprocessed the way config.pbtxt's parameters say
# (torchvision Resize(256) + CenterCrop(224) on a PIL image, bilinear, ToTensor,
# Normalize with the ImageNet mean/std), for the gateway's end-to-end check that
# its Go preprocessing plus this model give Pillow's answer.
PILLOW_IMAGE = os.path.join("preprocess", "testdata", "bench", "photo_640x480.jpg")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def pillow_input(path: str) -> np.ndarray:
    """The [1,3,224,224] float32 tensor Pillow + torchvision's recipe makes of path."""
    from PIL import Image, ImageOps  # pinned in requirements.txt

    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = 256, 256 * h // w
    else:
        nw, nh = 256 * w // h, 256
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = round((nw - 224) / 2.0), round((nh - 224) / 2.0)
    img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, dtype=np.float32) / np.float32(255)
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def f32(v: np.float32) -> str:
    """The shortest decimal that reads back as exactly this float32."""
    return np.format_float_positional(np.float32(v), unique=True, trim="-") if abs(v) >= 1e-4 else np.format_float_scientific(np.float32(v), unique=True, trim="-")


def main() -> int:
    w = make_weights()
    model = make_model(w)
    data = model.SerializeToString()
    os.makedirs(os.path.dirname(MODEL_PATH), exist_ok=True)
    with open(MODEL_PATH, "wb") as f:
        f.write(data)

    # The recorded logits come from the float64 numpy pass rounded to float32:
    # unlike a float32 evaluation, whose last bits depend on the CPU's BLAS
    # kernels, they are the same on every machine, so reference.json is
    # reproducible byte for byte. onnx.reference.ReferenceEvaluator (ONNX's own
    # interpreter, independent of ONNX Runtime) must agree within TOLERANCE.
    x = reference_input()
    logits = numpy_forward(w, x).astype(np.float32)
    (evaluated,) = ReferenceEvaluator(model).run(None, {"input": x})
    diff = float(np.max(np.abs(np.asarray(evaluated, dtype=np.float64) - logits)))
    if diff > TOLERANCE:
        print(f"build_model.py: onnx.reference and numpy disagree by {diff:g}", file=sys.stderr)
        return 1
    # A batch of one must give the same logits as its row of the batch of two.
    (single,) = ReferenceEvaluator(model).run(None, {"input": x[1:2]})
    if float(np.max(np.abs(single - logits[1:2]))) > TOLERANCE:
        print("build_model.py: batch of one disagrees with batch of two", file=sys.stderr)
        return 1
    print(f"onnx.reference.ReferenceEvaluator agrees with the float64 reference within {diff:.3g}")

    z = logits.astype(np.float64)
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    reference = {
        "comment": "Logits of fish_classifier/1/model.onnx (UNTRAINED demo weights) for a fixed input: "
                   "a float64 numpy forward pass rounded to float32, checked against "
                   "onnx.reference.ReferenceEvaluator within the tolerance; written by "
                   "triton-models/build_model.py. "
                   "logits are the shortest decimals that parse to the exact float32 values; "
                   "logits_bits are their IEEE-754 bits.",
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "input": {
            "name": "input",
            "datatype": "FP32",
            "shape": list(INPUT_SHAPE),
            "recipe": "flat row-major index i; u = (i * 2654435761) mod 2^32; "
                      "x = float32(float64(u) / 2^30 - 2), rounded to nearest",
            "multiplier": HASH_MULTIPLIER,
            "first_values": [f32(v) for v in x.reshape(-1)[:4]],
            "sha256_float32_le": hashlib.sha256(x.astype("<f4").tobytes()).hexdigest(),
        },
        "output": {"name": "logits", "datatype": "FP32", "shape": list(logits.shape)},
        "logits": [[f32(v) for v in row] for row in logits],
        "logits_bits": [[f"0x{int(b):08x}" for b in row] for row in logits.view(np.uint32)],
        "softmax": [[round(float(p), 9) for p in row] for row in probs],
        "top1": [int(i) for i in logits.argmax(axis=1)],
        "tolerance": TOLERANCE,
    }
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    photo = pillow_input(os.path.join(repo_root, PILLOW_IMAGE))
    pz = numpy_forward(w, photo)[0]
    pp = np.exp(pz - pz.max())
    pp /= pp.sum()
    reference["pillow_image"] = {
        "comment": "The model's answer for this image preprocessed by Pillow as config.pbtxt says "
                   "(Resize(256) bilinear, CenterCrop(224), /255, ImageNet mean/std, NCHW); "
                   "through the gateway's HTTP API the same image must give the same top-1 "
                   "and probabilities within probability_tolerance.",
        "path": PILLOW_IMAGE,
        "top1": int(pp.argmax()),
        "probabilities": [round(float(v), 9) for v in pp],
        "probability_tolerance": 1e-3,
    }
    # Numbers as JSON numbers: the decimal strings above are exact float32 reads.
    reference["logits"] = [[float(s) for s in row] for row in reference["logits"]]
    reference["input"]["first_values"] = [float(s) for s in reference["input"]["first_values"]]
    text = json.dumps(reference, indent=2)
    # Keep each list of numbers or strings on one line.
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    with open(REFERENCE_PATH, "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")

    print(f"wrote {os.path.relpath(MODEL_PATH)} ({len(data)} bytes, sha256 {reference['model_sha256']})")
    print(f"wrote {os.path.relpath(REFERENCE_PATH)}: top-1 {reference['top1']}, logits {reference['logits']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
