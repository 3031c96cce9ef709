"""Writes the file-format fixtures of src/util/{zip,npy,torchCheckpoint}.test.ts into test/fixtures/io_*:
checkpoints written by torch.save (PyTorch's zip format, and its legacy format of torch < 1.6), .npy / .npz files
written by numpy, ZIP archives written by Python's zipfile or assembled here byte by byte (ZIP64), hand-assembled
hostile pickles, and the expected values as JSON (made by torch / numpy / zipfile, never by the TypeScript code
under test).

Run (from anywhere; a few seconds):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OMP_NUM_THREADS=1 /usr/bin/python3 reference/make_io_fixtures.py

Deterministic: re-running rewrites byte-identical files (torch.save's zip writer uses a fixed timestamp and
numbered storage keys; its legacy writer's address keys are renumbered, see numbered_storage_keys; zipfile
entries get a fixed date). Every hand-assembled file is checked here against
the reference reader: torch.load(weights_only=True) for the pickles (it must load the benign ones and refuse
the hostile ones, so nothing in them ever runs), zipfile and `unzip -t` for the ZIP64 archive.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import types
import zipfile
import zlib

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import fnv1a32, hash_u32, hash_uniform  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "fixtures")
GENERATOR = "reference/make_io_fixtures.py"
# What the hostile pickles would run under Python's pickle module; the tests check the file never appears.
HOSTILE_MARKER = "/tmp/ddpm-ts-hostile-pickle-ran"


def out(name: str) -> str:
    return os.path.join(OUT_DIR, name)


def write_bytes(name: str, data: bytes) -> None:
    with open(out(name), "wb") as f:
        f.write(data)


def write_json(name: str, obj) -> None:
    with open(out(name), "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")


def f32_values(name: str, n: int, scale: float = 1.0) -> np.ndarray:
    return hash_uniform(fnv1a32(name), n, scale)


def f64_values(name: str, n: int, scale: float = 1.0) -> np.ndarray:
    """Float64 values that are not float32 numbers: ((hashU32 / 2^32) * 2 - 1) * scale / 3."""
    u = hash_u32(fnv1a32(name), np.arange(n, dtype=np.uint64)).astype(np.float64)
    return ((u / 4294967296.0) * 2.0 - 1.0) * scale / 3.0


# ----------------------------------------------------------------------------------------------------------
# torch.save checkpoints


def make_state_dict() -> "collections.OrderedDict[str, object]":
    """A conv + BatchNorm state_dict (with _metadata, so the pickle has BUILD) plus every case the reader handles."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    sd = model.state_dict()
    for name, t in sd.items():
        if t.dtype == torch.float32:
            t.copy_(torch.from_numpy(f32_values(name, t.numel())).reshape(t.shape))
    sd["1.running_var"].add_(1.5)
    sd["1.num_batches_tracked"].fill_(7)  # int64, 0-d
    sd["extra.f64"] = torch.from_numpy(f64_values("extra.f64", 6)).reshape(2, 3)
    sd["extra.f16"] = torch.tensor([65504.0, -(2.0**-24), 2.0**-14, 0.1, -1.5, 0.0], dtype=torch.float16)
    sd["extra.bf16"] = torch.tensor([1.0078125, -3.0e38, 1.0e-30, 0.3], dtype=torch.bfloat16)
    sd["extra.i32"] = torch.tensor([[-5, 2147483647], [-2147483648, 12]], dtype=torch.int32)
    base = torch.from_numpy(f32_values("extra.view.base", 30)).reshape(5, 6)
    sd["extra.view"] = base[1:4, 2:6].t()  # size (4, 3), stride (1, 6), offset 8 of a 30-element storage
    shared = torch.from_numpy(f32_values("extra.shared", 8))
    sd["extra.shared_a"] = shared[:4]
    sd["extra.shared_b"] = shared[2:].view(2, 3)  # offset 2 of the same storage
    sd["extra.expand"] = torch.tensor([1.0, -2.0, 3.5]).expand(2, 3)  # stride (0, 1)
    sd["extra.empty"] = torch.zeros(0, 3)
    sd["extra.param"] = nn.Parameter(torch.from_numpy(f32_values("extra.param", 3)))
    sd["nested"] = {"inner": {"w": torch.from_numpy(f32_values("nested.inner.w", 4)).reshape(2, 2)}, "b": torch.tensor(3.25)}
    return sd


