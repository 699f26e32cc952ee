#!/usr/bin/env python3
"""Convert a PyTorch state dict (.pth, torch.save's zip format) to safetensors.

    python3 scripts/pth_to_safetensors.py IN.pth OUT.safetensors

The result is what `vit train --init` (and timm, safetensors.torch) loads:
tensors under their timm names, dtypes kept (F32, F16, BF16 ... as saved),
non-contiguous tensors written contiguous, __metadata__ {"format": "pt"}.

Accepted inputs: a plain state dict (model.state_dict()), or a training
checkpoint dict holding one under 'state_dict', 'model', 'model_state_dict'
or 'module' (or the key named by --key). Names: timm's, and the fine-tuning
tutorial's vit_model.py (timm 0.4 names: patch_embed.proj, blocks.N.attn.qkv,
pre_logits.fc, head ...) pass through; the prefixes DistributedDataParallel
('module.'), wrappers such as Lightning ('model.') and torch.compile
('_orig_mod.') put on every name are removed.

Needs no torch: the archive is read with zipfile and its pickle with an
unpickler that knows only the few torch globals a state dict holds (tensors,
storages) and never imports or runs anything else. Anything unknown outside
the tensors (argparse.Namespace, numpy scalars in a checkpoint) is read as an
inert placeholder. The output is written to a temporary file and renamed, so
a failed conversion leaves nothing behind.
"""

import argparse
import collections
import json
import os
import pickle
import struct
import sys
import tempfile
import zipfile

# torch storage class -> (safetensors dtype, element size)
STORAGE_DTYPES = {
    "FloatStorage": ("F32", 4),
    "DoubleStorage": ("F64", 8),
    "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2),
    "CharStorage": ("I8", 1),
    "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
}
# The safetensors crate's dtype order: it writes larger types first (then by
# name), which keeps every tensor aligned to its element size.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
               "I32", "U32", "F32", "F64", "I64", "U64"]
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
STRIPPED_PREFIXES = ("module.", "model.", "_orig_mod.")


class ConvertError(Exception):
    """A problem with the input, reported as one line."""


class StorageType:
    def __init__(self, name):
        self.name = name


class Storage:
    def __init__(self, stype, data, numel):
        self.stype, self.data, self.numel = stype, data, numel


class Tensor:
    """A tensor read from the archive: dtype, shape and contiguous little-endian bytes."""

    def __init__(self, dtype, shape, data):
        self.dtype, self.shape, self.data = dtype, list(shape), data


