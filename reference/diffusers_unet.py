"""PyTorch reference of diffusers' UNet2DModel, configured by a diffusers config.json dict, plain torch (no diffusers).

Written from diffusers' published description (src/diffusers/models/unets/unet_2d.py, unet_2d_blocks.py,
resnet.py, embeddings.py, attention_processor.py), for the config keys src/model/params.ts honours:

  missing key            = the default of UNet2DModel.__init__ (freq_shift 0, flip_sin_to_cos True,
                           downsample_padding 1, attention_head_dim 8, norm_eps 1e-5, norm_num_groups 32, ...)
  timestep features      = exponent_i = -ln(10000) i / (half - freq_shift), [sin(t f), cos(t f)],
                           swapped to [cos, sin] by flip_sin_to_cos; linear_1 -> SiLU -> linear_2 (always SiLU)
  center_input_sample    = the network sees 2 x - 1
  ResnetBlock2D          = (shortcut(x) + conv2(act(norm2(conv1(act(norm1 x)) + time_emb_proj(act temb))))) / scale,
                           act = act_fn (silu/swish, relu, mish), scale = mid_block_scale_factor in the mid block, else 1;
                           resnet_time_scale_shift "scale_shift": time_emb_proj gives 2C, scale, shift = chunk(., 2),
                           h = norm2(conv1(..)) * (1 + scale) + shift before act
  mid block attention    = GroupNorm with attn_norm_num_groups, else norm_num_groups for "default" and none for
                           "scale_shift" (UNetMidBlock2D's attn_groups)
  Attention              = (x + to_out.0(MHA(group_norm x))) / scale, heads = C / head_dim,
                           head_dim = attention_head_dim (None: C, one head), softmax(q k^T / sqrt(head_dim))
  mid block              = resnet, attention (absent with add_attention false), resnet
  Downsample2D           = downsample_padding 0: pad right/bottom by 1 then conv3x3 stride 2 padding 0;
                           downsample_padding 1: conv3x3 stride 2 padding 1
  Upsample2D             = nearest x2 then conv3x3 padding 1
  output                 = conv_out(SiLU(conv_norm_out h))  (conv_act is always SiLU)

Weights: every parameter from the deterministic hash of its diffusers name (torch_unet.fixture rules:
conv/linear weight U(-a, a) a = sqrt(3 / fan_in), biases U(-0.1, 0.1), GroupNorm weight 1 + U(-0.1, 0.1)),
the same values as src/nn/unet.ts initParams(cfg, 'fixture'). Forward in float64 from the float32 values.

Run: LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 reference/diffusers_unet.py
writes test/fixtures/diffusers_unet.json (deterministic, ~60 KB).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Dict, List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import fnv1a32, hash_uniform  # noqa: E402

DEFAULTS = {
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "freq_shift": 0,
    "flip_sin_to_cos": True,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "dropout": 0.0,
    "act_fn": "silu",
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "add_attention": True,
    "resnet_time_scale_shift": "default",
    "attn_norm_num_groups": None,
}


def activation(name: str):
    if name in ("silu", "swish"):
        return F.silu
    if name == "relu":
        return F.relu
    if name == "mish":
        return F.mish
    raise ValueError(f"act_fn {name}")


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps, act, scale, scale_shift=False):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, 2 * cout if scale_shift else cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.act, self.scale, self.scale_shift = act, scale, scale_shift

    def forward(self, x, temb):
        h = self.conv1(self.act(self.norm1(x)))
        tp = self.time_emb_proj(self.act(temb))[:, :, None, None]
        if self.scale_shift:
            t_scale, t_shift = torch.chunk(tp, 2, dim=1)
            h = self.norm2(h) * (1 + t_scale) + t_shift
        else:
            h = self.norm2(h + tp)
        h = self.conv2(self.act(h))
        s = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (s + h) / self.scale


class Attn(nn.Module):
    def __init__(self, c, head_dim, groups, eps, scale):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=eps) if groups is not None else None
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])
        self.heads, self.d, self.scale = c // head_dim, head_dim, scale

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = (self.group_norm(x) if self.group_norm is not None else x).reshape(b, c, hh * ww).transpose(1, 2)
        split = lambda a: a.reshape(b, hh * ww, self.heads, self.d).transpose(1, 2)  # [B, heads, HW, d]
        q, k, v = split(self.to_q(h)), split(self.to_k(h)), split(self.to_v(h))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d), dim=-1)  # [B, heads, HW, HW]
        o = (w @ v).transpose(1, 2).reshape(b, hh * ww, c)  # [B, HW, C]
        o = self.to_out[0](o).transpose(1, 2).reshape(b, c, hh, ww)
        return (x + o) / self.scale


class Down(nn.Module):
    def __init__(self, c, padding):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)
        self.padding = padding

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.padding == 0 else x)


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    pass


class UNet2DModelRef(nn.Module):
    def __init__(self, config: Dict):
        super().__init__()
        c = {**DEFAULTS, **config}
        self.c = c
        boc = list(c["block_out_channels"])
        L, nrb, g, eps = len(boc), c["layers_per_block"], c["norm_num_groups"], c["norm_eps"]
        act = activation(c["act_fn"])
        ss = c["resnet_time_scale_shift"] == "scale_shift"
        assert c["resnet_time_scale_shift"] in ("default", "scale_shift"), c["resnet_time_scale_shift"]
        temb = boc[0] * 4
        hd = lambda ch: c["attention_head_dim"] if c["attention_head_dim"] is not None else ch
        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(boc[0], temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)
        self.down_blocks, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        out = boc[0]
        for i, t in enumerate(c["down_block_types"]):
            cin, out = out, boc[i]
            blk = Block()
            if t == "AttnDownBlock2D":
                blk.attentions = nn.ModuleList([Attn(out, hd(out), g, eps, 1.0) for _ in range(nrb)])
            else:
                assert t == "DownBlock2D", t
                blk.attentions = None
            blk.resnets = nn.ModuleList([Resnet(cin if j == 0 else out, out, temb, g, eps, act, 1.0, ss) for j in range(nrb)])
            blk.downsamplers = nn.ModuleList([Down(out, c["downsample_padding"])]) if i < L - 1 else None
            self.down_blocks.append(blk)
        rev = list(reversed(boc))
        out = rev[0]
        for i, t in enumerate(c["up_block_types"]):
            prev, out = out, rev[i]
            cin = rev[min(i + 1, L - 1)]
            blk = Block()
            ms = c["mid_block_scale_factor"]
            if t == "AttnUpBlock2D":
                blk.attentions = nn.ModuleList([Attn(out, hd(out), g, eps, 1.0) for _ in range(nrb + 1)])
            else:
                assert t == "UpBlock2D", t
                blk.attentions = None
            rs = []
            for j in range(nrb + 1):
                skip = cin if j == nrb else out
                rin = prev if j == 0 else out
                rs.append(Resnet(rin + skip, out, temb, g, eps, act, 1.0, ss))
            blk.resnets = nn.ModuleList(rs)
            blk.upsamplers = nn.ModuleList([Up(out)]) if i < L - 1 else None
            self.up_blocks.append(blk)
        mid = Block()
        ms = c["mid_block_scale_factor"]
        mid_groups = c["attn_norm_num_groups"] if c["attn_norm_num_groups"] is not None else (None if ss else g)
        mid.attentions = nn.ModuleList([Attn(boc[-1], hd(boc[-1]), mid_groups, eps, ms)]) if c["add_attention"] else None
        mid.resnets = nn.ModuleList([Resnet(boc[-1], boc[-1], temb, g, eps, act, ms, ss) for _ in range(2)])
        self.mid_block = mid
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    def features(self, t: torch.Tensor, dtype) -> torch.Tensor:
        ch = self.c["block_out_channels"][0]
        half = ch // 2
        i = torch.arange(half, dtype=torch.float64)
        f = torch.exp(-math.log(10000.0) * i / (half - self.c["freq_shift"]))
        a = t.to(torch.float64)[:, None] * f[None, :]
        e = torch.cat([torch.sin(a), torch.cos(a)], 1)
        if self.c["flip_sin_to_cos"]:
            e = torch.cat([e[:, half:], e[:, :half]], 1)
        return e.to(dtype)

    def forward(self, x, t):
        if self.c["center_input_sample"]:
            x = 2 * x - 1.0
        te = self.time_embedding
        temb = te.linear_2(F.silu(te.linear_1(self.features(t, x.dtype))))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(h, temb)
                if blk.attentions is not None:
                    h = blk.attentions[j](h)
                skips.append(h)
            if blk.downsamplers is not None:
                h = blk.downsamplers[0](h)
                skips.append(h)
        m = self.mid_block
        h = m.resnets[0](h, temb)
        if m.attentions is not None:
            h = m.attentions[0](h)
        h = m.resnets[1](h, temb)
        for blk in self.up_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], 1), temb)
                if blk.attentions is not None:
                    h = blk.attentions[j](h)
            if blk.upsamplers is not None:
                h = blk.upsamplers[0](h)
        assert not skips
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def init_hash(model: nn.Module) -> None:
    """The fixture values by diffusers name (== src/nn/unet.ts initParams(cfg, 'fixture'))."""
    norms = {n for n, m in model.named_modules() if isinstance(m, nn.GroupNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            mod, leaf = name.rsplit(".", 1)
            n = p.numel()
            if mod in norms:
                v = hash_uniform(fnv1a32(name), n, 0.1).astype(np.float32)
                if leaf == "weight":
                    v = (v.astype(np.float32) + np.float32(1)).astype(np.float32)
            elif leaf == "bias":
                v = hash_uniform(fnv1a32(name), n, 0.1)
            else:
                fan_in = int(np.prod(p.shape[1:]))
                v = hash_uniform(fnv1a32(name), n, math.sqrt(3 / fan_in))
            p.copy_(torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(p.shape)))


# One config per group of keys; missing keys are diffusers' defaults (that is what "defaults" checks).
CONFIGS: List[Dict] = [
    {
        "name": "defaults",  # flip_sin_to_cos True, freq_shift 0, downsample_padding 1, 4 heads of 8, eps 1e-5
        "sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [16, 32],
        "layers_per_block": 1, "norm_num_groups": 8,
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    },
    {
        "name": "ddpm-cifar10",  # google/ddpm-cifar10-32's keys, small
        "_class_name": "UNet2DModel", "_diffusers_version": "0.1.1", "act_fn": "silu", "attention_head_dim": None,
        "block_out_channels": [16, 32, 32], "center_input_sample": False, "downsample_padding": 0,
        "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
        "mid_block_scale_factor": 1, "norm_eps": 1e-6, "norm_num_groups": 8, "out_channels": 3, "sample_size": 8,
        "time_embedding_type": "positional",
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    },
    {
        "name": "mish-centred-scaled",  # act_fn mish, center_input_sample, mid_block_scale_factor, 2 heads of 16
        "sample_size": 8, "in_channels": 2, "out_channels": 1, "block_out_channels": [32, 32],
        "layers_per_block": 1, "norm_num_groups": 4, "norm_eps": 1e-4, "act_fn": "mish",
        "center_input_sample": True, "mid_block_scale_factor": 1.4142135623730951, "attention_head_dim": 16,
        "freq_shift": 2, "flip_sin_to_cos": True, "downsample_padding": 0,
        "down_block_types": ["AttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "AttnUpBlock2D"],
    },
    {
        "name": "relu-no-mid-attention",  # act_fn relu, add_attention false, no attention anywhere
        "sample_size": 8, "in_channels": 1, "out_channels": 2, "block_out_channels": [16, 16, 32],
        "layers_per_block": 1, "norm_num_groups": 16, "act_fn": "relu", "add_attention": False,
        "dropout": 0.1,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "UpBlock2D", "UpBlock2D"],
    },
    {
        "name": "swish-one-head",  # act_fn swish (= silu), attention_head_dim null, mid scale 2
        "sample_size": 4, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
        "layers_per_block": 1, "norm_num_groups": 4, "act_fn": "swish", "attention_head_dim": None,
        "mid_block_scale_factor": 2,
        "down_block_types": ["AttnDownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D"],
    },
    {
        "name": "scale-shift",  # resnet_time_scale_shift scale_shift: the mid attention without GroupNorm
        "sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [16, 32],
        "layers_per_block": 1, "norm_num_groups": 8, "resnet_time_scale_shift": "scale_shift",
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    },
    {
        "name": "scale-shift-attn-norm",  # scale_shift with attn_norm_num_groups: the mid attention normed
        "sample_size": 4, "in_channels": 2, "out_channels": 2, "block_out_channels": [8, 16],
        "layers_per_block": 2, "norm_num_groups": 4, "resnet_time_scale_shift": "scale_shift",
        "attn_norm_num_groups": 4, "attention_head_dim": None, "flip_sin_to_cos": False, "freq_shift": 1,
        "down_block_types": ["AttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "AttnUpBlock2D"],
    },
]
T = [0, 1, 250, 999]
# Cases whose gradients are recorded too (parameters by diffusers name, and x).
GRAD_CASES = {
    "scale-shift": [
        "down_blocks.0.resnets.0.time_emb_proj.weight",
        "down_blocks.0.resnets.0.time_emb_proj.bias",
        "mid_block.resnets.1.norm2.weight",
        "mid_block.attentions.0.to_q.weight",
        "time_embedding.linear_1.weight",
    ],
}


def main() -> None:
    torch.set_num_threads(1)
    out = {"format": "ddpm-ts/diffusers-unet-fixture/v1", "generator": "reference/diffusers_unet.py",
           "t": T, "x_rule": "hashUniform(fnv1a('x'), N*C*H*W, 1) as [4, C, H, W]", "cases": []}
    for cfg in CONFIGS:
        name = cfg["name"]
        config = {k: v for k, v in cfg.items() if k != "name"}
        model = UNet2DModelRef(config)
        init_hash(model)
        model.eval()
        c = model.c
        shape = [len(T), c["in_channels"], c["sample_size"], c["sample_size"]]
        x = torch.from_numpy(hash_uniform(fnv1a32("x"), int(np.prod(shape)), 1.0).astype(np.float32).reshape(shape))
        t = torch.tensor(T, dtype=torch.float32)
        with torch.no_grad():
            y64 = model.double()(x.double(), t).numpy()
            y32 = model.float()(x, t).numpy().astype(np.float64)
        rel = float(np.linalg.norm(y32 - y64) / np.linalg.norm(y64))
        case = {
            "name": name, "config": config, "shape": shape,
            "params": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "output": [float(f"{v:.9g}") for v in y64.reshape(-1)],
            "float32_rel_l2": float(f"{rel:.3g}"),
        }
        if name in GRAD_CASES:
            # gradients of sum(out * r), r = hashUniform(fnv1a('r'), size, 1), float64, for training
            model.double().zero_grad()
            xg = x.double().clone().requires_grad_(True)
            y = model(xg, t)
            r = torch.from_numpy(hash_uniform(fnv1a32("r"), y.numel(), 1.0).astype(np.float32)).double()
            (y * r.reshape(y.shape)).sum().backward()
            named = dict(model.named_parameters())
            case["grads"] = {k: [float(f"{v:.9g}") for v in named[k].grad.numpy().reshape(-1)] for k in GRAD_CASES[name]}
            case["grads"]["x"] = [float(f"{v:.9g}") for v in xg.grad.numpy().reshape(-1)]
        out["cases"].append(case)
        print(f"{name}: {sum(p.numel() for p in model.parameters())} params, out {list(y64.shape)}, "
              f"|y| rms {np.sqrt((y64 ** 2).mean()):.3g}, float32 rel L2 {rel:.2e}")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "diffusers_unet.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
