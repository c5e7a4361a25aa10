"""The model's preprocessing contract with Pillow + numpy, written lean.

The contract (triton-models/fish_classifier/config.pbtxt): the picture upright
as EXIF says, RGB; torchvision's Resize(256) (the shorter side becomes 256,
bilinear, the longer int(256 * long / short)) and CenterCrop(224) (offsets
rounded with Python's round); then (x - 127) / 128 on 0..255, FP32, NCHW.

What a competent Python engineer does to avoid needless work, and what this
module does:

- EXIF orientation is applied only when the file has an orientation tag other
  than 1 (ImageOps.exif_transpose copies the whole picture even when there is
  nothing to turn).
- convert("RGB") only when the decoded mode is not RGB already (a colour JPEG
  decodes to RGB; greyscale "L", "CMYK", palette or alpha PNGs are converted).
- Only the 224x224 window of the Resize(256) picture is resampled:
  Image.resize with box= the crop window mapped back to source coordinates.
  Pillow's filter then sits on the same source positions as a full resize
  followed by the crop, so the pixels are the same up to rounding (the
  positions come from the box's float coordinates, and Pillow may order its
  two passes differently for the smaller output): rare +-1 levels.
- (x - 127) / 128 is computed in place, straight into the contiguous NCHW
  output, reading the HWC pixels through a transposed view (no HWC float
  temporaries).

The same code runs on stock Pillow and on Pillow-SIMD: which one is used is
decided by the virtual environment that imports it (loadtest/pygateway/install.sh).
loadtest/pygateway/app.py serves with it; preprocess/bench/compare_pillow.py
times it. It imports nothing but Pillow and numpy.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image

SHORTER_SIDE = 256
CROP = 224
MEAN = np.float32(127)
STD = np.float32(128)

# EXIF orientation -> the transposition that shows the stored picture upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image (1 when it has none)."""
    value = img.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) else 1


def resized_size(w: int, h: int) -> tuple[int, int]:
    """Resize(256) of a w x h picture: the shorter side 256, the longer int(256 * long / short)."""
    if w <= h:
        return SHORTER_SIDE, int(SHORTER_SIDE * h / w)
    return int(SHORTER_SIDE * w / h), SHORTER_SIDE


def crop_window(w: int, h: int) -> tuple[int, int, int, int]:
    """The CenterCrop(224) window (left, top, right, bottom) of the Resize(256) picture."""
    rw, rh = resized_size(w, h)
    left = int(round((rw - CROP) / 2.0))
    top = int(round((rh - CROP) / 2.0))
    return left, top, left + CROP, top + CROP


def source_box(w: int, h: int) -> tuple[float, float, float, float]:
    """The crop window in the w x h source's coordinates, for Image.resize(box=...)."""
    rw, rh = resized_size(w, h)
    sx, sy = w / rw, h / rh
    left, top, right, bottom = crop_window(w, h)
    return left * sx, top * sy, right * sx, bottom * sy


def open_upright(data: bytes, draft: bool = False) -> Image.Image:
    """Decodes data into an upright RGB image (not yet resized).

    draft=True lets libjpeg-turbo decode a JPEG at 1/2, 1/4 or 1/8 scale while
    the result stays at least the Resize(256) size (Pillow's draft(), the
    counterpart of the Go gateway's DCT scaling); the default decodes at full
    size, as the served contract's exact path does.
    """
    img = Image.open(io.BytesIO(data))
    o = orientation(img)
    turn = _UPRIGHT.get(o)
    if draft:
        w, h = img.size
        if o >= 5:  # 5..8 turn by 90 degrees: the resize sees h x w
            rh, rw = resized_size(h, w)
        else:
            rw, rh = resized_size(w, h)
        img.draft("RGB", (rw, rh))
    if turn is not None:
        img = img.transpose(turn)  # loads the pixels, then one copy, turned
    if img.mode != "RGB":
        img = img.convert("RGB")  # loads the pixels if still lazy
    else:
        img.load()
    return img


def resize_window(img: Image.Image) -> Image.Image:
    """Resize(256) + CenterCrop(224) of an RGB image, resampling only the 224x224 window."""
    w, h = img.size
    return img.resize((CROP, CROP), Image.Resampling.BILINEAR, box=source_box(w, h))


def to_tensor(img: Image.Image) -> np.ndarray:
    """(x - 127) / 128 of a 224x224 RGB image, as a contiguous FP32 (1, 3, 224, 224) tensor."""
    hwc = np.asarray(img)  # uint8, (224, 224, 3)
    out = np.empty((1, 3, CROP, CROP), dtype=np.float32)
    chw = out[0]
    np.subtract(hwc.transpose(2, 0, 1), MEAN, out=chw)
    np.divide(chw, STD, out=chw)
    return out


def preprocess(data: bytes, draft: bool = False) -> np.ndarray:
    """Encoded image bytes -> FP32 tensor of shape (1, 3, 224, 224), the model's contract."""
    with open_upright(data, draft) as img:
        return to_tensor(resize_window(img))
