"""A second, independently written PyTorch U-Net of the DDPM architecture, for the benchmark's baseline check.

reference/torch_unet.py mirrors diffusers' module tree (its names are the checkpoint's names). This file is
written instead the way the paper's TensorFlow code (diffusion_tf/models/unet.py) is usually ported to
PyTorch by its users: `nin` layers (the attention's q, k, v and projection) as 1x1 convolutions on the NCHW
tensor, the attention weights by `torch.einsum`, the timestep embedding and resnet blocks as in the TF code,
and one flat list of modules per resolution. Same function, same parameter count, different code, so the
benchmark can check that the reference's timings are not the artefact of one way of writing the model
(issue 16: the baseline counts only at its best).

  python3 reference/torch_unet_tf.py     # self-test: same parameter count as torch_unet.UNet, and the same
                                         # outputs on the same weights (mapped name by name), S and L configs
"""

from __future__ import annotations

import math
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


def get_timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    # As the TF code: half sin, half cos, frequencies exp(-ln(10000) i / (half - 1)).
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000.0) / (half - 1)))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def Normalize(ch: int, groups: int, eps: float) -> nn.GroupNorm:
    return nn.GroupNorm(groups, ch, eps=eps)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float, groups: int, eps: float):
        super().__init__()
        self.norm1 = Normalize(cin, groups, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2 = Normalize(cout, groups, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    def __init__(self, ch: int, groups: int, eps: float):
        super().__init__()
        self.norm = Normalize(ch, groups, eps)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww)  # [B, C, HW]
        k = self.k(h).reshape(b, c, hh * ww)
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.einsum("bci,bcj->bij", q, k) * (c ** -0.5)  # [B, HW(q), HW(k)]
        w = torch.softmax(w, dim=2)
        h = torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class Down(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Up(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        self.resample: nn.Module | None = None


class UNetTF(nn.Module):
    """ch, ch_mult, num_res_blocks, attn_resolutions, dropout as in the TF code's `model` function."""

    def __init__(self, in_ch, out_ch, resolution, ch, ch_mult, num_res_blocks, attn_resolutions, dropout,
                 groups=32, eps=1e-6):
        super().__init__()
        self.ch = ch
        temb = ch * 4
        self.temb_dense0 = nn.Linear(ch, temb)
        self.temb_dense1 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(in_ch, ch, 3, 1, 1)
        n = len(ch_mult)
        hs_ch: List[int] = [ch]
        self.down = nn.ModuleList()
        cur, res = ch, resolution
        for i in range(n):
            lvl = Level()
            for _ in range(num_res_blocks):
                lvl.block.append(ResBlock(cur, ch * ch_mult[i], temb, dropout, groups, eps))
                cur = ch * ch_mult[i]
                if res in attn_resolutions:
                    lvl.attn.append(AttnBlock(cur, groups, eps))
                hs_ch.append(cur)
            if i != n - 1:
                lvl.resample = Down(cur)
                hs_ch.append(cur)
                res //= 2
            self.down.append(lvl)
        self.mid_block_1 = ResBlock(cur, cur, temb, dropout, groups, eps)
        self.mid_attn_1 = AttnBlock(cur, groups, eps)
        self.mid_block_2 = ResBlock(cur, cur, temb, dropout, groups, eps)
        self.up = nn.ModuleList()
        for i in reversed(range(n)):
            lvl = Level()
            for _ in range(num_res_blocks + 1):
                lvl.block.append(ResBlock(cur + hs_ch.pop(), ch * ch_mult[i], temb, dropout, groups, eps))
                cur = ch * ch_mult[i]
                if res in attn_resolutions:
                    lvl.attn.append(AttnBlock(cur, groups, eps))
            if i != 0:
                lvl.resample = Up(cur)
                res *= 2
            self.up.append(lvl)
        assert not hs_ch
        self.norm_out = Normalize(cur, groups, eps)
        self.conv_out = nn.Conv2d(cur, out_ch, 3, 1, 1)

    def forward(self, x, t):
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        temb = self.temb_dense1(F.silu(self.temb_dense0(get_timestep_embedding(t, self.ch))))
        hs = [self.conv_in(x)]
        for lvl in self.down:
            for j, blk in enumerate(lvl.block):
                h = blk(hs[-1], temb)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
                hs.append(h)
            if lvl.resample is not None:
                hs.append(lvl.resample(hs[-1]))
        h = self.mid_block_2(self.mid_attn_1(self.mid_block_1(hs[-1], temb)), temb)
        for lvl in self.up:
            for j, blk in enumerate(lvl.block):
                h = blk(torch.cat([h, hs.pop()], dim=1), temb)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
            if lvl.resample is not None:
                h = lvl.resample(h)
        assert not hs
        return self.conv_out(F.silu(self.norm_out(h)))


def from_config(cfg) -> UNetTF:
    """Build from a torch_unet.UNetConfig."""
    return UNetTF(cfg.in_channels, cfg.out_channels, cfg.resolution, cfg.ch, list(cfg.ch_mult), cfg.num_res_blocks,
                  list(cfg.attn_resolutions), cfg.dropout, cfg.groups, cfg.eps)


def copy_from_reference(dst: UNetTF, src) -> None:
    """Copy the weights of a torch_unet.UNet into this model, module by module (shapes of 1x1 convs adapted)."""

    def res(d: ResBlock, s) -> None:
        pairs = [(d.norm1, s.norm1), (d.conv1, s.conv1), (d.temb_proj, s.time_emb_proj), (d.norm2, s.norm2),
                 (d.conv2, s.conv2)]
        if s.conv_shortcut is not None:
            pairs.append((d.nin_shortcut, s.conv_shortcut))
        for a, b in pairs:
            a.load_state_dict(b.state_dict())

    def attn(d: AttnBlock, s) -> None:
        d.norm.load_state_dict(s.group_norm.state_dict())
        for a, b in [(d.q, s.to_q), (d.k, s.to_k), (d.v, s.to_v), (d.proj_out, s.to_out[0])]:
            a.weight.data.copy_(b.weight.data[:, :, None, None])
            a.bias.data.copy_(b.bias.data)

    with torch.no_grad():
        dst.conv_in.load_state_dict(src.conv_in.state_dict())
        dst.temb_dense0.load_state_dict(src.time_embedding.linear_1.state_dict())
        dst.temb_dense1.load_state_dict(src.time_embedding.linear_2.state_dict())
        for dl, sb in zip(dst.down, src.down_blocks):
            for j, r in enumerate(dl.block):
                res(r, sb.resnets[j])
                if len(dl.attn):
                    attn(dl.attn[j], sb.attentions[j])
            if dl.resample is not None:
                dl.resample.conv.load_state_dict(sb.downsamplers[0].conv.state_dict())
        res(dst.mid_block_1, src.mid_block.resnets[0])
        attn(dst.mid_attn_1, src.mid_block.attentions[0])
        res(dst.mid_block_2, src.mid_block.resnets[1])
        for ul, sb in zip(dst.up, src.up_blocks):
            for j, r in enumerate(ul.block):
                res(r, sb.resnets[j])
                if len(ul.attn):
                    attn(ul.attn[j], sb.attentions[j])
            if ul.resample is not None:
                ul.resample.conv.load_state_dict(sb.upsamplers[0].conv.state_dict())
        dst.norm_out.load_state_dict(src.conv_norm_out.state_dict())
        dst.conv_out.load_state_dict(src.conv_out.state_dict())


def self_test() -> None:
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_unet import CIFAR10, UNet, UNetConfig, count_params

    torch.manual_seed(0)
    for name, cfg, batch in [("S", UNetConfig(1, 1, 32, 32, [1, 2, 2, 2], 2, [16], 0.0), 4),
                             ("L", UNetConfig(**{**CIFAR10.to_dict(), "dropout": 0.0}), 2)]:
        ref, tf = UNet(cfg).eval(), from_config(cfg).eval()
        assert count_params(ref) == count_params(tf), (name, count_params(ref), count_params(tf))
        copy_from_reference(tf, ref)
        x = torch.randn(batch, cfg.in_channels, cfg.resolution, cfg.resolution)
        t = torch.tensor([0.0, 999.0, 500.0, 17.0][:batch])
        with torch.no_grad():
            a, b = ref(x, t), tf(x, t)
        err = float((a - b).abs().max() / a.abs().max())
        print(f"{name}: {count_params(ref):,} parameters in both; max |ref - tf| / max |ref| = {err:.2e}")
        assert err < 1e-5, err


if __name__ == "__main__":
    torch.set_num_threads(2)
    self_test()
