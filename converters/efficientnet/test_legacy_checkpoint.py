"""Tests of legacy_checkpoint.py: it reads tensors and refuses every other global.

Run with `python -m unittest` in this folder (or pytest); `make model-efficientnet` runs them.
"""

import collections
import io
import os
import pickle
import struct
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from legacy_checkpoint import MAGIC_NUMBER, PROTOCOL_VERSION, RefusedGlobal, RestrictedUnpickler, load_legacy  # noqa: E402

SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def checkpoint(tensors, body=None) -> bytes:
    """A legacy checkpoint written by hand: {name: (float32 storage, offset, size, stride)}."""
    out = io.BytesIO()
    for obj in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO):
        pickle.dump(obj, out, protocol=2)
    if body is None:
        parts = [b"\x80\x02", _global("collections", "OrderedDict"), b")R("]
        for i, (name, (_, offset, size, stride)) in enumerate(tensors.items()):
            pid = _tuple(_str("storage"), _global("torch", "FloatStorage"), _str(f"k{i}"), _str("cpu"),
                         _int(len(tensors[name][0])), b"N")
            parts += [_str(name), _global("torch._utils", "_rebuild_tensor_v2"),
                      b"(", pid, b"Q", _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)),
                      b"\x89", _global("collections", "OrderedDict"), b")R", b"tR"]
        body = b"".join(parts) + b"u."
    out.write(body)
    pickle.dump([f"k{i}" for i in range(len(tensors))], out, protocol=2)
    for storage, *_ in tensors.values():
        out.write(struct.pack("<q", len(storage)) + np.asarray(storage, "<f4").tobytes())
    return out.getvalue()


class LegacyCheckpointTest(unittest.TestCase):
    def test_reads_tensors_with_offset_and_stride(self):
        storage = np.arange(10, dtype=np.float32)
        data = checkpoint({"a": (storage, 0, (2, 3), (3, 1)),       # contiguous
                           "b": (storage, 1, (3, 2), (1, 3)),       # transposed view, offset 1
                           "c": (storage, 4, (3,), (2,))})          # strided
        _, sd = load_legacy(data)
        self.assertIsInstance(sd, collections.OrderedDict)
        self.assertEqual(list(sd), ["a", "b", "c"])
        np.testing.assert_array_equal(sd["a"], [[0, 1, 2], [3, 4, 5]])
        np.testing.assert_array_equal(sd["b"], [[1, 4], [2, 5], [3, 6]])
        np.testing.assert_array_equal(sd["c"], [4, 6, 8])
        self.assertTrue(sd["b"].flags["C_CONTIGUOUS"])

    def test_refuses_tensor_past_its_storage(self):
        with self.assertRaises(pickle.UnpicklingError):
            load_legacy(checkpoint({"a": (np.zeros(4, np.float32), 2, (3,), (1,))}))

    def test_refuses_os_system(self):
        marker = "/tmp/legacy_checkpoint_test_must_not_exist"
        evil = b"\x80\x02" + _global("os", "system") + _tuple(_str(f"touch {marker}")) + b"R."
        with self.assertRaisesRegex(RefusedGlobal, "os.system"):
            RestrictedUnpickler(io.BytesIO(evil)).load()
        with self.assertRaises(RefusedGlobal):
            load_legacy(checkpoint({}, body=evil))
        self.assertFalse(os.path.exists(marker))

    def test_refuses_other_globals(self):
        for module, name in (("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load"),
                             ("torch._utils", "_rebuild_parameter"), ("numpy", "frombuffer"),
                             ("collections", "namedtuple")):
            with self.subTest(f"{module}.{name}"), self.assertRaises(RefusedGlobal):
                RestrictedUnpickler(io.BytesIO(b"\x80\x02" + _global(module, name) + b".")).load()

    def test_refuses_zip_format(self):
        with self.assertRaises(ValueError):
            load_legacy(b"PK\x03\x04rest")


if __name__ == "__main__":
    unittest.main()
