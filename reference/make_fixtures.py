"""Writes test/fixtures/unet_<config>.json: the PyTorch reference outputs (and gradients) of the DDPM U-Net
with deterministic counter-based parameters that the TypeScript side can rebuild bit-exactly.

Run (from anywhere; takes ~1 min on 2 cores):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 reference/make_fixtures.py [tiny S cifar]

The reference is computed in float64 (model.double()) from the float32-rounded parameters and inputs, so it
is an exact target for a float32 implementation; the float32 torch forward (and, for tiny / S, its gradients)
is recorded alongside to show which error a correct float32 implementation makes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import (  # noqa: E402
    CIFAR10,
    CIFAR10_PARAM_COUNT,
    UNet,
    UNetConfig,
    count_params,
    fnv1a32,
    hash_uniform,
    init_fixture,
    param_list,
    sample_indices,
    self_test,
)

FORMAT = "ddpm-ts/unet-fixture/v1"
OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "fixtures")

CONFIGS = {
    "tiny": dict(cfg=UNetConfig(1, 1, 16, 32, [1, 2], 1, [8], 0.0), batch=2, t=[3, 977], grads=True),
    "S": dict(cfg=UNetConfig(1, 1, 32, 32, [1, 2, 2, 2], 2, [16], 0.0), batch=2, t=[0, 999], grads=True),
    "cifar": dict(cfg=UNetConfig(3, 3, 32, 128, [1, 2, 2, 2], 2, [16], 0.0), batch=1, t=[500], grads=False),
}

ACT_FULL_MAX = 4096
ACT_SAMPLES = 256
ACT_SEED = 12345
GRAD_SAMPLES = 64
GRAD_SEED_XOR = 0x5BD1E995
STRUCT_ZERO_REL = 1e-9  # mean |grad| below this times grad_scale: mathematically zero, float64 round-off only

RULES = {
    "seed": "seed(NAME) = FNV-1a 32-bit of the UTF-8 bytes of NAME: h = 0x811c9dc5; for each byte b: "
            "h = ((h ^ b) * 0x01000193) mod 2^32",
    "hashU32": "hashU32(seed, i) = murmur3 fmix32 of h0 = (i * 0x9E3779B9 + seed) mod 2^32: "
               "h ^= h >>> 16; h = h * 0x85ebca6b mod 2^32; h ^= h >>> 13; h = h * 0xc2b2ae35 mod 2^32; h ^= h >>> 16 "
               "(src/util/rng.ts hashU32)",
    "hashUniform": "hashUniform(seed, n, scale)[i] = ((hashU32(seed, i) / 2^32) * 2 - 1) * scale in float64, "
                   "rounded to float32 (src/util/rng.ts hashUniform)",
    "param_init": {
        "conv_or_linear_weight": "hashUniform(seed(name), numel, sqrt(3 / fan_in)), fan_in = shape[1]*shape[2]*shape[3] "
                                 "for conv [out,in,kh,kw], shape[1] for linear [out,in]",
        "conv_or_linear_bias": "hashUniform(seed(name), numel, 0.1)",
        "groupnorm_weight": "float32(1 + hashUniform(seed(name), numel, 0.1)[i])",
        "groupnorm_bias": "hashUniform(seed(name), numel, 0.1)",
        "groupnorm_params": "names ending in norm1.*, norm2.*, group_norm.*, conv_norm_out.*",
        "flattening": "row-major over the torch shape (Linear [out, in], Conv [out, in, kh, kw])",
    },
    "x": "hashUniform(seed('x'), N*C*H*W, 1.0) as [N, C, H, W]",
    "t": "the listed integer timesteps, fed as float; features [sin(t f), cos(t f)], f_i = exp(-ln(10000) i/(ch/2 - 1))",
    "r": "hashUniform(seed('r'), numel(out), 1.0) as out's shape",
    "loss": "sum(out * r) (dropout 0, eval mode); grads are d loss / d param and d loss / d x",
    "tensor_record": "{shape, numel, sum, abs_sum, sq_sum (float64 over all elements), indices, values "
                     "(values[k] = flat_row_major[indices[k]])}",
    "activation_indices": "output, output_float32, grad_x and activations: if numel <= 4096 then indices = 0..numel-1 "
                          "(full tensor) else indices[k] = hashU32(12345, k) % numel for k = 0..255",
    "grad_indices": "grads[name]: if numel <= 64 then indices = 0..numel-1 else "
                    "indices[k] = hashU32((seed(name) ^ 0x5bd1e995) >>> 0, k) % numel for k = 0..63",
    "precision": "reference values computed in float64 from the float32-rounded params, x and r",
    "structurally_zero": "grads[name].structurally_zero is true when mean |grad| < 1e-9 * grad_scale (grad_scale = the "
                         "largest mean |grad| over all params): such gradients are mathematically 0 and the stored values "
                         "are float64 round-off; compare them with an absolute tolerance scaled by grad_scale. Causes: "
                         "attention to_k.bias (softmax is invariant to q.b_k, constant over keys); conv1.bias and "
                         "time_emb_proj.* of resnets with out_channels == groups (GroupNorm with one channel per group "
                         "removes per-channel constants); conv2.bias / conv_shortcut.bias of the last up resnet when "
                         "ch == groups (conv_norm_out removes them)",
}


def act_indices(numel: int) -> list:
    if numel <= ACT_FULL_MAX:
        return list(range(numel))
    return sample_indices(ACT_SEED, ACT_SAMPLES, numel)


def grad_indices(name: str, numel: int) -> list:
    if numel <= GRAD_SAMPLES:
        return list(range(numel))
    return sample_indices((fnv1a32(name) ^ GRAD_SEED_XOR) & 0xFFFFFFFF, GRAD_SAMPLES, numel)


def _f(v: float) -> float:
    v = float(v)
    assert math.isfinite(v), v
    return v


def record(t: torch.Tensor, indices: list) -> dict:
    a = t.detach().to(torch.float64).reshape(-1)
    return {
        "shape": list(t.shape),
        "numel": a.numel(),
        "sum": _f(a.sum()),
        "abs_sum": _f(a.abs().sum()),
        "sq_sum": _f((a * a).sum()),
        "indices": indices,
        "values": [_f(v) for v in a[indices].tolist()],
    }


def stats_only(t: torch.Tensor) -> dict:
    a = t.detach().to(torch.float64).reshape(-1)
    return {"shape": list(t.shape), "numel": a.numel(), "sum": _f(a.sum()), "abs_sum": _f(a.abs().sum()),
            "sq_sum": _f((a * a).sum())}


def compare(a32: torch.Tensor, a64: torch.Tensor) -> dict:
    d = (a32.detach().double() - a64.detach()).reshape(-1)
    ref = a64.detach().reshape(-1)
    return {
        "max_abs_err": _f(d.abs().max()),
        "max_abs_ref": _f(ref.abs().max()),
        "max_abs_err_over_max_abs_ref": _f(d.abs().max() / ref.abs().max()),
        "rel_l2_err": _f(d.norm() / ref.norm()),
    }


ACT_MODULES = ["time_embedding", "conv_in"]


def capture_activations(model: UNet, store: dict):
    names = list(ACT_MODULES)
    names += [f"down_blocks.{i}" for i in range(len(model.down_blocks))]
    names += ["mid_block"]
    names += [f"up_blocks.{i}" for i in range(len(model.up_blocks))]
    names += ["conv_norm_out"]
    mods = dict(model.named_modules())
    hooks = []
    for n in names:
        def hook(m, inp, out, n=n):
            store[n] = (out[0] if isinstance(out, tuple) else out).detach()
        hooks.append(mods[n].register_forward_hook(hook))
    return hooks


def build(name: str):
    spec = CONFIGS[name]
    cfg: UNetConfig = spec["cfg"]
    n, t = spec["batch"], spec["t"]
    m32 = UNet(cfg)
    init_fixture(m32)
    m32.eval()
    m64 = copy.deepcopy(m32).double().eval()
    x = torch.from_numpy(hash_uniform(fnv1a32("x"), n * cfg.in_channels * cfg.resolution ** 2, 1.0)).reshape(
        n, cfg.in_channels, cfg.resolution, cfg.resolution)
    tt = torch.tensor(t, dtype=torch.float64)
    return spec, cfg, m32, m64, x, tt


def make(name: str) -> dict:
    t0 = time.time()
    spec, cfg, m32, m64, x32, tt = build(name)
    nparams = count_params(m64)
    if cfg.ch == 128 and list(cfg.ch_mult) == [1, 2, 2, 2] and cfg.num_res_blocks == 2 and cfg.in_channels == 3:
        assert nparams == CIFAR10_PARAM_COUNT, nparams
    plist = param_list(m64)

    acts64: dict = {}
    hooks = capture_activations(m64, acts64)
    x64 = x32.double().requires_grad_(spec["grads"])
    out64 = m64(x64, tt)
    for h in hooks:
        h.remove()
    r = torch.from_numpy(hash_uniform(fnv1a32("r"), out64.numel(), 1.0)).reshape(out64.shape)

    out_idx = act_indices(out64.numel())
    fx = {
        "format": FORMAT,
        "name": name,
        "generator": f"reference/make_fixtures.py, torch {torch.__version__}",
        "config": cfg.to_dict(),
        "batch": spec["batch"],
        "t": spec["t"],
        "rules": RULES,
        "param_count": nparams,
        "params": [[k, s] for k, s in plist],
        "param_sums": {k: _f(v.double().sum()) for k, v in m64.state_dict().items()},
        "x": record(x32, act_indices(x32.numel())),
        "r": stats_only(r),
        "output": record(out64, out_idx),
    }

    acts32: dict = {}
    hooks = capture_activations(m32, acts32)
    x32g = x32.clone().requires_grad_(spec["grads"])
    out32 = m32(x32g, tt)
    for h in hooks:
        h.remove()
    fx["output_float32"] = {**record(out32, out_idx), **compare(out32, out64)}
    fx["activations"] = {k: {**record(v, act_indices(v.numel())), "float32_vs_float64": compare(acts32[k], v)}
                         for k, v in acts64.items()}

    if spec["grads"]:
        loss64 = (out64 * r.double()).sum()
        loss64.backward()
        loss32 = (out32 * r).sum()
        loss32.backward()
        fx["loss"] = _f(loss64)
        fx["loss_float32"] = _f(loss32)
        fx["grad_x"] = {**record(x64.grad, act_indices(x64.numel())), "float32_vs_float64": compare(x32g.grad, x64.grad)}
        p32 = dict(m32.named_parameters())
        named = list(m64.named_parameters())
        scale = max(float(p.grad.abs().mean()) for _, p in named)
        grads = {}
        worst = (0.0, None)
        worst_zero = 0.0
        zero_names = []
        for k, p in named:
            g = p.grad
            assert g is not None, f"no gradient for {k}"
            rec = record(g, grad_indices(k, g.numel()))
            zero = float(g.abs().mean()) < STRUCT_ZERO_REL * scale
            rec["structurally_zero"] = zero
            c = compare(p32[k].grad, g)
            rec["float32_max_abs_err"] = c["max_abs_err"]
            if zero:
                zero_names.append(k)
                worst_zero = max(worst_zero, c["max_abs_err"])
            else:
                rec["float32_rel_l2_err"] = c["rel_l2_err"]
                if c["rel_l2_err"] > worst[0]:
                    worst = (c["rel_l2_err"], k)
            grads[k] = rec
        fx["grads"] = grads
        fx["grad_scale"] = scale
        fx["structurally_zero_grads"] = zero_names
        fx["float32_grad_check"] = {"max_rel_l2_err": worst[0], "worst_param": worst[1],
                                    "max_abs_err_structurally_zero": worst_zero,
                                    "max_abs_err_structurally_zero_over_grad_scale": worst_zero / scale}
    fx["_seconds"] = round(time.time() - t0, 2)  # printed, not written (re-runs stay byte-identical)
    return fx


LINE_KEYS = {"params", "param_sums", "activations", "grads", "rules"}


def dumps(fx: dict) -> str:
    """One top-level key per line; entries of the big maps/lists one per line."""
    c = dict(separators=(",", ":"))
    lines = []
    for k, v in fx.items():
        if k in LINE_KEYS and isinstance(v, dict):
            inner = ",\n  ".join(json.dumps(kk, **c) + ":" + json.dumps(vv, **c) for kk, vv in v.items())
            lines.append(f"{json.dumps(k)}:{{\n  {inner}\n }}")
        elif k in LINE_KEYS and isinstance(v, list):
            inner = ",\n  ".join(json.dumps(vv, **c) for vv in v)
            lines.append(f"{json.dumps(k)}:[\n  {inner}\n ]")
        else:
            lines.append(f"{json.dumps(k)}:{json.dumps(v, **c)}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def main(argv):
    torch.set_num_threads(2)
    self_test()
    names = argv or list(CONFIGS)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name in names:
        fx = make(name)
        path = os.path.join(OUT_DIR, f"unet_{name}.json")
        secs = fx.pop("_seconds")
        s = dumps(fx)
        json.loads(s)  # well-formed
        with open(path, "w") as f:
            f.write(s)
        o = fx["output_float32"]
        msg = (f"{name}: {fx['param_count']} params, out {fx['output']['shape']}, "
               f"f32 vs f64 out: max_abs_err/max_abs_ref {o['max_abs_err_over_max_abs_ref']:.2e} "
               f"rel_l2 {o['rel_l2_err']:.2e}")
        if "float32_grad_check" in fx:
            msg += f", grads f32 worst rel_l2 {fx['float32_grad_check']['max_rel_l2_err']:.2e} ({fx['float32_grad_check']['worst_param']})"
        print(msg + f", {len(s) / 1e6:.2f} MB, {secs} s -> {os.path.relpath(path)}")
    if "cifar" in names:
        assert count_params(UNet(CIFAR10)) == CIFAR10_PARAM_COUNT
        print(f"CIFAR-10 parameter count {CIFAR10_PARAM_COUNT} asserted")


if __name__ == "__main__":
    main(sys.argv[1:])
