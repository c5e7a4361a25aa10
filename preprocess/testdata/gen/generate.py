#!/usr/bin/env python3
"""Generate the Pillow reference fixtures for the Go package `preprocess`.

The Go package must turn image bytes into exactly the pixels Pillow produces, so
this script makes a set of input files and, for each test case, records what
Pillow (pinned in requirements.txt) computes from them:

    preprocess/testdata/parity/manifest.json     the cases (see the README)
    preprocess/testdata/parity/inputs/*          PNG, JPEG and WebP inputs
    preprocess/testdata/parity/expected/*.rgb    raw uint8 H x W x 3 RGB, row-major
    preprocess/testdata/bench/photo_*.jpg        benchmark photos (640x480 .. 12 MP)

Why a hand-written PNG encoder: Pillow cannot write most PNG colour types and bit
depths (2/4-bit grey, 16-bit grey+alpha, 16-bit RGBA, interlacing, tRNS for every
type, eXIf...), yet it reads them all, so the script encodes them itself and lets
Pillow read them for the reference. JPEG and WebP inputs are written by Pillow.

The image content is synthetic but photo-like (smooth multi-scale colour fields,
opaque objects with sharp antialiased edges, fine texture and sensor-like noise)
so that any resampling or colour-conversion error shows in the expected pixels.

Output is deterministic: every input has its own numpy RNG seeded from its name,
and a rerun with the same pinned Pillow/numpy writes byte-identical files. The
script owns testdata/parity/ and testdata/bench/ and deletes them before writing.

Usage (from the repository root):  .venv/bin/python preprocess/testdata/gen/generate.py
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import shutil
import struct
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, features

PILLOW_VERSION = "13.0.0"
NUMPY_VERSION = "2.4.6"
SEED = 20240607
TESTDATA = Path(__file__).resolve().parent.parent
DEFAULT_FILL = (114, 114, 114)

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def rng_for(name: str) -> np.random.Generator:
    """A numpy RNG seeded from a name, so each input is independent of the others."""
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


# ---------------------------------------------------------------------------
# Photo-like synthetic content
# ---------------------------------------------------------------------------


def _catmull_rom(f: np.ndarray) -> tuple[np.ndarray, ...]:
    f2 = f * f
    f3 = f2 * f
    return (
        -0.5 * f3 + f2 - 0.5 * f,
        1.5 * f3 - 2.5 * f2 + 1.0,
        -1.5 * f3 + 2.0 * f2 + 0.5 * f,
        0.5 * f3 - 0.5 * f2,
    )


def _upsample_axis(grid: np.ndarray, n: int, step: float, offset: float, axis: int) -> np.ndarray:
    """Catmull-Rom interpolation of `grid` along `axis` to n samples, step px apart."""
    t = np.arange(n, dtype=np.float64) / step + offset + 1.0
    i0 = np.floor(t).astype(np.intp)
    weights = _catmull_rom((t - i0).astype(np.float32))
    shape = [1] * grid.ndim
    shape[axis] = n
    out = None
    for k, wk in enumerate(weights):
        term = np.take(grid, i0 - 1 + k, axis=axis) * wk.reshape(shape)
        out = term if out is None else out + term
    return out


def value_noise(rng: np.random.Generator, h: int, w: int, scale: float, channels: int) -> np.ndarray:
    """Smooth noise (unit variance at the grid points) with features `scale` px apart."""
    grid = rng.standard_normal((int(np.ceil(h / scale)) + 4, int(np.ceil(w / scale)) + 4, channels), dtype=np.float32)
    oy, ox = rng.random(2)
    return _upsample_axis(_upsample_axis(grid, h, scale, oy, 0), w, scale, ox, 1)


def octaves(rng, h, w, channels, smallest, largest, ref, beta) -> np.ndarray:
    """Sum of value-noise octaves from `largest` down to `smallest` px; an octave of
    scale s px has amplitude min(1, s/ref)**beta (fixed in pixels, not in image size,
    so a 12 MP picture has as much fine detail per pixel as a small one)."""
    out = np.zeros((h, w, channels), np.float32)
    s = largest
    while s >= smallest:
        out += np.float32(min(1.0, s / ref) ** beta) * value_noise(rng, h, w, s, channels)
        s /= 2.0
    return out


def photo(rng: np.random.Generator, h: int, w: int, *, noise: float = 2.5, texture: float = 1.2) -> np.ndarray:
    """A photo-like float32 RGB picture, H x W x 3, roughly in [0, 1] (not clipped).

    Background: broad lighting, vignette and a 1/f-like multi-scale field. Then
    opaque ellipses and rotated rectangles painted back to front, each with its own
    colour, shading and fine texture (sometimes striped, like fabric), with 1-px
    antialiased edges. Finally a sigmoid tone curve, a luma/chroma to RGB matrix and
    signal-dependent sensor noise, partly correlated between channels.
    """
    big = max(h, w)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    lum = 0.10 * octaves(rng, h, w, 1, min(24.0, big / 3), big / 1.5, big / 1.5, 0.0)[..., 0]
    lum += 0.5 - 0.25 * (yy / h - 0.5) * np.float32(rng.uniform(-1, 1))
    lum -= 0.3 * (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / big**2)
    chroma = 0.035 * octaves(rng, h, w, 2, min(16.0, big / 3), big / 1.5, big, 0.0)
    chroma += rng.normal(0, 0.04, 2).astype(np.float32)

    n = int(np.clip(12 + 20 * (h * w / 1e6) ** 0.5, 6, 60))
    for i in range(n):
        ry = rng.uniform(0.04, 0.3) * big * (1 - 0.6 * i / n)
        rx = ry * rng.uniform(0.3, 3.0)
        py, px = rng.uniform(0, h), rng.uniform(0, w)
        theta = rng.uniform(0, np.pi)
        is_ellipse = rng.random() < 0.5
        margin = 1.1 * max(rx, ry) + 2
        y0, y1 = int(max(0, py - margin)), int(min(h, py + margin))
        x0, x1 = int(max(0, px - margin)), int(min(w, px + margin))
        if y1 - y0 < 2 or x1 - x0 < 2:
            continue
        c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
        u = c * (xx[:, x0:x1] - px) + s * (yy[y0:y1] - py)
        v = -s * (xx[:, x0:x1] - px) + c * (yy[y0:y1] - py)
        if is_ellipse:
            dist = (np.sqrt((u / rx) ** 2 + (v / ry) ** 2) - 1.0) * min(rx, ry)
        else:
            dist = np.maximum(np.abs(u) - rx, np.abs(v) - ry)
        cov = np.clip(0.5 - dist, 0.0, 1.0)
        hh, ww = y1 - y0, x1 - x0
        tex = 0.08 * texture * octaves(rng, hh, ww, 1, 1.5, max(hh, ww), 64.0, 0.35)[..., 0]
        if rng.random() < 0.35:
            tex += 0.06 * texture * np.sin(u / rng.uniform(1.2, 8.0) + 2.5 * np.sin(v / rng.uniform(8, 40)))
        shade = (u / max(rx, 1.0)) * np.float32(rng.uniform(-0.08, 0.08))
        obj_lum = np.float32(rng.uniform(0.15, 0.85)) + tex + shade
        obj_chroma = rng.normal(0, 0.05, 2).astype(np.float32) * (2.5 if rng.random() < 0.2 else 1.0)
        sl = (slice(y0, y1), slice(x0, x1))
        lum[sl] = lum[sl] * (1 - cov) + cov * obj_lum
        chroma[sl] = chroma[sl] * (1 - cov[..., None]) + cov[..., None] * (obj_chroma + 0.3 * chroma[sl])

    lum = 1.0 / (1.0 + np.exp(-3.5 * (lum - 0.5)))
    lum = (lum - 0.03) / 0.94
    rgb = np.stack(
        [
            lum + 1.40 * chroma[..., 1],
            lum - 0.34 * chroma[..., 0] - 0.71 * chroma[..., 1],
            lum + 1.77 * chroma[..., 0],
        ],
        -1,
    ).astype(np.float32)
    sigma = (noise / 255.0) * (0.5 + np.sqrt(np.clip(rgb, 0, 1)))
    rgb += sigma * (
        0.8 * rng.standard_normal((h, w, 1), dtype=np.float32) + 0.6 * rng.standard_normal((h, w, 3), dtype=np.float32)
    )
    return rgb


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def to_u16_full_range(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Stretch to the whole 0..65535 range (about 0.5 % clipped at each end, so both
    extremes occur) and add noise of a few dozen codes, so the low byte is random."""
    lo, hi = np.percentile(x, [0.5, 99.5])
    y = (x - lo) / (hi - lo) * 65535.0 + rng.normal(0.0, 40.0, x.shape)
    return np.clip(np.rint(y), 0, 65535).astype(np.uint16)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def alpha_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Alpha in [0, 1]: a smooth field plus a ramp, with fully transparent and fully
    opaque regions and everything in between."""
    a = 0.6 * octaves(rng, h, w, 1, 2.0, max(h, w) / 1.5, max(h, w), 0.0)[..., 0]
    a += np.linspace(-0.9, 0.9, w, dtype=np.float32)[None, :]
    return np.clip(a + 0.5, 0.0, 1.0)


def dither_levels(rng: np.random.Generator, x: np.ndarray, levels: int) -> np.ndarray:
    """Quantise x in [0, 1] to 0..levels-1 with random dither (keeps fine texture)."""
    return np.clip(np.floor(np.clip(x, 0, 1) * (levels - 1) + rng.random(x.shape)), 0, levels - 1).astype(np.uint8)


def palettize(rng: np.random.Generator, rgb: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick n palette colours from the picture and map each pixel (plus a little
    dither noise) to the nearest one. Returns (indices H x W uint8, palette n x 3)."""
    h, w, _ = rgb.shape
    flat = to_u8(rgb).reshape(-1, 3).astype(np.float32)
    palette = flat[rng.choice(flat.shape[0], size=n, replace=flat.shape[0] < n)]
    if n == 2:  # a dark and a light colour, so 1-bit images keep some structure
        order = np.argsort(palette.sum(1))
        palette = np.stack([palette[order[0]] * 0.5, 255 - (255 - palette[order[-1]]) * 0.5])
    palette = np.rint(palette).astype(np.uint8)
    noisy = flat + rng.normal(0, 12.0 if n <= 16 else 4.0, flat.shape)
    best = np.zeros(flat.shape[0], np.intp)
    best_d = np.full(flat.shape[0], np.inf)
    for i, p in enumerate(palette.astype(np.float32)):
        d = ((noisy - p) ** 2).sum(1)
        better = d < best_d
        best[better], best_d[better] = i, d[better]
    return best.reshape(h, w).astype(np.uint8), palette