def flat_tensors(d, prefix=""):
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            yield from flat_tensors(v, name)
        elif isinstance(v, torch.Tensor):
            yield name, v


def tensor_record(name: str, t: torch.Tensor) -> dict:
    return {
        "name": name,
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "float32": t.detach().float().contiguous().flatten().tolist(),
    }


def numbered_storage_keys():
    """A pickle module for torch.save's legacy writer that names the storages '0', '1', ... in the order the main
    pickle meets them. torch names them by memory address (str(storage._cdata)) and writes the storages in the
    order of those names, so its own output changes from run to run. Returns the module and a record of what
    the writer did: `blocks`, the new keys in the order torch wrote the storages; `sizes`, each storage's
    (numel, element size); `tail`, where the storages begin."""
    renamed: dict = {}
    record: dict = {"sizes": {}}

    class Pickler(pickle.Pickler):
        # torch assigns pickler.persistent_id after construction; the C pickler looks the attribute up when it is
        # constructed, so the property hands it a function that calls whatever torch assigns later.
        @property
        def persistent_id(self):
            def renaming(obj):
                pid = self.torch_persistent_id(obj)
                if not (isinstance(pid, tuple) and pid[0] == "storage"):
                    return pid
                assert pid[5] is None, "current torch writes no storage views"
                key = renamed.setdefault(pid[2], str(len(renamed)))
                record["sizes"][key] = (pid[4], torch._utils._element_size(pid[1].dtype))
                return pid[:2] + (key,) + pid[3:]

            return renaming

        @persistent_id.setter
        def persistent_id(self, fn):
            self.torch_persistent_id = fn

    def dump(obj, f, protocol):
        if isinstance(obj, list):  # the storage keys, in the order torch then writes the storages
            record["blocks"] = [renamed[k] for k in obj]
            obj = sorted(record["blocks"])
        pickle.dump(obj, f, protocol=protocol)
        record["tail"] = f.tell()

    return types.SimpleNamespace(__name__="numbered_storage_keys", Pickler=Pickler, dump=dump), record


def legacy_save(obj, name: str) -> None:
    """torch.save(obj, _use_new_zipfile_serialization=False), with the storages renamed by
    numbered_storage_keys and their raw records (8-byte count + data) put in the order of the new key list."""
    module, record = numbered_storage_keys()
    f = io.BytesIO()
    torch.save(obj, f, pickle_module=module, _use_new_zipfile_serialization=False)
    data = f.getvalue()
    head, pos, blocks = data[: record["tail"]], record["tail"], {}
    for key in record["blocks"]:
        numel, size = record["sizes"][key]
        assert struct.unpack_from("<q", data, pos)[0] == numel
        blocks[key] = data[pos : pos + 8 + numel * size]
        pos += 8 + numel * size
    assert pos == len(data)
    with open(out(name), "wb") as g:
        g.write(head + b"".join(blocks[k] for k in sorted(blocks)))


