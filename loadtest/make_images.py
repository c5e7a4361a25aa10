#!/usr/bin/env python3
"""Make the images the k6 load tests upload (loadtest/k6/images/).

The load tests need uploads that look like what the gateway meets in
production: photos of several sizes in every accepted format, and a small share
of uploads it must refuse with a 4xx (so the error paths are exercised under
load too). The photos are synthetic: a water-coloured background with a few
fish-like shapes, smooth enough that even the 12-megapixel JPEG stays small in
the repository, while the gateway still has to decode every pixel.

Valid images (the gateway answers 200):
    fish_640x480.jpg            baseline JPEG, quality 85 (the common case)
    fish_1024x768_progressive.jpg
    fish_480x640_exif6.jpg      a portrait phone photo: stored 640x480, EXIF orientation 6
    fish_640x480_grey.jpg       single-channel JPEG
    fish_4032x3024.jpg          12 MP: a full-resolution phone photo
    fish_800x600.png            RGB PNG
    fish_400x300_rgba.png       PNG with an alpha channel
    fish_640x480.webp           lossy WebP
    fish_256x256_lossless.webp  lossless WebP

Invalid uploads (the gateway answers a 4xx; loadtest/k6/lib/images.js says which):
    invalid_truncated.jpg       the first 40% of a JPEG: corrupt
    invalid_animation.gif       a GIF: not an accepted format
    invalid_notes.txt           plain text
    invalid_tiny_4x4.png        a valid PNG below IMAGE_MIN_SIDE (8 px)
    invalid_bomb_60000x60000.jpg  a tiny JPEG whose header declares 3.6 gigapixels
    invalid_empty.jpg           zero bytes

Output is deterministic: every image has its own numpy RNG seeded from its
name, so a rerun with the pinned Pillow and numpy
(preprocess/testdata/gen/requirements.txt, installed by `make venv`) writes
byte-identical files. The script owns loadtest/k6/images/ and rewrites it whole.

Usage (from the repository root):  .venv/bin/python loadtest/make_images.py
"""

from __future__ import annotations

import io
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, features

PILLOW_VERSION = "13.0.0"
NUMPY_VERSION = "2.4.6"
SEED = 6_2026
OUT = Path(__file__).resolve().parent / "k6" / "images"
# What the repository may hold for these images in all: the load test's inputs
# must not bloat every clone.
BUDGET_BYTES = 1_000_000