class Placeholder:
    """Anything pickled that is not a tensor: kept inert, never called."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _placeholder_class(module, name):
    return type(name, (Placeholder,), {"__module__": "placeholder." + module})


def _contiguous(storage, offset, shape, stride, what):
    """The bytes of the strided view (offset, shape, stride) of storage, row-major."""
    dtype, size = STORAGE_DTYPES[storage.stype.name]
    numel = 1
    for n in shape:
        numel *= n
    if numel == 0:
        return b""
    if len(stride) != len(shape) or any(s < 0 for s in stride) or offset < 0:
        raise ConvertError(f"{what}: bad strides {tuple(stride)} for shape {tuple(shape)}")
    last = offset + sum((n - 1) * s for n, s in zip(shape, stride))
    if last >= storage.numel or len(storage.data) < storage.numel * size:
        raise ConvertError(f"{what}: its view reaches element {last} of a storage of "
                           f"{min(storage.numel, len(storage.data) // size)} elements")
    data = storage.data
    # Contiguous (the usual case): one slice.
    expected, contiguous = 1, True
    for n, s in zip(reversed(shape), reversed(stride)):
        if n != 1 and s != expected:
            contiguous = False
        expected *= n
    if contiguous:
        return bytes(data[offset * size:(offset + numel) * size])
    # Strided: copy runs along the last dim (whole rows when its stride is 1).
    out = bytearray()
    inner_n, inner_s = shape[-1], stride[-1]
    outer = shape[:-1]
    index = [0] * len(outer)
    while True:
        base = offset + sum(i * s for i, s in zip(index, stride))
        if inner_s == 1:
            out += data[base * size:(base + inner_n) * size]
        else:
            for k in range(inner_n):
                p = (base + k * inner_s) * size
                out += data[p:p + size]
        d = len(outer) - 1
        while d >= 0:
            index[d] += 1
            if index[d] < outer[d]:
                break
            index[d] = 0
            d -= 1
        if d < 0:
            return bytes(out)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, Storage):
        raise ConvertError("a tensor in the pickle does not point at a storage record")
    dtype = STORAGE_DTYPES[storage.stype.name][0]
    return Tensor(dtype, size, _contiguous(storage, storage_offset, list(size), list(stride),
                                           f"tensor of shape {tuple(size)}"))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    return func(*args)


class TorchUnpickler(pickle.Unpickler):
    """Reads torch.save's data.pkl; storages come from the archive's data/ records."""

    SAFE_GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Size"): tuple,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
    }

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        known = self.SAFE_GLOBALS.get((module, name))
        if known is not None:
            return known
        if module == "_codecs" and name == "encode":  # how protocol 2 pickles bytes
            return lambda text, encoding="utf-8": text.encode(encoding)
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        if module.startswith("torch") and "rebuild" in name:
            raise ConvertError(f"unknown tensor type {module}.{name} (only dense CPU/GPU "
                               "tensors convert; sparse, quantized and nested ones do not)")
        return _placeholder_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ConvertError(f"unexpected persistent id {pid!r:.60} (not a torch storage)")
        stype, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(stype, StorageType):
            raise ConvertError(f"storage {key} has no storage type")
        if stype.name not in STORAGE_DTYPES:
            raise ConvertError(f"unknown tensor type torch.{stype.name} (safetensors and vit take "
                               f"{', '.join(sorted(STORAGE_DTYPES))})")
        if key not in self.storages:
            record = f"{self.prefix}data/{key}"
            try:
                data = self.archive.read(record)
            except KeyError:
                raise ConvertError(f"storage record '{record}' is missing from the archive") from None
            self.storages[key] = Storage(stype, data, int(numel))
        return self.storages[key]


def _byteswap(t):
    size = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4,
            "F16": 2, "BF16": 2, "I16": 2, "U16": 2}.get(t.dtype, 1)
    if size > 1:
        b = t.data
        t.data = b"".join(b[i:i + size][::-1] for i in range(0, len(b), size))


def load_pth(path):
    """The unpickled top-level object of a torch.save zip file; tensors as Tensor."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(16)
        if head.startswith(b"\x80") and len(head) > 1 and head[1] <= 5:
            raise ConvertError(f"{path}: a pickle in torch's legacy (pre-1.6) format; re-save it "
                               "with torch.save from torch >= 1.6")
        if head.startswith(b"PK"):
            raise ConvertError(f"{path}: a damaged zip archive")
        raise ConvertError(f"{path}: not a PyTorch checkpoint (torch.save writes a zip archive; "
                           "this file is not one)")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ConvertError(f"{path}: a damaged zip archive ({e})") from None
    with archive:
        pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        pickles = [n for n in pickles if n.count("/") <= 1]
        if len(pickles) != 1:
            if any(n.endswith("constants.pkl") for n in archive.namelist()):
                raise ConvertError(f"{path}: a TorchScript archive, not a state dict "
                                   "(save model.state_dict() instead)")
            raise ConvertError(f"{path}: a zip archive without torch.save's data.pkl")
        prefix = pickles[0][:-len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in archive.namelist():
            big_endian = archive.read(prefix + "byteorder").strip() == b"big"
        try:
            with archive.open(pickles[0]) as f:
                obj = TorchUnpickler(f, archive, prefix).load()
        except ConvertError as e:
            raise ConvertError(f"{path}: {e}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, zipfile.BadZipFile) as e:
            raise ConvertError(f"{path}: its data.pkl is not a readable pickle "
                               f"({type(e).__name__}: {e})") from None
    if big_endian:
        _walk_tensors(obj, _byteswap)
    return obj


def _walk_tensors(obj, fn):
    if isinstance(obj, Tensor):
        fn(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _walk_tensors(v, fn)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _walk_tensors(v, fn)


def _is_state_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0 and
            all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()))


def find_state_dict(obj, key=None):
    """The state dict in obj: obj itself, or obj[key] / a usual wrapper key."""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            keys = sorted(map(str, obj.keys())) if isinstance(obj, dict) else []
            raise ConvertError(f"no entry '{key}' at the top level (keys: {', '.join(keys) or 'none'})")
        if not _is_state_dict(obj[key]):
            raise ConvertError(f"entry '{key}' is not a state dict (a dict of name -> tensor)")
        return obj[key]
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        for k in WRAPPER_KEYS:
            if k in obj and _is_state_dict(obj[k]):
                return obj[k]
        keys = ", ".join(sorted(map(str, obj.keys()))) or "none"
        raise ConvertError(f"no state dict found (top-level keys: {keys}); name the entry "
                           "holding one with --key")
    raise ConvertError(f"the file holds a {type(obj).__name__}, not a state dict")


def timm_names(sd):
    """Names as vit/timm load them: wrapper prefixes put on every name removed."""
    names = list(sd)
    stripped = True
    while stripped:
        stripped = False
        for p in STRIPPED_PREFIXES:
            if names and all(n.startswith(p) for n in names):
                names = [n[len(p):] for n in names]
                stripped = True
    out = collections.OrderedDict()
    for old, new in zip(sd, names):
        if new in out:
            raise ConvertError(f"two tensors map to the name '{new}'")
        out[new] = sd[old]
    return out


def _to_float32(t):
    n = len(t.data)
    if t.dtype == "F32":
        return
    if t.dtype == "F16":
        vals = struct.unpack(f"<{n // 2}e", t.data)
    elif t.dtype == "BF16":  # bfloat16 is the top half of a float32: exact
        t.data = b"".join(b"\0\0" + t.data[i:i + 2] for i in range(0, n, 2))
        t.dtype = "F32"
        return
    elif t.dtype == "F64":
        vals = struct.unpack(f"<{n // 8}d", t.data)
    else:
        return  # integer and bool tensors stay as they are
    t.data = struct.pack(f"<{len(vals)}f", *vals)
    t.dtype = "F32"


def safetensors_bytes(tensors, metadata=None):
    """The file image: u64 header length, JSON header (padded to 8 bytes), data."""
    order = sorted(tensors, key=lambda n: (-DTYPE_ORDER.index(tensors[n].dtype), n))
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name in order:
        t = tensors[name]
        header[name] = {"dtype": t.dtype, "shape": t.shape,
                        "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return [struct.pack("<Q", len(text)), text] + [tensors[n].data for n in order]


def write_atomic(path, chunks):
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pth_to_safetensors.", dir=directory)
    except OSError as e:
        raise ConvertError(f"{path}: cannot write there ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def convert(src, dst, key=None, float32=False):
    """Converts src (.pth) to dst (.safetensors); returns the tensors written."""
    obj = load_pth(src)
    try:
        sd = timm_names(find_state_dict(obj, key))
    except ConvertError as e:
        raise ConvertError(f"{src}: {e}") from None
    if float32:
        for t in sd.values():
            _to_float32(t)
    write_atomic(dst, safetensors_bytes(sd, {"format": "pt"}))
    return sd


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="pth_to_safetensors.py",
        description="Convert a PyTorch .pth state dict (timm or tutorial ViT names) to a "
                    "safetensors file that `vit train --init` loads. Needs no torch.",
        epilog="example: python3 scripts/pth_to_safetensors.py vit_base_patch16_224_in21k.pth "
               "in21k.safetensors && vit train --model vit-b16 --init in21k.safetensors ...")
    ap.add_argument("input", help="the .pth / .pt / .bin file written by torch.save")
    ap.add_argument("output", help="the .safetensors file to write (replaced atomically)")
    ap.add_argument("--key", help="the top-level entry holding the state dict (default: the "
                    "file itself, else one of " + ", ".join(WRAPPER_KEYS) + ")")
    ap.add_argument("--float32", action="store_true",
                    help="widen F16/BF16 and round F64 tensors to F32 (default: keep dtypes)")
    ap.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = ap.parse_args(argv)
    try:
        sd = convert(args.input, args.output, args.key, args.float32)
    except ConvertError as e:
        print(f"pth_to_safetensors: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pth_to_safetensors: error: {e.filename or args.output}: {e.strerror}",
              file=sys.stderr)
        return 1
    if not args.quiet:
        count = sum(_numel(t.shape) for t in sd.values())
        dtypes = sorted({t.dtype for t in sd.values()})
        print(f"{args.output}: {len(sd)} tensors, {count} values ({', '.join(dtypes)})")
    return 0


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


if __name__ == "__main__":
    sys.exit(main())