def make_checkpoints() -> None:
    sd = make_state_dict()
    torch.save(sd, out("io_state_dict.pth"))  # protocol 2 (torch.save's default)
    checkpoint = {"state_dict": sd, "epoch": 3, "best": 0.5, "note": "not a tensor"}
    torch.save(checkpoint, out("io_checkpoint_p4.pth"), pickle_protocol=4)  # FRAME, STACK_GLOBAL, MEMOIZE
    legacy_save(sd, "io_state_dict_legacy.pth")  # torch.save's format before 1.6, protocol 2
    for file, expect in (("io_state_dict.pth", sd), ("io_checkpoint_p4.pth", checkpoint),
                         ("io_state_dict_legacy.pth", sd)):
        loaded = torch.load(out(file))  # our own files (torch 1.13's weights_only reader lacks FRAME)
        got = loaded["state_dict"] if "state_dict" in loaded else loaded
        assert [n for n, _ in flat_tensors(got)] == [n for n, _ in flat_tensors(sd)], file
        for (_, a), (_, b) in zip(flat_tensors(got), flat_tensors(sd)):
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), file
    records = [tensor_record(n, t) for n, t in flat_tensors(sd)]
    assert records[-1]["name"] == "nested.b"
    write_json(
        "io_state_dict.json",
        {
            "generator": GENERATOR,
            "torch": torch.__version__.split("+")[0],
            "files": ["io_state_dict.pth", "io_checkpoint_p4.pth", "io_state_dict_legacy.pth"],
            "rule": "tensors in state-dict order, nested dicts joined with '.'; float32 = torch's t.float(), "
            "row-major; io_checkpoint_p4.pth holds the same state dict under 'state_dict' (pickle protocol 4); "
            "io_state_dict_legacy.pth is the same state dict in torch.save's legacy (pre-1.6) format",
            "tensors": records,
        },
    )


# Hand-assembled pickles (protocol 2 opcodes), for the files torch.save would never write.

def p_str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def p_short_str(s: str) -> bytes:
    return b"\x8c" + bytes([len(s)]) + s.encode()


def p_int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def p_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def p_tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def p_tensor(key: str, storage_type: str, numel: int, offset: int, size, stride, legacy_view: bytes = b"") -> bytes:
    """A _rebuild_tensor_v2 call. The legacy format's persistent id has a sixth item, view_metadata: pass its
    pickle as legacy_view (b"N" for None)."""
    pid = p_tuple([p_str("storage"), p_global("torch", storage_type), p_str(key), p_str("cpu"), p_int(numel)]
                  + ([legacy_view] if legacy_view else []))
    args = [pid + b"Q", p_int(offset), p_tuple(map(p_int, size)), p_tuple(map(p_int, stride)), b"\x89",
            p_global("collections", "OrderedDict") + b")R"]
    return p_global("torch._utils", "_rebuild_tensor_v2") + p_tuple(args) + b"R"


def p_state_dict(items) -> bytes:
    body = b"".join(p_str(name) + value for name, value in items)
    return b"\x80\x02" + p_global("collections", "OrderedDict") + b")R(" + body + b"u."


def write_torch_zip(name: str, pkl: bytes, storages: dict) -> None:
    """The torch.save layout (<name>/data.pkl, <name>/data/<key>, <name>/version) by torch's own zip writer."""
    writer = torch._C.PyTorchFileWriter(out(name))
    writer.write_record("data.pkl", pkl, len(pkl))
    for key, data in storages.items():
        writer.write_record(f"data/{key}", data, len(data))
    writer.write_end_of_file()
    del writer


def torch_refuses(name: str, expect: type) -> str:
    try:
        torch.load(out(name), weights_only=True)
    except expect as e:  # noqa: PERF203
        return str(e).split("WeightsUnpickler error: ")[-1].splitlines()[0][:120]
    raise AssertionError(f"torch.load accepted {name}")


def forbidden_global(name: str) -> str:
    """The first global outside the tensor allow-list that data.pkl asks for, from Python's own unpickler
    with a find_class that resolves only inert stand-ins (so nothing can run)."""
    inert = {"collections.OrderedDict": dict, "torch._utils._rebuild_tensor_v2": lambda *args: None,
             "torch.FloatStorage": None}

    class Probe(pickle.Unpickler):
        def find_class(self, module, qualname):
            if f"{module}.{qualname}" in inert:
                return inert[f"{module}.{qualname}"]
            raise pickle.UnpicklingError(f"{module}.{qualname}")

        def persistent_load(self, pid):
            return None

    with zipfile.ZipFile(out(name)) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    try:
        Probe(io.BytesIO(pkl)).load()
    except pickle.UnpicklingError as e:
        return str(e)
    raise AssertionError(f"{name} asks for no global")


