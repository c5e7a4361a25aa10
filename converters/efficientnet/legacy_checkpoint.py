"""Read a PyTorch checkpoint in the LEGACY (pre-1.6, non-zip) format without PyTorch.

A checkpoint is a pickle, and unpickling runs whatever callables it names, so a
plain pickle.load of a downloaded .pth is running the downloader's code. This
reader allows the few globals a state_dict of tensors genuinely needs and
refuses every other one before it is looked up:

    collections.OrderedDict          the state_dict itself (and its _metadata)
    torch._utils._rebuild_tensor_v2  a tensor: (storage, offset, size, stride, ...)
    torch._utils._rebuild_tensor     the older form of the same, without requires_grad
    torch.<Type>Storage              the storage types (FloatStorage, ...), as dtype tags

None of them is imported from torch: each name maps to a function of this module.

The legacy layout is five things written one after another in one file:

    pickle  magic number 0x1950a86a20f9469cfc6c
    pickle  protocol version 1001
    pickle  sys info dict (little_endian, type_sizes)
    pickle  the object; each tensor's storage is a persistent id
            ('storage', storage_type, key, location, numel, view_metadata)
    pickle  the list of storage keys, in the order their data follows
    then, for each key: int64 little-endian element count, then the raw elements
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch.<name> storage type -> little-endian numpy dtype of its elements.
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global this reader does not allow."""


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None  # filled in once the raw bytes are read


@dataclass
class _PendingTensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise pickle.UnpicklingError(f"storage {self.storage.key} has no data")
        if len(self.size) != len(self.stride):
            raise pickle.UnpicklingError("tensor size and stride differ in length")
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride) or self.offset < 0:
            raise pickle.UnpicklingError("negative size, stride or offset")
        if 0 in self.size:
            return np.zeros(self.size, dtype=data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= data.size:
            raise pickle.UnpicklingError(f"tensor reaches element {last} of a {data.size}-element storage")
        item = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=[s * item for s in self.stride], writeable=False)
        # A contiguous copy in native byte order, independent of the storage.
        return np.ascontiguousarray(view, dtype=data.dtype.newbyteorder("="))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *metadata):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    if backward_hooks:
        raise pickle.UnpicklingError("tensor with backward hooks")
    return _PendingTensor(storage, int(storage_offset), tuple(int(v) for v in size), tuple(int(v) for v in stride))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}
_ALLOWED.update({("torch", name): _StorageType(name, np.dtype(dt)) for name, dt in STORAGE_DTYPES.items()})


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the allow-listed globals, to local stand-ins."""

    def __init__(self, file, storages: dict[str, _Storage] | None = None):
        super().__init__(file, encoding="utf-8")
        self.storages = storages if storages is not None else {}

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"refused global {module}.{name}: a checkpoint may only name "
                                f"tensors, storages and OrderedDict") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("persistent id without a storage type")
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        key = str(key)
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
        elif st.dtype != storage_type.dtype or st.numel != int(numel):
            raise pickle.UnpicklingError(f"storage {key} seen with two types or sizes")
        return st


def _load_one(f, storages=None):
    return RestrictedUnpickler(f, storages).load()


def _materialise(obj):
    if isinstance(obj, _PendingTensor):
        return obj.materialise()
    if isinstance(obj, collections.OrderedDict):
        out = collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
        return out
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def load_legacy(data: bytes) -> tuple[dict, object]:
    """Parse a legacy-format checkpoint: returns (sys_info, object with numpy arrays)."""
    if data[:2] == b"PK":
        raise ValueError("this is the zip (>= 1.6) checkpoint format, not the legacy one")
    f = io.BytesIO(data)
    if _load_one(f) != MAGIC_NUMBER:
        raise ValueError("not a legacy PyTorch checkpoint (bad magic number)")
    if _load_one(f) != PROTOCOL_VERSION:
        raise ValueError("unsupported legacy protocol version")
    sys_info = _load_one(f)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise ValueError("only little-endian checkpoints are supported")
    storages: dict[str, _Storage] = {}
    obj = _load_one(f, storages)
    keys = _load_one(f)
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise ValueError("the storage key list does not match the storages the object uses")
    for key in keys:
        st = storages[str(key)]
        header = f.read(8)
        if len(header) != 8:
            raise ValueError(f"truncated before storage {key}")
        (numel,) = struct.unpack("<q", header)
        if numel != st.numel:
            raise ValueError(f"storage {key}: {numel} elements on disk, {st.numel} announced")
        raw = f.read(numel * st.dtype.itemsize)
        if len(raw) != numel * st.dtype.itemsize:
            raise ValueError(f"truncated in storage {key}")
        st.data = np.frombuffer(raw, dtype=st.dtype)
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")
    return sys_info, _materialise(obj)
