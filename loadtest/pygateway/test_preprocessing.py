"""Tests of preprocessing.py, the Python peers' lean preprocessing.

The lean code must compute the same tensor as the straightforward code it
replaces (exif_transpose, convert("RGB"), resize the whole picture, crop, HWC
normalisation), up to rare one-level differences. Run from this directory with
any Python that has Pillow and numpy (make test uses .venv):

    ../../.venv/bin/python -m unittest --quiet
"""

from __future__ import annotations

import io
import unittest
from pathlib import Path

import numpy as np
import preprocessing as pp
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

REPO = Path(__file__).resolve().parents[2]
BENCH = sorted((REPO / "preprocess" / "testdata" / "bench").glob("photo_*.jpg"))
K6 = [p for p in sorted((REPO / "loadtest" / "k6" / "images").glob("fish_*")) if p.suffix != ".txt"]
PARITY = sorted((REPO / "preprocess" / "testdata" / "parity" / "inputs").glob("*"))


def reference(data: bytes) -> np.ndarray:
    """The contract the straightforward way: every step on the whole picture."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        w, h = img.size
        size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        img = img.resize(size, Image.Resampling.BILINEAR)
        left, top = int(round((size[0] - 224) / 2.0)), int(round((size[1] - 224) / 2.0))
        x = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    return np.ascontiguousarray(((x - np.float32(127)) / np.float32(128)).transpose(2, 0, 1)[np.newaxis])


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in 8-bit levels (the tensors are (x - 127) / 128)."""
    return np.abs(np.rint(a * 128) - np.rint(b * 128))


class Geometry(unittest.TestCase):
    def test_landscape(self):
        self.assertEqual(pp.resized_size(640, 480), (341, 256))
        self.assertEqual(pp.crop_window(640, 480), (58, 16, 282, 240))
        sx, sy = 640 / 341, 480 / 256
        self.assertEqual(pp.source_box(640, 480), (58 * sx, 16 * sy, 282 * sx, 240 * sy))

    def test_portrait_and_rounding(self):
        self.assertEqual(pp.resized_size(480, 640), (256, 341))
        self.assertEqual(pp.crop_window(480, 640), (16, 58, 240, 282))
        # 1024x768 -> 341x256: (341 - 224) / 2 = 58.5 rounds half to even, to 58.
        self.assertEqual(pp.crop_window(1024, 768)[0], 58)
        # 300x200 -> 384x256: (384 - 224) / 2 = 80 exactly.
        self.assertEqual(pp.crop_window(300, 200), (80, 16, 304, 240))

    def test_box_stays_inside_the_source(self):
        for w, h in [(13, 301), (301, 13), (8, 8), (4032, 3024), (97, 97), (257, 256)]:
            x0, y0, x1, y1 = pp.source_box(w, h)
            self.assertGreaterEqual(min(x0, y0), 0, (w, h))
            self.assertLessEqual(x1, w * (1 + 1e-12), (w, h))
            self.assertLessEqual(y1, h * (1 + 1e-12), (w, h))


class AgainstReference(unittest.TestCase):
    def check(self, paths, most_differing):
        self.assertTrue(paths, "no test images found")
        for path in paths:
            data = path.read_bytes()
            with self.subTest(image=path.name):
                got = pp.preprocess(data)
                self.assertEqual((got.shape, got.dtype), ((1, 3, 224, 224), np.float32))
                self.assertTrue(got.flags.c_contiguous)
                d = levels(got, reference(data))
                self.assertLessEqual(d.max(), 1)
                self.assertLessEqual((d > 0).mean(), most_differing)

    def test_photos(self):
        # Photos and the k6 images: at most two values in 1,000 off by one level
        # (measured: 0.005-0.017% on the bench photos, up to 0.12% on the k6 RGBA PNG).
        self.check(BENCH + [p for p in K6 if not p.name.startswith("invalid_")], 2e-3)

    def test_parity_inputs(self):
        # Tiny and extreme pictures (13x301 upscaled) differ more often, never by more than one level.
        self.check([p for p in PARITY if "animated" not in p.name and "trns" not in p.name], 0.2)

    def test_orientation_is_applied(self):
        # fish_480x640_exif6.jpg is stored 640x480 with orientation 6.
        data = (REPO / "loadtest" / "k6" / "images" / "fish_480x640_exif6.jpg").read_bytes()
        with pp.open_upright(data) as img:
            self.assertEqual(img.size, (480, 640))
        for o in range(1, 9):
            data = (REPO / "preprocess" / "testdata" / "parity" / "inputs" / f"rgb8_61x37_exif{o}.png").read_bytes()
            with self.subTest(orientation=o):
                with pp.open_upright(data) as img:
                    self.assertEqual(img.size, (37, 61) if o >= 5 else (61, 37))
                self.assertLessEqual(levels(pp.preprocess(data), reference(data)).max(), 1)


class NoNeedlessCopies(unittest.TestCase):
    def test_rgb_without_orientation_is_the_decoded_image(self):
        with pp.open_upright(BENCH[0].read_bytes()) as img:
            self.assertIsInstance(img, JpegImagePlugin.JpegImageFile)  # neither transposed nor converted
            self.assertEqual(img.mode, "RGB")

    def test_grey_is_converted(self):
        data = (REPO / "loadtest" / "k6" / "images" / "fish_640x480_grey.jpg").read_bytes()
        with pp.open_upright(data) as img:
            self.assertEqual(img.mode, "RGB")

    def test_draft_decodes_smaller_but_not_below_the_resize(self):
        big = REPO / "preprocess" / "testdata" / "bench" / "photo_4032x3024.jpg"
        with pp.open_upright(big.read_bytes(), draft=True) as img:
            self.assertEqual(img.size, (504, 378))  # 1/8 scale, still >= 341x256
        with pp.open_upright(BENCH[-1].read_bytes(), draft=True) as img:  # photo_640x480: no scale fits
            self.assertEqual(img.size, (640, 480))
        exact, fast = pp.preprocess(big.read_bytes()), pp.preprocess(big.read_bytes(), draft=True)
        self.assertLess(levels(exact, fast).mean(), 2)  # a different decode, the same picture


class Errors(unittest.TestCase):
    def test_not_an_image(self):
        with self.assertRaises(UnidentifiedImageError):
            pp.preprocess(b"this is not an image")

    def test_truncated(self):
        data = (REPO / "loadtest" / "k6" / "images" / "invalid_truncated.jpg").read_bytes()
        with self.assertRaises(OSError):
            pp.preprocess(data)


if __name__ == "__main__":
    unittest.main()