def make_hand_made_checkpoints() -> dict:
    four = np.arange(4, dtype=np.float32).tobytes()
    # The assembler first: a benign file must load in torch with the expected tensor.
    write_torch_zip("io_tmp_check.pth", p_state_dict([("w", p_tensor("0", "FloatStorage", 4, 1, (3,), (1,)))]), {"0": four})
    assert torch.equal(torch.load(out("io_tmp_check.pth"), weights_only=True)["w"], torch.tensor([1.0, 2.0, 3.0]))
    os.remove(out("io_tmp_check.pth"))

    # The other rebuild functions, by hand: torch._utils._rebuild_tensor (4 arguments, older torch);
    # torch._tensor._rebuild_from_type_v2 (torch >= 2.0 writes it for a plain tensor with attributes; 1.13 only
    # for subclasses); torch._utils._rebuild_parameter_with_state (torch >= 2.0, so 1.13 checks the first two).
    storage = f64_values("variants", 6)
    double_pid = p_tuple([p_str("storage"), p_global("torch", "DoubleStorage"), p_str("0"), p_str("cpu"), p_int(6)])
    old = ("old", p_global("torch._utils", "_rebuild_tensor") + p_tuple([
        double_pid + b"Q", p_int(1), p_tuple([p_int(2), p_int(2)]), p_tuple([p_int(1), p_int(2)])]) + b"R")
    v2_args = p_tuple([double_pid + b"Q", p_int(4), p_tuple([p_int(2)]), p_tuple([p_int(1)]), b"\x89",
                       p_global("collections", "OrderedDict") + b")R"])
    from_type = ("from_type", p_global("torch._tensor", "_rebuild_from_type_v2") + p_tuple([
        p_global("torch._utils", "_rebuild_tensor_v2"), p_global("torch", "Tensor"), v2_args,
        b"}" + p_str("note") + p_str("an attribute") + b"s"]) + b"R")
    with_state = ("with_state", p_global("torch._utils", "_rebuild_parameter_with_state") + p_tuple([
        p_tensor("0", "DoubleStorage", 6, 0, (3,), (2,)), b"\x88", p_global("collections", "OrderedDict") + b")R",
        b"}"]) + b"R")
    write_torch_zip("io_tmp_check.pth", p_state_dict([old, from_type]), {"0": storage.tobytes()})
    checked = torch.load(out("io_tmp_check.pth"))  # our own file: torch functions only
    os.remove(out("io_tmp_check.pth"))
    old_numpy = np.lib.stride_tricks.as_strided(storage[1:], (2, 2), (8, 16))
    assert np.array_equal(checked["old"].numpy(), old_numpy)
    assert np.array_equal(checked["from_type"].numpy(), storage[4:6])  # (1.13 drops the state of a plain Tensor)
    write_torch_zip("io_rebuild_variants.pth", p_state_dict([old, from_type, with_state]), {"0": storage.tobytes()})
    variants = {
        "old": {"shape": [2, 2], "float32": old_numpy.astype(np.float32).flatten().tolist()},
        "from_type": {"shape": [2], "float32": storage[4:6].astype(np.float32).tolist()},
        "with_state": {"shape": [3], "float32": storage[0::2].astype(np.float32).tolist()},
    }

    refusals = {}
    ok_tensor = ("ok.weight", p_tensor("0", "FloatStorage", 4, 0, (2, 2), (2, 1)))
    system = p_global("os", "system") + p_tuple([p_str(f"touch {HOSTILE_MARKER}")]) + b"R"
    write_torch_zip("io_hostile_os_system.pth", p_state_dict([ok_tensor, ("evil", system)]), {"0": four})
    refusals["io_hostile_os_system.pth"] = torch_refuses("io_hostile_os_system.pth", pickle.UnpicklingError)

    # protocol 4 spelling: STACK_GLOBAL with the names on the stack, as the top-level object
    code = f"__import__('os').system('touch {HOSTILE_MARKER}')"
    eval_pkl = b"\x80\x04" + p_short_str("builtins") + p_short_str("eval") + b"\x93" + p_str(code) + b"\x85R."
    write_torch_zip("io_hostile_eval.pth", eval_pkl, {})
    # torch 1.13's weights_only reader stops at the protocol-4 opcodes; Python's own sees the global.
    refusals["io_hostile_eval.pth"] = torch_refuses("io_hostile_eval.pth", pickle.UnpicklingError)
    assert forbidden_global("io_hostile_eval.pth") == "builtins.eval"
    assert forbidden_global("io_hostile_os_system.pth") == "os.system"

    overflow = p_state_dict([("big", p_tensor("0", "FloatStorage", 4, 0, (3, 3), (3, 1)))])
    write_torch_zip("io_tensor_overflow.pth", overflow, {"0": four})
    refusals["io_tensor_overflow.pth"] = torch_refuses("io_tensor_overflow.pth", pickle.UnpicklingError)

    missing = p_state_dict([ok_tensor, ("lost", p_tensor("1", "FloatStorage", 4, 0, (4,), (1,)))])
    write_torch_zip("io_storage_missing.pth", missing, {"0": four})
    refusals["io_storage_missing.pth"] = torch_refuses("io_storage_missing.pth", pickle.UnpicklingError)

    short_storage = p_state_dict([("w", p_tensor("0", "FloatStorage", 9, 0, (3, 3), (3, 1)))])
    write_torch_zip("io_storage_short.pth", short_storage, {"0": four})
    # torch 1.13 does not check this one: it returns 9 values, 5 of them read past the 16-byte record.
    assert torch.load(out("io_storage_short.pth"), weights_only=True)["w"].numel() == 9

    me: dict = {}
    me["me"] = me
    write_torch_zip("io_self_reference.pth", pickle.dumps(me, protocol=2), {})
    write_json("io_rebuild_variants.json", {"generator": GENERATOR, "file": "io_rebuild_variants.pth",
                                            "tensors": variants})
    return refusals


