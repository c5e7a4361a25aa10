"""Regenerates the JPEG fixtures of jpeg_test.go and the RGB bytes Pillow decodes them to.

Run from the repository root with the project's venv (Pillow 13):

    .venv/bin/python preprocess/testdata/jpeg/make_fixtures.py

Every NAME.jpg gets NAME.rgb, Pillow's Image.open(f).convert("RGB").tobytes(), and
the scaled ones NAME_dN.rgb, the same after im.draft(None, size) asked for a 1/N
DCT scale (Pillow's draft only sets libjpeg's scale_denom; the other decompression
parameters stay at their defaults).

The pictures are 77×53 (odd, not a multiple of the MCU size) so that the right and
bottom edges, chroma upsampling and the ceil(w/N) scaled sizes are all exercised.
"""

import io
import math
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 77, 53


def photo(seed: int) -> np.ndarray:
    """A photo-like RGB picture: smooth gradients, a sharp-edged disc, texture, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r = 128 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)
    g = 40 + 180 * (x / W) * (1 - y / H) + 20 * np.sin((x + y) / 3.0)
    b = 200 - 150 * (y / H) + 30 * np.cos(x / 4.0)
    disc = (x - 50) ** 2 + (y - 24) ** 2 < 14**2
    r[disc], g[disc], b[disc] = 230, 40, 60
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (H, W, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save(name: str, data: bytes, scales=(1,)) -> None:
    with open(os.path.join(HERE, name + ".jpg"), "wb") as f:
        f.write(data)
    for n in scales:
        im = Image.open(io.BytesIO(data))
        if n > 1:
            im.draft(None, (im.width // n, im.height // n))
            assert im.size == (math.ceil(W / n), math.ceil(H / n)), (name, n, im.size)
        rgb = im.convert("RGB").tobytes()
        suffix = "" if n == 1 else f"_d{n}"
        with open(os.path.join(HERE, name + suffix + ".rgb"), "wb") as f:
            f.write(rgb)


def encode(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def adobe_segment(data: bytes) -> int:
    """Offset of the FF EE marker of the Adobe APP14 segment."""
    i = data.find(b"\xff\xee")
    assert i > 0 and data[i + 4 : i + 9] == b"Adobe", "no Adobe APP14 segment"
    return i


def main() -> None:
    rgb = Image.fromarray(photo(1))
    save("rgb420", encode(rgb, quality=90, subsampling=2), scales=(1, 2, 4, 8))
    save("rgb422", encode(rgb, quality=90, subsampling=1))
    save("rgb444", encode(rgb, quality=90, subsampling=0))
    save("progressive", encode(rgb, quality=85, progressive=True), scales=(1, 2, 4, 8))
    save("gray", encode(rgb.convert("L"), quality=90), scales=(1, 2))

    # CMYK with a real black channel. Pillow writes it with an Adobe APP14 marker
    # (transform 0) and inverted samples, as Photoshop does.
    p = photo(2).astype(np.int32)
    k = np.clip(255 - p.max(axis=-1) + 30, 0, 255)
    cmyk = np.stack([255 - p[..., 0], 255 - p[..., 1], 255 - p[..., 2], k], axis=-1)
    cmyk_im = Image.fromarray(cmyk.astype(np.uint8), "CMYK")
    data = encode(cmyk_im, quality=90)
    save("cmyk_adobe", data, scales=(1, 2))

    # The same without its Adobe segment: libjpeg (and Pillow) still decode it as
    # CMYK; Pillow assumes Adobe's inverted polarity regardless.
    i = adobe_segment(data)
    n = int.from_bytes(data[i + 2 : i + 4], "big")
    save("cmyk_noadobe", data[:i] + data[i + 2 + n :])

    # YCCK (Adobe transform 2): store Y, Cb, Cr, K as a "CMYK" file, then mark it
    # as YCCK. Pillow's CMYK;I packer inverts on save, so hand it 255 - value.
    q = photo(3).astype(np.float64)
    yy = 0.299 * q[..., 0] + 0.587 * q[..., 1] + 0.114 * q[..., 2]
    cb = 128 - 0.168736 * q[..., 0] - 0.331264 * q[..., 1] + 0.5 * q[..., 2]
    cr = 128 + 0.5 * q[..., 0] - 0.418688 * q[..., 1] - 0.081312 * q[..., 2]
    kk = 255 - np.clip(q.mean(axis=-1) * 0.8, 0, 255)
    stored = np.clip(np.rint(np.stack([yy, cb, cr, kk], axis=-1)), 0, 255)
    ycck_im = Image.fromarray((255 - stored).astype(np.uint8), "CMYK")
    data = bytearray(encode(ycck_im, quality=90))
    i = adobe_segment(data)
    assert data[i + 15] == 0, "expected Adobe transform 0 (CMYK)"
    data[i + 15] = 2
    save("ycck", bytes(data))


if __name__ == "__main__":
    main()
