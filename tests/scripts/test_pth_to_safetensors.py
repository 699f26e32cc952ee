#!/usr/bin/env python3
"""scripts/pth_to_safetensors.py on .pth files written in torch.save's exact
format by pth_fixture (no torch here): names, shapes and values back out of
the safetensors file, for contiguous, transposed, offset, F16 and BF16
tensors, wrapped checkpoints and DDP prefixes; one-line errors, a non-zero
exit and no output for bad input."""

import argparse
import collections
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "pth_to_safetensors.py")
sys.path.insert(0, HERE)
import pth_fixture as fx  # noqa: E402

T = fx.Tensor


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


class Converter(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def convert(self, obj, *extra, archive="archive"):
        src, dst = self.path("in.pth"), self.path("out.safetensors")
        fx.write_pth(src, obj, archive=archive)
        r = run(src, dst, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return fx.read_safetensors(dst)

    def expect_error(self, obj_or_path, text, *extra):
        src = obj_or_path if isinstance(obj_or_path, str) else self.path("bad.pth")
        if not isinstance(obj_or_path, str):
            fx.write_pth(src, obj_or_path)
        dst = self.path("never.safetensors")
        r = run(src, dst, *extra)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(text, r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)  # one line, no traceback
        self.assertFalse(os.path.exists(dst))
        self.assertEqual([n for n in os.listdir(self.dir) if n.startswith(".pth_to")], [])

    def test_values_shapes_and_layouts(self):
        w = T.of("F32", (2, 3), [1, 2, 3, 4, 5, 6])
        qkv = T.of("F32", (6,), [10, 11, 12, 13, 14, 15])
        sd = collections.OrderedDict([
            ("blocks.0.attn.qkv.weight", w),
            ("blocks.0.mlp.fc1.weight", w.transposed()),  # shares w's storage, strided
            ("blocks.0.attn.qkv.bias", T(qkv.storage, (2,), (1,), offset=3)),  # a view at an offset
            ("blocks.0.norm1.weight", T(qkv.storage, (3,), (2,), offset=0)),  # every other element
            ("cls_token", T.of("F16", (1, 1, 3), [0.5, -1.5, 2.0])),
            ("pos_embed", T.of("BF16", (1, 2, 2), [1.0, -2.0, 0.25, 3.0])),
            ("scalar", T.of("F64", (), [2.5])),
            ("head.bias", T.of("F32", (0,), [])),
        ])
        meta, out = self.convert(sd)
        self.assertEqual(meta, {"format": "pt"})
        self.assertEqual(set(out), set(sd))
        expect = {
            "blocks.0.attn.qkv.weight": ("F32", [2, 3], [1, 2, 3, 4, 5, 6]),
            "blocks.0.mlp.fc1.weight": ("F32", [3, 2], [1, 4, 2, 5, 3, 6]),
            "blocks.0.attn.qkv.bias": ("F32", [2], [13, 14]),
            "blocks.0.norm1.weight": ("F32", [3], [10, 12, 14]),
            "cls_token": ("F16", [1, 1, 3], [0.5, -1.5, 2.0]),
            "pos_embed": ("BF16", [1, 2, 2], [1.0, -2.0, 0.25, 3.0]),
            "scalar": ("F64", [], [2.5]),
            "head.bias": ("F32", [0], []),
        }
        for name, (dtype, shape, vals) in expect.items():
            got = out[name]
            self.assertEqual(got[0], dtype, name)
            self.assertEqual(got[1], shape, name)
            self.assertEqual(fx.values(dtype, got[2]), vals, name)

    def test_file_layout_is_the_safetensors_crates(self):
        sd = {"b": T.of("F16", (3,), [1, 2, 3]), "a": T.of("F32", (1,), [1]),
              "c": T.of("F64", (1,), [1]), "d": T.of("F32", (2,), [1, 2])}
        self.convert(sd)
        with open(self.path("out.safetensors"), "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        self.assertEqual(n % 8, 0)  # header padded with spaces to 8 bytes
        header = json.loads(raw[8:8 + n])
        self.assertEqual(next(iter(header)), "__metadata__")
        # Larger dtypes first, then by name: every tensor aligned to its element size.
        order = sorted((k for k in header if k != "__metadata__"),
                       key=lambda k: header[k]["data_offsets"][0])
        self.assertEqual(order, ["c", "a", "d", "b"])

    def test_wrapped_checkpoints_and_prefixes(self):
        # Other entries (an argparse.Namespace of the run's options) are read inert, not run.
        sd = collections.OrderedDict([("module.head.weight", T.of("F32", (1, 2), [1, 2])),
                                      ("module.pre_logits.fc.bias", T.of("F32", (1,), [3]))])
        for obj in ({"state_dict": sd, "epoch": 7},
                    {"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}},
                    {"model_state_dict": sd, "best_acc": 0.5,
                     "args": argparse.Namespace(lr=0.1, model="vit_base_patch16_224")}):
            _, out = self.convert(obj)
            self.assertEqual(sorted(out), ["head.weight", "pre_logits.fc.bias"])
        # 'model.' (Lightning) and torch.compile's '_orig_mod.' on top of 'module.'
        nested = {"model._orig_mod." + k[len("module."):]: v for k, v in sd.items()}
        _, out = self.convert(nested)
        self.assertEqual(sorted(out), ["head.weight", "pre_logits.fc.bias"])
        # A prefix only some names carry is a real name: kept.
        mixed = {"module.x": T.of("F32", (1,), [1]), "y": T.of("F32", (1,), [2])}
        _, out = self.convert(mixed)
        self.assertEqual(sorted(out), ["module.x", "y"])
        # --key picks an entry; an EMA copy beside the model, say.
        _, out = self.convert({"model": sd, "model_ema": {"head.weight": T.of("F32", (1,), [9])}},
                              "--key", "model_ema")
        self.assertEqual(fx.values("F32", out["head.weight"][2]), [9])
        # torch < 2 names the archive folder after the file: any folder works.
        _, out = self.convert(sd, archive="in")
        self.assertEqual(len(out), 2)

    def test_float32_option(self):
        sd = {"h": T.of("F16", (2,), [0.5, -3.0]), "b": T.of("BF16", (1,), [1.5]),
              "d": T.of("F64", (1,), [0.1]), "i": T.of("I64", (2,), [1, -2])}
        _, out = self.convert(sd, "--float32")
        self.assertEqual({k: v[0] for k, v in out.items()}, {"h": "F32", "b": "F32", "d": "F32", "i": "I64"})
        self.assertEqual(fx.values("F32", out["h"][2]), [0.5, -3.0])
        self.assertEqual(fx.values("F32", out["b"][2]), [1.5])
        self.assertEqual(fx.values("F32", out["d"][2]), [struct.unpack("<f", struct.pack("<f", 0.1))[0]])
        self.assertEqual(fx.values("I64", out["i"][2]), [1, -2])

    def test_bad_input(self):
        text = self.path("notes.txt")
        with open(text, "w") as f:
            f.write("hello, not a checkpoint\n")
        self.expect_error(text, "not a PyTorch checkpoint")
        legacy = self.path("legacy.pth")
        with open(legacy, "wb") as f:
            f.write(b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.")
        self.expect_error(legacy, "legacy (pre-1.6) format")
        self.expect_error(self.path("missing.pth"), "no such file")
        empty_zip = self.path("empty.zip")
        with zipfile.ZipFile(empty_zip, "w") as z:
            z.writestr("readme.txt", "x")
        self.expect_error(empty_zip, "without torch.save's data.pkl")
        broken = self.path("broken.pth")
        with zipfile.ZipFile(broken, "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x02garbage")
        self.expect_error(broken, "not a readable pickle")
        # Unknown storage types (quantized, complex) are named.
        bad = self.path("qint.pth")
        fx.write_pth(bad, {"w": T.of("F32", (1,), [1])}, storage_type_name="QInt8Storage")
        self.expect_error(bad, "unknown tensor type torch.QInt8Storage")
        # A storage record shorter than the tensor needs.
        short = T(fx.Storage("F32", b"\0" * 8), (4,))
        self.expect_error({"w": short}, "reaches element 3 of a storage of 2 elements")
        self.expect_error({"epoch": 3, "args": [1, 2]}, "no state dict found (top-level keys: args, epoch)")
        self.expect_error({"model": {"w": T.of("F32", (1,), [1])}}, "no entry 'ema'", "--key", "ema")
        self.expect_error([T.of("F32", (1,), [1])], "holds a list, not a state dict")

    def test_existing_output_survives_a_failure(self):
        dst = self.path("keep.safetensors")
        with open(dst, "wb") as f:
            f.write(b"old")
        bad = self.path("bad.txt")
        with open(bad, "w") as f:
            f.write("x")
        r = run(bad, dst)
        self.assertEqual(r.returncode, 1)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), b"old")

    def test_help(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--init", r.stdout)
        self.assertIn("--key", r.stdout)

    def test_fixture_cli_round_trip(self):
        # safetensors -> .pth (wrapped, DDP prefix, F16) -> safetensors, as the CLI test does.
        sd = {"head.weight": T.of("F32", (2, 2), [1, 2, 3, 4]), "head.bias": T.of("F32", (2,), [5, 6])}
        st = self.path("orig.safetensors")
        fx.write_pth(self.path("orig.pth"), sd)
        self.assertEqual(run(self.path("orig.pth"), st).returncode, 0)
        pth = self.path("round.pth")
        r = subprocess.run([sys.executable, os.path.join(HERE, "pth_fixture.py"), pth, st,
                            "--wrap", "state_dict", "--prefix", "module.", "--half"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        back = self.path("back.safetensors")
        r = run(pth, back, "--float32", "--quiet")
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        _, a = fx.read_safetensors(st)
        _, b = fx.read_safetensors(back)
        self.assertEqual(a, b)


if __name__ == "__main__":
    unittest.main()