def legacy_stream(main_pickle: bytes, keys, storages: bytes) -> bytes:
    """torch.save's legacy layout around a hand-assembled main pickle: the magic number, the format version and
    the sys_info dict (pickled as torch writes them), the main pickle, the storage key list, the raw storages."""
    f = io.BytesIO()
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
        pickle.dump(header, f, protocol=2)
    f.write(main_pickle)
    pickle.dump(list(keys), f, protocol=2)
    f.write(storages)
    return f.getvalue()


def legacy_storage(values: np.ndarray) -> bytes:
    return struct.pack("<q", values.size) + values.tobytes()


def make_legacy_checkpoints() -> dict:
    """Legacy files torch 1.13's writer does not make: storage views (view_metadata (view_key, offset, size),
    written by torch before 0.4), and a hostile main pickle."""
    root = f32_values("legacy.view", 10)
    view = p_tuple([p_str("1"), p_int(3), p_int(5)])  # elements 3..7 of storage '0'
    main = p_state_dict([
        ("whole", p_tensor("0", "FloatStorage", 10, 0, (10,), (1,), legacy_view=b"N")),
        ("part", p_tensor("0", "FloatStorage", 10, 1, (2, 2), (1, 2), legacy_view=view)),
    ])
    write_bytes("io_legacy_view.pth", legacy_stream(main, ["0"], legacy_storage(root)))
    loaded = torch.load(out("io_legacy_view.pth"), weights_only=True)
    part = np.lib.stride_tricks.as_strided(root[3 + 1 :], (2, 2), (4, 8))
    assert np.array_equal(loaded["whole"].numpy(), root) and np.array_equal(loaded["part"].numpy(), part)
    write_json("io_legacy.json", {
        "generator": GENERATOR,
        "file": "io_legacy_view.pth",
        "rule": "torch.load's values; 'part' is a (2, 2) tensor at offset 1, strides (1, 2), of a 5-element view "
        "at offset 3 of storage '0'",
        "tensors": {name: {"shape": list(t.shape), "float32": t.flatten().tolist()} for name, t in loaded.items()},
    })

    four = np.arange(4, dtype=np.float32)
    ok_tensor = ("ok.weight", p_tensor("0", "FloatStorage", 4, 0, (2, 2), (2, 1), legacy_view=b"N"))
    system = p_global("os", "system") + p_tuple([p_str(f"touch {HOSTILE_MARKER}")]) + b"R"
    hostile = legacy_stream(p_state_dict([ok_tensor, ("evil", system)]), ["0"], legacy_storage(four))
    write_bytes("io_legacy_hostile.pth", hostile)
    return {"io_legacy_hostile.pth": torch_refuses("io_legacy_hostile.pth", pickle.UnpicklingError)}


