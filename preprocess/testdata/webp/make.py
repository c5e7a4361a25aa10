"""Regenerates the WebP fixtures of header_test.go with Pillow (run from this folder:
../../../.venv/bin/python make.py). Each file is a few dozen bytes to a few hundred."""
from PIL import Image

def gradient(mode, w, h):
    im = Image.new(mode, (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            v = (x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), 128, 255 if x < w // 2 else 96)
            px[x, y] = v[: len(mode)]
    return im

def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()

gradient("RGB", 17, 9).save("lossy_17x9.webp", quality=50)
gradient("RGBA", 17, 9).save("lossless_alpha_17x9.webp", lossless=True)
gradient("RGBA", 17, 9).save("lossy_alpha_17x9.webp", quality=50)
gradient("RGB", 17, 9).save("lossy_exif6_17x9.webp", quality=50, exif=exif(6))
gradient("RGB", 17, 9).save("lossless_exif8_17x9.webp", lossless=True, exif=exif(8))
frames = [gradient("RGB", 17, 9), Image.new("RGB", (17, 9), (200, 10, 10))]
frames[0].save("animated_17x9.webp", save_all=True, append_images=frames[1:], duration=100, quality=50)
