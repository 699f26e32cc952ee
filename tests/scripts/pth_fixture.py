#!/usr/bin/env python3
"""Writes .pth files in torch.save's format without torch, for the tests.

    python3 tests/scripts/pth_fixture.py OUT.pth IN.safetensors [--wrap KEY] [--prefix P] [--half]

turns a safetensors file (a vit checkpoint, say) into the .pth torch.save would
write for its state dict: a zip archive (stored, not compressed) holding
archive/data.pkl, a protocol-2 pickle of an OrderedDict of tensors, each
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False,
OrderedDict()) with its storage a persistent id ('storage', torch.FloatStorage,
key, 'cpu', numel) whose bytes are archive/data/<key>; plus archive/version and
archive/byteorder. --wrap puts the state dict under that key of a checkpoint
dict (with an epoch beside it), --prefix prepends to every name (as
DistributedDataParallel's 'module.'), --half stores F32 tensors as F16.

As a module: Storage, Tensor (views with any offset and strides), write_pth,
read_safetensors.
"""

import argparse
import collections
import contextlib
import io
import json
import pickle
import struct
import sys
import types
import zipfile

STORAGE_NAMES = {"F32": "FloatStorage", "F64": "DoubleStorage", "F16": "HalfStorage",
                 "BF16": "BFloat16Storage", "I64": "LongStorage", "I32": "IntStorage",
                 "I16": "ShortStorage", "I8": "CharStorage", "U8": "ByteStorage",
                 "BOOL": "BoolStorage"}
SIZES = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U8": 1, "BOOL": 1}
FORMATS = {"F32": "f", "F64": "d", "F16": "e", "I64": "q", "I32": "i", "I16": "h", "I8": "b",
           "U8": "B", "BOOL": "?"}


class Storage:
    """A typed torch storage: dtype and raw little-endian bytes."""

    def __init__(self, dtype, data):
        self.dtype, self.data = dtype, bytes(data)

    @property
    def numel(self):
        return len(self.data) // SIZES[self.dtype]


class Tensor:
    """A view of a Storage, as torch pickles it."""

    def __init__(self, storage, shape, stride=None, offset=0):
        self.storage, self.shape, self.offset = storage, tuple(shape), offset
        if stride is None:  # contiguous
            stride, n = [], 1
            for d in reversed(self.shape):
                stride.insert(0, n)
                n *= d
        self.stride = tuple(stride)

    @staticmethod
    def of(dtype, shape, values):
        """A contiguous tensor of the values (row-major)."""
        if dtype == "BF16":  # the top half of each float32
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        else:
            raw = struct.pack(f"<{len(values)}{FORMATS[dtype]}", *values)
        return Tensor(Storage(dtype, raw), shape)

    def transposed(self):
        """The last two dims swapped: same storage, strides swapped (not contiguous)."""
        s, st = list(self.shape), list(self.stride)
        s[-1], s[-2], st[-1], st[-2] = s[-2], s[-1], st[-2], st[-1]
        return Tensor(self.storage, s, st, self.offset)


def _fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise RuntimeError("fixture stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    return torch, utils


_TORCH, _UTILS = _fake_torch()


@contextlib.contextmanager
def _torch_globals():
    """The stand-in torch modules, where pickle looks globals up, while dumping."""
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = _TORCH, _UTILS
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _tensor_reduce(t):
    return (_UTILS._rebuild_tensor_v2,
            (t.storage, t.offset, t.shape, t.stride, False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def __init__(self, f, storage_type_name=None):
        super().__init__(f, protocol=2)  # torch's DEFAULT_PROTOCOL
        self.keys = {}  # id(storage) -> (key, storage), keys "0", "1", ... as torch numbers them
        self.storage_type_name = storage_type_name
        self.dispatch_table = {Tensor: _tensor_reduce}

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        if id(obj) not in self.keys:
            self.keys[id(obj)] = (str(len(self.keys)), obj)
        key = self.keys[id(obj)][0]
        name = self.storage_type_name or STORAGE_NAMES[obj.dtype]
        if not hasattr(_TORCH, name):
            setattr(_TORCH, name, type(name, (), {"__module__": "torch"}))
        return ("storage", getattr(_TORCH, name), key, "cpu", obj.numel)


def write_pth(path, obj, archive="archive", storage_type_name=None):
    """torch.save(obj, path) for obj built of dicts, lists, numbers, str and Tensor.
    storage_type_name overrides every storage's class (to test unknown types)."""
    buf = io.BytesIO()
    with _torch_globals():
        p = _Pickler(buf, storage_type_name)
        p.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", buf.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        for key, storage in p.keys.values():
            z.writestr(f"{archive}/data/{key}", storage.data)
        z.writestr(f"{archive}/version", "3\n")


def read_safetensors(path):
    """(metadata, {name: (dtype, shape, bytes)}) of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = (info["dtype"], list(info["shape"]), data[b:e])
    return meta, out


def values(dtype, raw):
    """The numbers in raw little-endian bytes of dtype."""
    if dtype == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    return list(struct.unpack(f"<{len(raw) // SIZES[dtype]}{FORMATS[dtype]}", raw))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a torch-format .pth from a .safetensors file.")
    ap.add_argument("output")
    ap.add_argument("input")
    ap.add_argument("--wrap", help="put the state dict under this key of a checkpoint dict")
    ap.add_argument("--prefix", default="", help="prepend to every tensor name (e.g. module.)")
    ap.add_argument("--half", action="store_true", help="store F32 tensors as F16")
    args = ap.parse_args(argv)
    _, tensors = read_safetensors(args.input)
    sd = collections.OrderedDict()
    for name, (dtype, shape, raw) in tensors.items():
        if args.half and dtype == "F32":
            t = Tensor.of("F16", shape, values("F32", raw))
        else:
            t = Tensor(Storage(dtype, raw), shape)
        sd[args.prefix + name] = t
    obj = {args.wrap: sd, "epoch": 1} if args.wrap else sd
    write_pth(args.output, obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