# ---------------------------------------------------------------------------
# A small PNG encoder (every colour type and bit depth, tRNS, eXIf, Adam7)
# ---------------------------------------------------------------------------

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _serialize_rows(pixels: np.ndarray, color_type: int, depth: int) -> np.ndarray:
    """Unfiltered scanlines (rows x bytes) of a sub-image, samples big-endian and
    sub-byte samples packed most significant bits first."""
    rows, cols = pixels.shape[:2]
    if depth == 16:
        return pixels.astype(">u2").view(np.uint8).reshape(rows, -1)
    if depth == 8:
        return pixels.astype(np.uint8).reshape(rows, -1)
    per_byte = 8 // depth
    nbytes = -(-cols // per_byte)
    padded = np.zeros((rows, nbytes * per_byte), np.uint16)
    padded[:, :cols] = pixels
    padded = padded.reshape(rows, nbytes, per_byte)
    packed = np.zeros((rows, nbytes), np.uint16)
    for k in range(per_byte):
        packed |= padded[:, :, k] << (8 - depth * (k + 1))
    return packed.astype(np.uint8)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_rows(rows: np.ndarray, bpp: int, varied: bool) -> bytes:
    """Prefix each scanline with its filter type and filter it. With varied=True the
    rows cycle through Sub, Up, Average, Paeth, None; otherwise all use None."""
    out = bytearray()
    prior = np.zeros(rows.shape[1], np.int32)
    for y, raw in enumerate(rows.astype(np.int32)):
        ftype = (y + 1) % 5 if varied else 0
        left = np.concatenate([np.zeros(bpp, np.int32), raw[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        if ftype == 0:
            filtered = raw
        elif ftype == 1:
            filtered = raw - left
        elif ftype == 2:
            filtered = raw - prior
        elif ftype == 3:
            # Average uses the reconstructed left byte, which equals raw's left byte.
            filtered = raw - (left + prior) // 2
        else:
            filtered = raw - _paeth(left, prior, upleft)
        out.append(ftype)
        out += (filtered & 0xFF).astype(np.uint8).tobytes()
        prior = raw
    return bytes(out)


def encode_png(
    pixels: np.ndarray,
    *,
    color_type: int,
    depth: int,
    palette: np.ndarray | None = None,
    trns: bytes | None = None,
    exif: bytes | None = None,
    interlace: bool = False,
    varied_filters: bool = False,
) -> bytes:
    """Encode a PNG. pixels: H x W (grey, palette indices) or H x W x C samples.
    exif is a TIFF-structured EXIF block (no "Exif\\0\\0" prefix) for an eXIf chunk."""
    h, w = pixels.shape[:2]
    bpp = max(1, CHANNELS[color_type] * depth // 8)
    if interlace:
        data = b"".join(
            _filter_rows(_serialize_rows(pixels[y0::dy, x0::dx], color_type, depth), bpp, varied_filters)
            for x0, y0, dx, dy in ADAM7
            if x0 < w and y0 < h
        )
    else:
        data = _filter_rows(_serialize_rows(pixels, color_type, depth), bpp, varied_filters)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace)))]
    if exif is not None:
        out.append(_chunk(b"eXIf", exif))
    if palette is not None:
        out.append(_chunk(b"PLTE", palette.astype(np.uint8).tobytes()))
    if trns is not None:
        out.append(_chunk(b"tRNS", trns))
    compressed = zlib.compress(data, 9)
    for i in range(0, len(compressed), 16384):  # several IDAT chunks for the larger files
        out.append(_chunk(b"IDAT", compressed[i : i + 16384]))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def tiff_exif_orientation(orientation: int, big_endian: bool = True) -> bytes:
    """A minimal TIFF-structured EXIF block holding only Orientation (tag 0x0112,
    SHORT). Big-endian ("MM", as iPhones write it) unless told otherwise."""
    e = ">" if big_endian else "<"
    header = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    entry = struct.pack(e + "HHIH2x", 0x0112, 3, 1, orientation)
    return header + struct.pack(e + "H", 1) + entry + struct.pack(e + "I", 0)


# ---------------------------------------------------------------------------
# The Pillow reference
# ---------------------------------------------------------------------------


def pillow_reference(
    path: Path,
    width: int,
    height: int,
    resize: str,
    filter_name: str,
    shorter_side: int = 0,
    fill: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """The expected pixels (H x W x 3 uint8) for one case, exactly as Pillow gives them.

        img = Image.open(path); img = ImageOps.exif_transpose(img); img = img.convert("RGB")

    then, with F the Pillow filter and W x H the target size:

    stretch:       img.resize((W, H), F)
    shorter_crop:  torchvision Resize(S) + CenterCrop((H, W)) on a PIL image:
                   the shorter side becomes S, the longer floor(S * long / short);
                   resize; cut W x H at top = round((nh-H)/2), left = round((nw-W)/2)
                   (Python's round, half to even, as torchvision's center_crop).
    letterbox:     fit inside W x H keeping the aspect ratio, the fitted side's
                   partner rounded half up (at least 1); paste the resized picture
                   at ((W-nw)//2, (H-nh)//2) on a W x H canvas of colour `fill`.
    """
    f = FILTERS[filter_name]
    with Image.open(path) as src, warnings.catch_warnings():
        # Pillow warns that palette images with tRNS "should be converted to RGBA";
        # convert("RGB") simply drops the transparency, which is what we record.
        warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
        img = ImageOps.exif_transpose(src).convert("RGB")
    if resize == "stretch":
        out = img.resize((width, height), f)
    elif resize == "shorter_crop":
        s = shorter_side
        w, h = img.size
        if w <= h:
            nw, nh = s, s * h // w
        else:
            nh, nw = s, s * w // h
        r = img.resize((nw, nh), f)
        top = round((nh - height) / 2.0)
        left = round((nw - width) / 2.0)
        out = r.crop((left, top, left + width, top + height))
    elif resize == "letterbox":
        w, h = img.size
        if width * h <= height * w:
            nw, nh = width, max(1, (2 * h * width + w) // (2 * w))
        else:
            nh, nw = height, max(1, (2 * w * height + h) // (2 * h))
        out = Image.new("RGB", (width, height), tuple(fill))
        out.paste(img.resize((nw, nh), f), ((width - nw) // 2, (height - nh) // 2))
    else:
        raise ValueError(f"unknown resize mode {resize!r}")
    arr = np.asarray(out, dtype=np.uint8)
    assert arr.shape == (height, width, 3), (path, arr.shape)
    return arr


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Input:
    """One input file: its stem (file name without extension), format, kind and the
    function that makes its bytes."""

    stem: str
    format: str  # png | jpeg | webp
    kind: str  # png | jpeg | webp_lossless | webp_lossy
    make: Callable[[], bytes]
    orientation: int = 1
    note: str = ""

    @property
    def filename(self) -> str:
        ext = {"png": "png", "jpeg": "jpg", "webp": "webp"}[self.format]
        return f"inputs/{self.stem}.{ext}"


def _png_input(stem: str, color_type: int, depth: int, w: int, h: int, *, variant: str = "",
               interlace: bool = False, varied: bool = False, exif_orientation: int = 0,
               content_name: str = "") -> Input:
    """A PNG input of the given colour type and bit depth; `variant` selects special
    content: "trns" (a tRNS chunk), "lo" (16-bit grey in 0..~900 only)."""

    def make() -> bytes:
        rng = rng_for(content_name or stem)
        rgb = photo(rng, h, w)
        kw: dict = dict(color_type=color_type, depth=depth, interlace=interlace, varied_filters=varied)
        if exif_orientation:
            kw["exif"] = tiff_exif_orientation(exif_orientation)
        if color_type == 0:
            if depth == 16 and variant == "lo":
                px = np.clip(np.rint(np.clip(luma(rgb), 0, 1) * 900 + rng.normal(0, 3, (h, w))), 0, 65535).astype(np.uint16)
            elif depth == 16:
                px = to_u16_full_range(rng, luma(rgb))
            elif depth == 8:
                px = to_u8(luma(rgb))
            else:
                px = dither_levels(rng, luma(rgb), 1 << depth)
            if variant == "trns":
                key = int(np.median(px))
                kw["trns"] = struct.pack(">H", key)
        elif color_type == 2:
            px = to_u16_full_range(rng, rgb) if depth == 16 else to_u8(rgb)
            if variant == "trns":
                key = np.array([40, 200, 90], np.uint8)  # a colour block and scattered pixels with the key
                px[h // 4 : h // 2, w // 4 : w // 2] = key
                px[rng.random((h, w)) < 0.03] = key
                kw["trns"] = struct.pack(">HHH", *key.tolist())
        elif color_type == 3:
            n = {1: 2, 2: 4, 4: 16, 8: 200}[depth]
            idx, palette = palettize(rng, rgb, n)
            px = idx
            kw["palette"] = palette
            if variant == "trns":
                # Partial transparency: fewer tRNS entries than palette entries.
                kw["trns"] = rng.integers(0, 256, 120, dtype=np.uint8).tobytes()
        elif color_type in (4, 6):
            a = alpha_field(rng, h, w)
            if depth == 16:
                colour = to_u16_full_range(rng, luma(rgb) if color_type == 4 else rgb)
                alpha = np.clip(np.rint(a * 65535 + rng.normal(0, 40, a.shape)), 0, 65535).astype(np.uint16)
            else:
                colour = to_u8(luma(rgb) if color_type == 4 else rgb)
                alpha = to_u8(a)
            if colour.ndim == 2:
                colour = colour[..., None]
            px = np.concatenate([colour, alpha[..., None]], -1)
        else:
            raise ValueError(color_type)
        return encode_png(px, **kw)

    desc = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}[color_type]
    note = f"{desc} {depth}-bit" + (f" {variant}" if variant else "") + (" Adam7" if interlace else "")
    note += " varied filters" if varied else ""
    note += f" eXIf orientation {exif_orientation}" if exif_orientation else ""
    return Input(stem, "png", "png", make, orientation=exif_orientation or 1, note=note)


def _pillow_input(stem: str, fmt: str, kind: str, w: int, h: int, mode: str, save: dict,
                  content_name: str = "", orientation: int = 0, note: str = "") -> Input:
    """A JPEG or WebP input written by Pillow from mode `mode` with save options."""

    def make() -> bytes:
        rng = rng_for(content_name or stem)
        rgb = photo(rng, h, w)
        if mode == "L":
            img = Image.fromarray(to_u8(luma(rgb)), "L")
        elif mode == "RGBA":
            img = Image.fromarray(np.concatenate([to_u8(rgb), to_u8(alpha_field(rng, h, w))[..., None]], -1), "RGBA")
        elif mode == "CMYK":
            # Grey-component replacement so K varies too (Pillow's own RGB->CMYK keeps K = 0).
            cmy = 1.0 - np.clip(rgb, 0, 1)
            k = 0.8 * cmy.min(-1, keepdims=True)
            cmyk = np.concatenate([(cmy - k) / np.maximum(1 - k, 1e-6), k], -1)
            img = Image.fromarray(to_u8(cmyk), "CMYK")
        else:
            img = Image.fromarray(to_u8(rgb), "RGB")
        opts = dict(save)
        if orientation:
            exif = Image.Exif()
            exif[0x0112] = orientation
            opts["exif"] = exif
        buf = io.BytesIO()
        img.save(buf, format=fmt.upper(), **opts)
        return buf.getvalue()

    return Input(stem, fmt, kind, make, orientation=orientation or 1, note=note)


def parity_inputs() -> list[Input]:
    p = _png_input
    inputs = [
        p("gray1_97x97", 0, 1, 97, 97),
        p("gray2_37x23", 0, 2, 37, 23),
        p("gray4_13x301", 0, 4, 13, 301),
        p("gray8_201x133", 0, 8, 201, 133),
        p("gray16_201x133", 0, 16, 201, 133, varied=True),
        p("gray16lo_97x97", 0, 16, 97, 97, variant="lo"),
        p("graya8_300x13", 4, 8, 300, 13),
        p("graya16_97x97", 4, 16, 97, 97),
        p("rgb8_8x8", 2, 8, 8, 8),
        p("rgb8_13x301", 2, 8, 13, 301),
        p("rgb8_37x23", 2, 8, 37, 23),
        p("rgb8_97x97", 2, 8, 97, 97),
        p("rgb8_201x133", 2, 8, 201, 133),
        p("rgb8_300x13", 2, 8, 300, 13),
        p("rgb8_320x240", 2, 8, 320, 240, varied=True),
        p("rgb16_97x97", 2, 16, 97, 97),
        p("rgba8_201x133", 6, 8, 201, 133, varied=True),
        p("rgba16_37x23", 6, 16, 37, 23),
        p("pal1_13x301", 3, 1, 13, 301),
        p("pal2_300x13", 3, 2, 300, 13),
        p("pal4_97x97", 3, 4, 97, 97, varied=True),
        p("pal8_201x133", 3, 8, 201, 133),
        p("pal8trns_320x240", 3, 8, 320, 240, variant="trns"),
        p("rgb8trns_97x97", 2, 8, 97, 97, variant="trns"),
        p("gray8trns_37x23", 0, 8, 37, 23, variant="trns"),
        p("rgb8_adam7_201x133", 2, 8, 201, 133, interlace=True, varied=True),
        p("gray16_adam7_97x97", 0, 16, 97, 97, interlace=True),
    ]
    for o in range(1, 9):
        inputs.append(p(f"rgb8_61x37_exif{o}", 2, 8, 61, 37, exif_orientation=o, content_name="rgb8_61x37_exif"))

    j = _pillow_input
    q90_420 = dict(quality=90, subsampling=2)
    inputs += [
        j("jpeg420q90_320x240", "jpeg", "jpeg", 320, 240, "RGB", q90_420, note="baseline 4:2:0 q90"),
        j("jpeg420q90_201x133", "jpeg", "jpeg", 201, 133, "RGB", q90_420, note="baseline 4:2:0 q90, partial MCUs"),
        j("jpeg422q90_201x133", "jpeg", "jpeg", 201, 133, "RGB", dict(quality=90, subsampling=1),
          note="baseline 4:2:2 q90"),
        j("jpeg444q95_320x240", "jpeg", "jpeg", 320, 240, "RGB", dict(quality=95, subsampling=0),
          note="baseline 4:4:4 q95"),
        j("jpegprog_320x240", "jpeg", "jpeg", 320, 240, "RGB", dict(q90_420, progressive=True),
          note="progressive 4:2:0 q90"),
        j("jpeggray_201x133", "jpeg", "jpeg", 201, 133, "L", dict(quality=90), note="greyscale q90"),
        j("jpegcmyk_201x133", "jpeg", "jpeg", 201, 133, "CMYK", dict(quality=90), note="Adobe CMYK q90"),
    ]
    for o in range(1, 9):
        inputs.append(j(f"jpeg420q90_201x133_exif{o}", "jpeg", "jpeg", 201, 133, "RGB", q90_420,
                        content_name="jpeg420q90_201x133", orientation=o,
                        note=f"the 4:2:0 q90 201x133 JPEG with EXIF orientation {o}"))
    inputs += [
        j("webpll_rgb_201x133", "webp", "webp_lossless", 201, 133, "RGB", dict(lossless=True), note="lossless RGB"),
        j("webpll_rgba_97x97", "webp", "webp_lossless", 97, 97, "RGBA", dict(lossless=True), note="lossless RGBA"),
        j("webpq90_rgb_320x240", "webp", "webp_lossy", 320, 240, "RGB", dict(quality=90), note="lossy q90 RGB"),
        j("webpq90_rgba_201x133", "webp", "webp_lossy", 201, 133, "RGBA", dict(quality=90), note="lossy q90 RGBA"),
    ]
    for o in range(1, 9):
        inputs.append(j(f"webpq90_rgb_97x61_exif{o}", "webp", "webp_lossy", 97, 61, "RGB", dict(quality=90),
                        content_name="webpq90_rgb_97x61", orientation=o,
                        note=f"lossy q90 RGB with EXIF orientation {o}"))
    return inputs


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    stem: str
    resize: str
    filter: str
    width: int
    height: int
    shorter_side: int = 0
    fill: tuple[int, int, int] = (0, 0, 0)

    def name(self, inp: Input) -> str:
        if self.resize == "shorter_crop":
            tag = f"shorter_crop_s{self.shorter_side}"
        elif self.resize == "letterbox":
            r, g, b = self.fill
            tag = f"letterbox_f{r}" if r == g == b else f"letterbox_f{r}-{g}-{b}"
        else:
            tag = "stretch"
        return f"{inp.format}_{self.stem}_{tag}_{self.filter}_{self.width}x{self.height}"


def S(stem, w, h, f="bilinear"):
    return Case(stem, "stretch", f, w, h)


def C(stem, s, w, h, f="bicubic"):
    return Case(stem, "shorter_crop", f, w, h, shorter_side=s)


def L(stem, w, h, f="nearest", fill=DEFAULT_FILL):
    return Case(stem, "letterbox", f, w, h, fill=tuple(fill))


def png_coverage_cases(inputs: list[Input]) -> list[Case]:
    """Every plain PNG input: a stretch (bilinear), a shorter-side crop (bicubic) and
    a letterbox (nearest), all downscales; the 16-bit, 1-bit, transparent and
    interlaced inputs also get a bicubic stretch, the 16-bit ones a nearest one."""
    cases = []
    for inp in inputs:
        if inp.format != "png" or "_exif" in inp.stem:
            continue
        w, h = (int(v) for v in inp.stem.rsplit("_", 1)[1].split("x"))
        k = min(0.45, 64 / max(w, h))
        tw, th = max(1, round(w * k)), max(1, round(h * k))
        s = max(2, min(56, round(min(w, h) * 0.55)))
        lb = max(4, min(64, round(max(w, h) * 0.4)))
        cases += [S(inp.stem, tw, th), C(inp.stem, s, s, max(1, s * 3 // 4)), L(inp.stem, lb, lb)]
        if any(t in inp.stem for t in ("16", "trns", "adam7", "pal1", "gray1")):
            cases.append(S(inp.stem, tw, th, "bicubic"))
        if "16" in inp.stem:
            cases.append(S(inp.stem, tw, th, "nearest"))
    return cases


def grid_cases() -> list[Case]:
    """Filters x modes x scale factors on RGB 8-bit inputs."""
    scales = [
        # (description, stretch, shorter_crop, letterbox)
        ("down 1.3x", S("rgb8_97x97", 75, 75), C("rgb8_97x97", 75, 64, 56), L("rgb8_97x97", 75, 60)),
        ("down ~2x", S("rgb8_201x133", 100, 66), C("rgb8_201x133", 66, 64, 64), L("rgb8_201x133", 100, 100)),
        ("down 7.5x", S("rgb8_320x240", 43, 32), C("rgb8_320x240", 32, 32, 32), L("rgb8_320x240", 40, 40)),
        ("down ~35x", S("rgb8_320x240", 9, 7), C("rgb8_320x240", 8, 7, 7), L("rgb8_320x240", 9, 9)),
        ("up 3x", S("rgb8_37x23", 111, 69), C("rgb8_37x23", 96, 96, 64), L("rgb8_37x23", 96, 96)),
    ]
    cases = []
    for _, *modes in scales:
        for proto in modes:
            for f in FILTERS:
                cases.append(dataclasses.replace(proto, filter=f))
    return cases


def edge_cases() -> list[Case]:
    """Identity sizes, exact and non-integer scales, odd targets, 1x1, mixed up/down,
    crop offsets that round half to even, letterboxes with a 1-px side, fills."""
    c: list[Case] = []
    c += [S("rgb8_97x97", 97, 97, f) for f in FILTERS]  # identity
    c += [L("rgb8_97x97", 97, 97, "bilinear"), C("rgb8_97x97", 97, 97, 97, "bilinear")]
    c += [S("rgb8_37x23", 37, 23, "bicubic"), S("rgb8_300x13", 300, 13, "bilinear")]
    c += [S("rgb8_201x133", 63, 47, f) for f in FILTERS]  # non-integer, odd
    c += [S("rgb8_201x133", 127, 99, "bicubic")]
    c += [S("rgb8_201x133", 30, 150, f) for f in FILTERS]  # down in x, up in y
    c += [S("rgb8_201x133", 1, 1, f) for f in FILTERS]
    c += [S("rgb8_201x133", 201, 66, "bicubic"), S("rgb8_201x133", 100, 133, "bilinear")]  # one axis unchanged
    c += [S("rgb8_320x240", 80, 60, f) for f in FILTERS]  # exactly 4x
    c += [S("rgb8_320x240", 160, 120, "bilinear")]  # exactly 2x
    c += [S("rgb8_320x240", 128, 96, "bilinear")]  # 2.5x
    c += [S("rgb8_8x8", 4, 4, f) for f in FILTERS]
    c += [S("rgb8_8x8", 3, 5, "bicubic"), S("rgb8_8x8", 17, 17, "bilinear"), S("rgb8_8x8", 17, 17, "bicubic")]
    c += [S("rgb8_37x23", 224, 224, "bilinear")]  # large upscale
    c += [S("rgb8_300x13", 64, 48, f) for f in ("bilinear", "bicubic")]
    c += [L("rgb8_300x13", 16, 16, f) for f in ("nearest", "bilinear")]  # fitted height rounds to 1
    c += [L("rgb8_300x13", 64, 64, "bicubic", (255, 0, 128))]
    c += [C("rgb8_13x301", 20, 16, 16, "bilinear"), L("rgb8_13x301", 64, 64, "bicubic", (0, 0, 0))]
    # 201x133, S=72 -> 108x72: 63x47 crop has offsets round(22.5)=22, round(12.5)=12;
    # 69x69 crop has round(19.5)=20 and round(1.5)=2.
    c += [C("rgb8_201x133", 72, 63, 47, "bilinear"), C("rgb8_201x133", 72, 69, 69, "bicubic")]
    c += [C("rgb8_201x133", 72, 64, 64, "nearest"), C("rgb8_201x133", 80, 64, 48, "bilinear")]
    c += [L("rgb8_201x133", 64, 64, "nearest", (0, 0, 0)), L("rgb8_201x133", 80, 80, "bilinear", (255, 0, 128))]
    c += [L("rgb8_201x133", 48, 96, "bicubic")]
    c += [S("gray16_201x133", 100, 66, "bicubic"), C("rgb16_97x97", 72, 64, 64, "bilinear")]
    return c


def orientation_cases(inputs: list[Input]) -> list[Case]:
    c = []
    for inp in inputs:
        if "_exif" not in inp.stem:
            continue
        if inp.format == "png":
            c += [S(inp.stem, 32, 24, "bilinear"), C(inp.stem, 24, 24, 18, "bicubic")]
        elif inp.format == "jpeg":
            c += [S(inp.stem, 64, 48, "bilinear"), C(inp.stem, 56, 48, 40, "bicubic"), S(inp.stem, 37, 29, "nearest")]
        else:
            c += [S(inp.stem, 48, 32, "bilinear")]
    return c


def codec_cases(inputs: list[Input]) -> list[Case]:
    """JPEG and WebP without orientation: stretch bilinear (224x224, the usual model
    input, for the main JPEG and WebP; 96x72 elsewhere to keep the fixtures small),
    a shorter-side crop (bicubic) and a nearest stretch."""
    c = []
    for inp in inputs:
        if inp.format == "png" or "_exif" in inp.stem:
            continue
        main = inp.stem in ("jpeg420q90_320x240", "webpq90_rgb_320x240")
        c += [
            S(inp.stem, 224, 224, "bilinear") if main else S(inp.stem, 96, 72, "bilinear"),
            C(inp.stem, 80, 72, 64, "bicubic"),
            S(inp.stem, 64, 48, "nearest"),
        ]
    return c


# ---------------------------------------------------------------------------
# JPEG structure check (orientation files must differ only in the EXIF segment)
# ---------------------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes) of each segment up to SOS; the entropy-coded rest as marker 0xDA."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    segs, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF, f"bad marker at {i}"
        marker = data[i + 1]
        if marker == 0xDA:
            segs.append((marker, data[i:]))
            break
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        segs.append((marker, data[i : i + 2 + length]))
        i += 2 + length
    return segs


def check_same_jpeg_body(files: list[bytes]) -> None:
    bodies = {tuple(s for s in jpeg_segments(f) if s[0] != 0xE1) for f in files}
    if len(bodies) != 1:
        raise SystemExit("orientation JPEGs differ outside their EXIF (APP1) segment")


# ---------------------------------------------------------------------------
# Benchmark photos
# ---------------------------------------------------------------------------

BENCH_SIZES = [(640, 480), (1024, 768), (4032, 3024)]


def write_bench(out: Path) -> list[dict]:
    """Photo-like baseline JPEGs, quality 90, 4:2:0, for the preprocessing benchmark."""
    rows = []
    for w, h in BENCH_SIZES:
        img = Image.fromarray(to_u8(photo(rng_for(f"bench_{w}x{h}"), h, w)), "RGB")
        path = out / f"photo_{w}x{h}.jpg"
        img.save(path, format="JPEG", quality=90, subsampling=2, optimize=False, progressive=False)
        size = path.stat().st_size
        rows.append({"file": path.name, "bytes": size, "bpp": round(size * 8 / (w * h), 3)})
        print(f"bench  {path.name:24s} {size / 1e6:7.3f} MB  {size * 8 / (w * h):.2f} bits/pixel")
    return rows


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def check_versions(allow_mismatch: bool) -> None:
    import PIL

    got = (PIL.__version__, np.__version__)
    if got != (PILLOW_VERSION, NUMPY_VERSION) and not allow_mismatch:
        raise SystemExit(
            f"generate.py needs Pillow {PILLOW_VERSION} and numpy {NUMPY_VERSION} (see requirements.txt), "
            f"found Pillow {got[0]} and numpy {got[1]}; the fixtures would change. "
            "Use the project venv (.venv/bin/python) or pass --allow-version-mismatch."
        )


def reset_dir(path: Path) -> None:
    """Delete a directory this script owns and create it empty."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def write_parity(out: Path) -> int:
    inputs = parity_inputs()
    by_stem = {i.stem: i for i in inputs}
    assert len(by_stem) == len(inputs), "duplicate input stems"
    (out / "inputs").mkdir()
    (out / "expected").mkdir()

    orientation_jpegs = []
    for inp in inputs:
        data = inp.make()
        (out / inp.filename).write_bytes(data)
        if inp.format == "jpeg" and "_exif" in inp.stem:
            orientation_jpegs.append(data)
    check_same_jpeg_body(orientation_jpegs)

    cases = png_coverage_cases(inputs) + grid_cases() + edge_cases() + orientation_cases(inputs) + codec_cases(inputs)
    cases = list(dict.fromkeys(dataclasses.astuple(c) for c in cases))  # drop repeats, keep order
    cases = [Case(*c) for c in cases]
    entries, names = [], set()
    for case in cases:
        inp = by_stem[case.stem]
        name = case.name(inp)
        if name in names:
            raise SystemExit(f"duplicate case name {name}")
        names.add(name)
        if case.resize == "shorter_crop":
            assert case.shorter_side >= max(case.width, case.height), name
        pixels = pillow_reference(out / inp.filename, case.width, case.height, case.resize, case.filter,
                                  case.shorter_side, case.fill)
        expected = f"expected/{name}.rgb"
        (out / expected).write_bytes(pixels.tobytes())
        with Image.open(out / inp.filename) as im:
            pillow_mode = im.mode
        entries.append({
            "name": name,
            "input": inp.filename,
            "format": inp.format,
            "kind": inp.kind,
            "width": case.width,
            "height": case.height,
            "resize": case.resize,
            "filter": case.filter,
            "shorter_side": case.shorter_side,
            "fill": list(case.fill),
            "orientation": inp.orientation,
            "expected": expected,
            "pillow_mode": pillow_mode,
            "note": inp.note,
        })

    manifest = {
        "pillow": PILLOW_VERSION,
        "numpy": np.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "libwebp": features.version("webp"),
        "cases": entries,
    }
    # One case per line: readable and diff-friendly.
    lines = ["{"]
    for key in ("pillow", "numpy", "libjpeg_turbo", "libwebp"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(manifest[key])},")
    lines.append('  "cases": [')
    lines.append(",\n".join("    " + json.dumps(e) for e in entries))
    lines.append("  ]")
    lines.append("}")
    (out / "manifest.json").write_text("\n".join(lines) + "\n")
    json.loads((out / "manifest.json").read_text())  # must parse
    return len(entries)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testdata", type=Path, default=TESTDATA, help="output directory (default: %(default)s)")
    ap.add_argument("--skip-bench", action="store_true", help="do not (re)write bench/ (the 12 MP photo takes ~30 s)")
    ap.add_argument("--allow-version-mismatch", action="store_true", help="run with other Pillow/numpy versions")
    args = ap.parse_args(argv)
    check_versions(args.allow_version_mismatch)

    t0 = time.time()
    parity = args.testdata / "parity"
    reset_dir(parity)
    n = write_parity(parity)
    print(f"parity {n} cases, {len(list((parity / 'inputs').iterdir()))} inputs, {dir_size(parity) / 1e6:.2f} MB")
    if not args.skip_bench:
        bench = args.testdata / "bench"
        reset_dir(bench)
        write_bench(bench)
    print(f"done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