# ----------------------------------------------------------------------------------------------------------
# numpy


def make_npy_files() -> None:
    d = 5
    mu = f64_values("mu", d)
    a = f64_values("sigma.factor", d * d).reshape(d, d)
    sigma = a @ a.T / d + np.eye(d) * 0.25  # symmetric positive definite, float64
    np.savez(out("io_stats.npz"), mu=mu, sigma=sigma)
    np.savez_compressed(out("io_stats_compressed.npz"), mu=mu, sigma=sigma)
    for name in ("io_stats.npz", "io_stats_compressed.npz"):
        with np.load(out(name)) as z:
            assert np.array_equal(z["mu"], mu) and np.array_equal(z["sigma"], sigma)

    arrays = {
        "f8": f64_values("dtypes.f8", 6).reshape(2, 3),
        "f4": f32_values("dtypes.f4", 4),
        "f2": np.array([65504.0, -(2.0**-24), 2.0**-14, 0.1, -1.5], dtype=np.float16),
        "i8": np.array([-(2**62), 2**53 + 1, 0, 7], dtype=np.int64),
        "i4": np.array([[-5, 2147483647], [-2147483648, 12]], dtype=np.int32),
        "u1": np.array([0, 1, 128, 255], dtype=np.uint8),
        "scalar": np.array(-2.5, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float64),
        "cube": f32_values("dtypes.cube", 6).reshape(2, 1, 3),
        "counts": np.array([10000, 2500], dtype=np.int64),
    }
    np.savez(out("io_dtypes.npz"), **arrays)
    v2 = f64_values("npy.v2", 3)
    v3 = f32_values("npy.v3", 4).reshape(2, 2)
    for name, arr, version in (("io_v2.npy", v2, (2, 0)), ("io_v3.npy", v3, (3, 0))):
        with open(out(name), "wb") as f:
            np.lib.format.write_array(f, arr, version=version)
    np.save(out("io_fortran.npy"), np.asfortranarray(f64_values("npy.fortran", 6).reshape(2, 3)))
    np.save(out("io_bigendian.npy"), f64_values("npy.big", 3).astype(">f8"))

    def record(arr: np.ndarray) -> dict:
        values = arr.flatten().tolist()
        if arr.dtype == np.int64:
            values = [str(v) for v in values]  # exact beyond 2^53
        return {"dtype": arr.dtype.str, "shape": list(arr.shape), "values": values}

    write_json(
        "io_npy.json",
        {
            "generator": GENERATOR,
            "numpy": np.__version__,
            "rule": "values row-major as numpy's tolist(); int64 values as decimal strings",
            "stats": {"files": ["io_stats.npz", "io_stats_compressed.npz"], "mu": record(mu), "sigma": record(sigma)},
            "dtypes": {k: record(v) for k, v in arrays.items()},
            "io_v2.npy": record(v2),
            "io_v3.npy": record(v3),
        },
    )