def rng_for(name: str) -> np.random.Generator:
    """A numpy RNG seeded from the image's name: each image is independent."""
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def scene(name: str, width: int, height: int, noise: float = 1.5) -> np.ndarray:
    """A synthetic underwater photo: H x W x 3 uint8.

    A vertical blue-green gradient with slow ripples, light rays from the top
    and a few elongated bodies with tails, stripes and an eye, drawn with
    antialiased edges; a little noise stands in for the sensor.
    """
    rng = rng_for(name)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    aspect = width / height

    depth = v[..., None]
    top = np.array([70, 150, 190], np.float32)
    bottom = np.array([10, 40, 70], np.float32)
    img = top * (1 - depth) + bottom * depth
    phase = rng.uniform(0, 2 * np.pi, 3)
    ripple = (
        np.sin(2 * np.pi * (3 * u + 1.5 * v) + phase[0])
        + np.sin(2 * np.pi * (5 * v - 2 * u) + phase[1])
        + 0.5 * np.sin(2 * np.pi * (9 * u * aspect + 4 * v) + phase[2])
    )
    img += ripple[..., None] * np.array([4, 7, 8], np.float32)
    for _ in range(3):
        x0 = rng.uniform(0, 1)
        slope = rng.uniform(-0.4, 0.4)
        ray = np.exp(-(((u - x0 - slope * v) * aspect / 0.05) ** 2)) * (1 - v)
        img += ray[..., None] * 35

    edge = 1.5 / min(width, height)  # antialiasing width, in normalised units
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.25, 0.75)
        length = rng.uniform(0.18, 0.35)
        girth = length * rng.uniform(0.28, 0.42)
        angle = rng.uniform(-0.5, 0.5)
        facing = rng.choice([-1.0, 1.0])
        colour = rng.uniform([120, 60, 20], [250, 200, 120]).astype(np.float32)
        # Body coordinates: a along the fish, b across it, in height units.
        dx, dy = (u - cx) * aspect, v - cy
        a = (dx * np.cos(angle) + dy * np.sin(angle)) * facing
        b = -dx * np.sin(angle) + dy * np.cos(angle)
        body = 1 - np.sqrt((a / (length / 2)) ** 2 + (b / (girth / 2)) ** 2)
        tail_x = -a - length / 2  # how far behind the body's rear
        tail = np.minimum(girth * 0.45 * (tail_x / (length * 0.25)) - np.abs(b), length * 0.25 - tail_x)
        tail = np.where(tail_x > -length * 0.05, tail, -1)
        mask = np.clip(np.maximum(body * length / 2, tail) / edge + 0.5, 0, 1)
        stripes = 0.82 + 0.18 * np.sin(a / length * 2 * np.pi * rng.uniform(3, 7))
        shade = 1 - 0.35 * np.clip(b / (girth / 2), -1, 1)  # lit from above
        fish = colour * (stripes * shade)[..., None]
        eye_d = np.sqrt((a - length * 0.32) ** 2 + (b + girth * 0.08) ** 2)
        eye = np.clip((girth * 0.07 - eye_d) / edge + 0.5, 0, 1)
        fish = fish * (1 - eye[..., None]) + np.float32(15) * eye[..., None]
        img = img * (1 - mask[..., None]) + fish * mask[..., None]

    if noise > 0:
        img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def exif_orientation(value: int) -> bytes:
    """An EXIF block holding only the orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def jpeg_with_dimensions(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame header (SOF0/SOF2) of a JPEG to declare another size."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("not at a marker")
        marker = data[i + 1]
        seglen = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            # SOF: length(2) precision(1) height(2) width(2)
            return data[: i + 5] + struct.pack(">HH", height, width) + data[i + 9 :]
        i += 2 + seglen
    raise ValueError("no SOF marker")


def gif_animation(name: str) -> bytes:
    frames = [Image.fromarray(scene(f"{name}-{k}", 64, 48, noise=0)).convert("P", palette=Image.Palette.ADAPTIVE) for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    return buf.getvalue()


def images() -> dict[str, bytes]:
    out: dict[str, bytes] = {}

    def rgb(name: str, w: int, h: int, noise: float = 1.5) -> Image.Image:
        return Image.fromarray(scene(name, w, h, noise), "RGB")

    out["fish_640x480.jpg"] = encode(rgb("fish_640x480", 640, 480), "JPEG", quality=85)
    out["fish_1024x768_progressive.jpg"] = encode(
        rgb("fish_1024x768", 1024, 768), "JPEG", quality=85, progressive=True
    )
    # Stored landscape, shown portrait: the gateway applies the orientation.
    out["fish_480x640_exif6.jpg"] = encode(
        rgb("fish_480x640", 640, 480), "JPEG", quality=85, exif=exif_orientation(6)
    )
    out["fish_640x480_grey.jpg"] = encode(rgb("fish_640x480_grey", 640, 480).convert("L"), "JPEG", quality=85)
    # Smooth (no sensor noise) and at quality 60 so 12 MP fits the budget; the
    # decode still costs what a 12 MP phone photo costs.
    out["fish_4032x3024.jpg"] = encode(rgb("fish_4032x3024", 4032, 3024, noise=0), "JPEG", quality=60)
    out["fish_800x600.png"] = encode(rgb("fish_800x600", 800, 600, noise=0), "PNG", optimize=True)
    rgba = rgb("fish_400x300_rgba", 400, 300, noise=0).convert("RGBA")
    alpha = np.full((300, 400), 255, np.uint8)
    alpha[:, :40] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :]
    rgba.putalpha(Image.fromarray(alpha, "L"))
    out["fish_400x300_rgba.png"] = encode(rgba, "PNG", optimize=True)
    out["fish_640x480.webp"] = encode(rgb("fish_640x480_webp", 640, 480), "WEBP", quality=80, method=4)
    out["fish_256x256_lossless.webp"] = encode(
        rgb("fish_256x256", 256, 256, noise=0), "WEBP", lossless=True, method=4
    )

    whole = out["fish_640x480.jpg"]
    out["invalid_truncated.jpg"] = whole[: len(whole) * 2 // 5]
    out["invalid_animation.gif"] = gif_animation("invalid_animation")
    out["invalid_notes.txt"] = b"Not an image: the load test sends this text file to check that the gateway refuses it.\n"
    out["invalid_tiny_4x4.png"] = encode(rgb("invalid_tiny", 4, 4, noise=0), "PNG")
    small = encode(rgb("invalid_bomb", 16, 16, noise=0), "JPEG", quality=75)
    out["invalid_bomb_60000x60000.jpg"] = jpeg_with_dimensions(small, 60000, 60000)
    out["invalid_empty.jpg"] = b""
    return out


def main() -> int:
    import PIL

    if PIL.__version__ != PILLOW_VERSION or np.__version__ != NUMPY_VERSION:
        print(
            f"make_images: needs Pillow {PILLOW_VERSION} and numpy {NUMPY_VERSION} for byte-identical output "
            f"(have {PIL.__version__}, {np.__version__}); run `make venv` and use .venv/bin/python",
            file=sys.stderr,
        )
        return 1
    if not features.check("webp"):
        print("make_images: this Pillow has no WebP support", file=sys.stderr)
        return 1
    files = images()
    total = sum(len(b) for b in files.values())
    if total > BUDGET_BYTES:
        print(f"make_images: {total} bytes in all, over the {BUDGET_BYTES}-byte budget", file=sys.stderr)
        return 1
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for name, data in sorted(files.items()):
        (OUT / name).write_bytes(data)
        print(f"{len(data):>8}  {name}")
    print(f"{total:>8}  in all ({OUT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
