"""Independent PyTorch reference of the FID Inception-v3 (the network pytorch-fid runs with its
pt_inception-2015-12-05 weights, ported from TensorFlow's 2015-12-05 Inception graph), plain torch, no torchvision.
Written from the published layer description (Szegedy et al. 2016 "Rethinking the Inception Architecture";
torchvision's Inception3 layout; pytorch-fid's FID variants), not from their code.

Layout (state_dict keys and order are those of the FID weights file):
  BasicConv2d = conv (no bias) -> BatchNorm2d(eps=0.001, eval mode: running statistics) -> ReLU
  Conv2d_1a_3x3 3->32 k3 s2 | Conv2d_2a_3x3 32->32 k3 | Conv2d_2b_3x3 32->64 k3 p1 | max 3/2
  Conv2d_3b_1x1 64->80 | Conv2d_4a_3x3 80->192 k3 | max 3/2
  Mixed_5b/5c/5d  InceptionA(in 192/256/288, pool features 32/64/64) -> 256/288/288 at 35x35
  Mixed_6a        InceptionB(288) -> 768 at 17x17
  Mixed_6b..6e    InceptionC(768, c7 = 128/160/160/192) -> 768
  Mixed_7a        InceptionD(768) -> 1280 at 8x8
  Mixed_7b/7c     InceptionE(1280 / 2048) -> 2048
  mean over 8x8 -> pool_3 [N, 2048] -> fc Linear(2048, 1008)
FID variants: the branch pools of InceptionA, InceptionC and Mixed_7b are avg_pool2d(3, 1, 1,
count_include_pad=False); Mixed_7c's is max_pool2d(3, 1, 1). Input: [0, 1] images resized to 299x299 with
F.interpolate(bilinear, align_corners=False), then 2x - 1.

Run (from anywhere; ~2-4 min on 2 cores):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OMP_NUM_THREADS=1 /usr/bin/python3 reference/inception_fid.py
      rewrites test/fixtures/inception_fid.json (deterministic: re-runs write identical bytes)
  ... reference/inception_fid.py --save-pth PATH   also writes the hash weights with torch.save (to try a .pth reader)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import fnv1a32, hash_uniform, self_test  # noqa: E402

FORMAT = "ddpm-ts/inception-fid-fixture/v1"
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "fixtures",
                   "inception_fid.json")
BN_EPS = 0.001
SIZE = 299

# ----------------------------------------------------------------------------------------------------------
# The network


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def branch_pool_of(x, kind: str):
    if kind == "avg":  # TF's average pool: padded taps are not counted
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    if kind == "max":
        return F.max_pool2d(x, 3, stride=1, padding=1)
    raise ValueError(kind)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(branch_pool_of(x, "avg"))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for m in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = m(c)
        d = self.branch_pool(branch_pool_of(x, "avg"))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        for m in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = m(b)
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        d = self.branch_pool(branch_pool_of(x, self.pool))
        return torch.cat([a, b, c, d], 1)


class FidInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg")
        self.Mixed_7c = InceptionE(2048, "max")
        self.fc = nn.Linear(2048, 1008)

    def trunk(self, x, taps: Dict[str, torch.Tensor] | None = None):
        """x [N, 3, 299, 299] in [-1, 1] -> the last 2048-channel map; taps collects every stage's output."""
        stages = [("Conv2d_1a_3x3", self.Conv2d_1a_3x3), ("Conv2d_2a_3x3", self.Conv2d_2a_3x3),
                  ("Conv2d_2b_3x3", self.Conv2d_2b_3x3), ("maxpool1", lambda v: F.max_pool2d(v, 3, stride=2)),
                  ("Conv2d_3b_1x1", self.Conv2d_3b_1x1), ("Conv2d_4a_3x3", self.Conv2d_4a_3x3),
                  ("maxpool2", lambda v: F.max_pool2d(v, 3, stride=2))]
        stages += [(n, getattr(self, n)) for n in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                                                   "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b",
                                                   "Mixed_7c")]
        for name, f in stages:
            x = f(x)
            if taps is not None:
                taps[name] = x
        return x

    def forward(self, x01, taps=None):
        """x01 [N, C, H, W] in [0, 1] (C = 1 repeated to 3), exactly pytorch-fid's preprocessing."""
        if x01.shape[1] == 1:
            x01 = x01.repeat(1, 3, 1, 1)
        x = F.interpolate(x01, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        pool = self.trunk(x, taps).mean(dim=(2, 3))
        unbiased = pool @ self.fc.weight.t()
        return {"pool": pool, "logits_unbiased": unbiased, "logits": unbiased + self.fc.bias}


def param_list(model: nn.Module) -> List[Tuple[str, List[int]]]:
    """The state_dict entries that hold values (num_batches_tracked left out), in order."""
    return [(k, list(v.shape)) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


# ----------------------------------------------------------------------------------------------------------
# Deterministic weights shared with TypeScript (src/eval/inception.ts hashInceptionWeights)

HASH_RULES = {
    "conv.weight": "hashUniform(seed(name), n, sqrt(6 / fan_in)), fan_in = in*kh*kw (He-uniform: variance 2/fan_in)",
    "bn.weight": "float32(1 + hashUniform(seed(name), n, 0.1)[i])",
    "bn.bias": "hashUniform(seed(name), n, 0.1)",
    "bn.running_mean": "hashUniform(seed(name), n, 0.1)",
    "bn.running_var": "float32(1 + hashUniform(seed(name), n, 0.5)[i])",
    "fc.weight": "hashUniform(seed(name), n, sqrt(3 / 2048))",
    "fc.bias": "hashUniform(seed(name), n, 0.5)",
}


def hash_value(name: str, shape: Sequence[int]) -> np.ndarray:
    n = int(np.prod(shape))
    seed = fnv1a32(name)
    kind = ".".join(name.split(".")[-2:])
    if kind == "conv.weight":
        v = hash_uniform(seed, n, math.sqrt(6.0 / int(np.prod(shape[1:]))))
    elif kind in ("bn.bias", "bn.running_mean"):
        v = hash_uniform(seed, n, 0.1)
    elif kind == "bn.weight":
        v = (1.0 + hash_uniform(seed, n, 0.1).astype(np.float64)).astype(np.float32)
    elif kind == "bn.running_var":
        v = (1.0 + hash_uniform(seed, n, 0.5).astype(np.float64)).astype(np.float32)
    elif kind == "fc.weight":
        v = hash_uniform(seed, n, math.sqrt(3.0 / 2048))
    elif kind == "fc.bias":
        v = hash_uniform(seed, n, 0.5)
    else:
        raise ValueError(f"no hash rule for {name}")
    return v.reshape(shape)


@torch.no_grad()
def init_hash(model: FidInception) -> None:
    sd = model.state_dict()
    for name, shape in param_list(model):
        sd[name].copy_(torch.from_numpy(hash_value(name, shape)).to(sd[name].dtype))


def hash_model(dtype=torch.float64) -> FidInception:
    m = FidInception()
    init_hash(m)
    return m.to(dtype).eval()


@torch.no_grad()
def count_flops(model: FidInception) -> Dict[str, float]:
    """FLOPs of one 299x299 image (conv + fc multiply-adds x 2; the resize, BatchNorm, ReLU and pools not
    counted), as torch_unet.count_flops."""
    macs = {"conv": 0, "linear": model.fc.weight.numel()}

    def conv_hook(m, inp, out):
        kh, kw = m.kernel_size
        macs["conv"] += out.numel() * (m.in_channels // m.groups) * kh * kw

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    dtype = next(model.parameters()).dtype
    model.trunk(torch.zeros(1, 3, SIZE, SIZE, dtype=dtype))
    for h in hooks:
        h.remove()
    total = sum(macs.values())
    return {"gflop_per_image": 2.0 * total / 1e9, "gmac_per_image": total / 1e9,
            "breakdown_gmac_per_image": {k: v / 1e9 for k, v in macs.items()}}


# ----------------------------------------------------------------------------------------------------------
# The fixture

INPUTS = [  # name, seed name, shape: x = hashUniform(seed(seed name), numel, 1.0) in [-1, 1]
    ("x3x32", "inception/x3x32", [8, 3, 32, 32]),
    ("x1x28", "inception/x1x28", [2, 1, 28, 28]),
]


def sig9(v: float) -> float:
    v = float(v)
    assert math.isfinite(v), v
    return float(f"{v:.9g}")


def record(t: torch.Tensor) -> dict:
    a = t.detach().to(torch.float64)
    return {"shape": list(a.shape), "sum": float(a.sum()), "abs_sum": float(a.abs().sum()),
            "sq_sum": float((a * a).sum()), "values": [sig9(v) for v in a.reshape(-1).tolist()]}


def compare(a32: torch.Tensor, a64: torch.Tensor) -> dict:
    d = (a32.double() - a64).abs()
    return {"max_abs_err": float(d.max()), "max_abs_ref": float(a64.abs().max()),
            "rel_l2_err": float(d.norm() / a64.norm())}


@torch.no_grad()
def make() -> dict:
    m64 = hash_model(torch.float64)
    m32 = hash_model(torch.float32)
    params = param_list(m64)
    sd = m64.state_dict()
    fx = {
        "format": FORMAT,
        "generator": "reference/inception_fid.py",
        "rules": {**HASH_RULES, "seed": "seed(NAME) = FNV-1a 32-bit of UTF-8 NAME (src/nn/unet.ts fnv1a)",
                  "inputs": "x = hashUniform(seed(seed_name), numel, 1.0) as shape, in [-1, 1]",
                  "reference": "float64 forward of the float32-rounded weights and inputs: (x + 1) / 2, channel "
                               "repeat when C = 1, F.interpolate(299, bilinear, align_corners=False), 2x - 1, "
                               "BatchNorm in eval mode (not folded), values stored at 9 significant digits"},
        "bn_eps": BN_EPS,
        "param_count": sum(int(np.prod(s)) for _, s in params),
        "params": params,
        "param_sums": {k: float(sd[k].sum()) for k, _ in params},
        "inputs": [],
        "outputs": {},
        "float32_vs_float64": {},
        "activation_rms": {},
    }
    for name, seed_name, shape in INPUTS:
        x = torch.from_numpy(hash_uniform(fnv1a32(seed_name), int(np.prod(shape)), 1.0).reshape(shape))
        taps: Dict[str, torch.Tensor] = {}
        out64 = m64((x.double() + 1) / 2, taps)
        out32 = m32((x + 1) / 2)
        fx["inputs"].append({"name": name, "seed_name": seed_name, "shape": shape, "sum": float(x.double().sum())})
        fx["outputs"][name] = {k: record(v) for k, v in out64.items()}
        fx["float32_vs_float64"][name] = {k: compare(out32[k], out64[k]) for k in out64}
        fx["activation_rms"][name] = {k: sig9(v.pow(2).mean().sqrt()) for k, v in taps.items()}
    return fx


LINE_KEYS = {"params", "param_sums", "outputs", "float32_vs_float64", "activation_rms", "rules"}


def dumps(fx: dict) -> str:
    """One top-level key per line; entries of the big maps / lists one per line."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--save-pth", metavar="PATH", help="also torch.save the float32 hash weights' state_dict here")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    self_test()
    if args.save_pth:
        torch.save(hash_model(torch.float32).state_dict(), args.save_pth)
        print(f"wrote {args.save_pth}")
    fx = make()
    s = dumps(fx)
    json.loads(s)  # well formed
    with open(OUT, "w") as f:
        f.write(s)
    print(f"wrote {OUT}: {len(s) / 1e6:.2f} MB, {fx['param_count']} params")
    for name, errs in fx["float32_vs_float64"].items():
        print(f"  {name}: float32 vs float64 " + ", ".join(
            f"{k} rel_l2 {e['rel_l2_err']:.2e} max_abs/max_ref {e['max_abs_err'] / e['max_abs_ref']:.2e}"
            for k, e in errs.items()))
        print(f"  {name}: activation rms " + " ".join(f"{k}={v:.3g}" for k, v in fx["activation_rms"][name].items()))


if __name__ == "__main__":
    main()