# ----------------------------------------------------------------------------------------------------------
# ZIP


def zip64_archive(files) -> bytes:
    """Every size and offset in ZIP64 extra fields (0xFFFFFFFF in the headers), a ZIP64 end record and locator,
    and the classic end record saturated: the layout of archives over 4 GiB, at a few hundred bytes."""
    local, central = bytearray(), bytearray()
    for name, data, method in files:
        body = data
        if method == 8:
            raw = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate, no zlib header
            body = raw.compress(data) + raw.flush()
        crc = zlib.crc32(data)
        nb = name.encode()
        offset = len(local)
        extra_local = struct.pack("<HHQQ", 1, 16, len(data), len(body))
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                             len(nb), len(extra_local)) + nb + extra_local + body
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(body), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(nb), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + nb + extra
    cd_offset, cd_size, n = len(local), len(central), len(files)
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, cd_offset + cd_size, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(local + central + z64 + locator + eocd)


def zipfile_archive(name: str, files, compression: int, comment: bytes = b"") -> None:
    with zipfile.ZipFile(out(name), "w") as z:
        z.comment = comment
        for fname, data in files:
            info = zipfile.ZipInfo(fname, date_time=(2020, 6, 1, 12, 0, 0))
            info.compress_type = compression
            z.writestr(info, data)


def make_zips() -> None:
    text = b"the zip64 layout of numpy's savez and of archives over 4 GiB\n" * 3
    pattern = bytes((i * 7 + 3) % 256 for i in range(700))
    entries = [("stored.txt", text, 0), ("dir/deflated.bin", pattern, 8), ("empty", b"", 0)]
    with open(out("io_zip64.zip"), "wb") as f:
        f.write(zip64_archive(entries))
    with zipfile.ZipFile(out("io_zip64.zip")) as z:
        assert z.testzip() is None and [z.read(n) for n, _, _ in entries] == [d for _, d, _ in entries]
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-tq", out("io_zip64.zip")], check=True, stdout=subprocess.DEVNULL)

    plain = [("a.txt", text), ("deflated.bin", pattern), ("\u00e9t\u00e9/\u03c3.txt", "unicode name\n".encode())]
    zipfile_archive("io_deflate_comment.zip", plain, zipfile.ZIP_DEFLATED, comment=b"a 24-byte archive comment")
    zipfile_archive("io_bzip2.zip", [("b.txt", text)], zipfile.ZIP_BZIP2)

    def listing(name: str, contents) -> list:
        with zipfile.ZipFile(out(name)) as z:
            return [
                {"name": i.filename, "method": i.compress_type, "size": i.file_size, "crc32": i.CRC,
                 "sha256": hashlib.sha256(contents[i.filename]).hexdigest(), "hex": contents[i.filename].hex()}
                for i in z.infolist()
            ]

    write_json(
        "io_zip.json",
        {
            "generator": GENERATOR,
            "io_zip64.zip": listing("io_zip64.zip", {n: d for n, d, _ in entries}),
            "io_deflate_comment.zip": listing("io_deflate_comment.zip", dict(plain)),
            "io_bzip2.zip": listing("io_bzip2.zip", {"b.txt": text}),
        },
    )


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.manual_seed(0)
    make_checkpoints()
    refusals = make_hand_made_checkpoints()
    refusals.update(make_legacy_checkpoints())
    make_npy_files()
    make_zips()
    for name, why in refusals.items():
        print(f"torch.load(weights_only=True) refuses {name}: {why}")
    files = sorted(f for f in os.listdir(OUT_DIR) if f.startswith("io_"))
    for f in files:
        size = os.path.getsize(out(f))
        assert size < 64 * 1024, f
        print(f"{f:28s} {size:6d} bytes  sha256 {hashlib.sha256(open(out(f), 'rb').read()).hexdigest()[:16]}")
    assert not os.path.exists(HOSTILE_MARKER)


if __name__ == "__main__":
    main()
