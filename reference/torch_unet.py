"""Independent PyTorch reference of the DDPM U-Net (Ho et al. 2020), plain torch (no diffusers).

Parameter names, shapes and state_dict order are exactly those of diffusers' UNet2DModel configured like
google/ddpm-cifar10-32 (DownBlock2D / AttnDownBlock2D, UNetMidBlock2D, UpBlock2D / AttnUpBlock2D, single-head
attention, downsample_padding 0, flip_sin_to_cos False, freq_shift 1, norm_eps 1e-6), so a diffusers checkpoint
loads with load_diffusers_state_dict() and the TypeScript graph can be compared name by name.

Semantics (== the paper's TF code == diffusers):
  temb   = linear_2(SiLU(linear_1([sin(t f), cos(t f)]))), f_i = exp(-ln(10000) i / (half - 1)), half = ch / 2
  resnet = shortcut(x) + conv2(dropout(SiLU(norm2(conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb))[:, :, None, None]))))
  attn   = x + to_out.0(softmax(q k^T / sqrt(C)) v), q/k/v = Linear over channels of group_norm(x) as [B, HW, C]
  down   = conv3x3 stride 2, padding 0, after padding right/bottom by one zero
  up     = nearest x2 then conv3x3
  out    = conv_out(SiLU(conv_norm_out(h)))
Up blocks concatenate the popped skip (torch.cat([h, skip], dim=1)) before each of their num_res_blocks + 1 resnets.

State_dict order (as diffusers registers modules): conv_in, time_embedding, down_blocks, up_blocks, mid_block,
conv_norm_out, conv_out (UNet2DModel sets self.mid_block = None before creating up_blocks and assigns the real
module afterwards, so mid_block is registered after up_blocks). Inside a block with attention the attentions
ModuleList is registered before the resnets (AttnDownBlock2D, UNetMidBlock2D, AttnUpBlock2D).

Also here: the deterministic counter-based init shared with TypeScript (src/util/rng.ts hashU32 / hashUniform),
the FNV-1a name hash, fixture and paper initialisations, a FLOP counter, and the diffusion schedule helpers
used by the benchmark server.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------------------
# Config


@dataclass
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    resolution: int = 32
    ch: int = 128
    ch_mult: List[int] = field(default_factory=lambda: [1, 2, 2, 2])
    num_res_blocks: int = 2
    attn_resolutions: List[int] = field(default_factory=lambda: [16])
    dropout: float = 0.1
    groups: int = 32
    eps: float = 1e-6

    def to_dict(self) -> dict:
        return asdict(self)


CIFAR10 = UNetConfig(3, 3, 32, 128, [1, 2, 2, 2], 2, [16], 0.1)
CIFAR10_PARAM_COUNT = 35_746_307  # google/ddpm-cifar10-32; the paper's "35.7M"

# ----------------------------------------------------------------------------------------------------------
# Modules (attribute names == diffusers state_dict names)


class TimestepEmbedding(nn.Module):
    def __init__(self, ch: int, temb_ch: int):
        super().__init__()
        self.linear_1 = nn.Linear(ch, temb_ch)
        self.linear_2 = nn.Linear(temb_ch, temb_ch)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(emb)))


def timestep_features(t: torch.Tensor, ch: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal features [N, ch]: [sin(t f), cos(t f)], f_i = exp(-ln(10000) i / (half - 1)).

    Computed in float64 and cast to the model dtype (diffusers computes them in float32; the difference is
    below float32 rounding for integer t <= 1000)."""
    half = ch // 2
    i = torch.arange(half, dtype=torch.float64)
    freqs = torch.exp(-math.log(10000.0) * i / (half - 1))
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if ch % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb.to(dtype)


class ResnetBlock2D(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, groups: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        s = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return s + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions (diffusers Attention, heads = 1)."""

    def __init__(self, ch: int, groups: int, eps: float):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=eps)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.group_norm(x).reshape(b, c, hh * ww).transpose(1, 2).contiguous()  # [B, HW, C]
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * (c ** -0.5), dim=-1)  # [B, HW(q), HW(k)]
        h = self.to_out[0](torch.bmm(w, v))
        return x + h.transpose(1, 2).reshape(b, c, hh, ww)


class Downsample2D(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2D(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, in_ch, out_ch, temb_ch, n, attn, add_down, dropout, groups, eps):
        super().__init__()
        resnets = [ResnetBlock2D(in_ch if j == 0 else out_ch, out_ch, temb_ch, dropout, groups, eps) for j in range(n)]
        if attn:  # registered before resnets, as in diffusers AttnDownBlock2D
            self.attentions = nn.ModuleList([AttentionBlock(out_ch, groups, eps) for _ in range(n)])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList(resnets)
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch)]) if add_down else None

    def forward(self, h, temb):
        outs = []
        for j, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[j](h)
            outs.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            outs.append(h)
        return h, outs


class MidBlock(nn.Module):
    def __init__(self, ch, temb_ch, dropout, groups, eps):
        super().__init__()
        self.attentions = nn.ModuleList([AttentionBlock(ch, groups, eps)])
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb_ch, dropout, groups, eps) for _ in range(2)])

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        h = self.attentions[0](h)
        return self.resnets[1](h, temb)


class UpBlock(nn.Module):
    def __init__(self, in_chs: Sequence[int], out_ch, temb_ch, attn, add_up, dropout, groups, eps):
        super().__init__()
        resnets = [ResnetBlock2D(c, out_ch, temb_ch, dropout, groups, eps) for c in in_chs]
        if attn:
            self.attentions = nn.ModuleList([AttentionBlock(out_ch, groups, eps) for _ in in_chs])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList(resnets)
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if add_up else None

    def forward(self, h, skips: List[torch.Tensor], temb):
        for j, resnet in enumerate(self.resnets):
            h = resnet(torch.cat([h, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                h = self.attentions[j](h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch, mult, nrb, g, eps, dr = cfg.ch, list(cfg.ch_mult), cfg.num_res_blocks, cfg.groups, cfg.eps, cfg.dropout
        temb_ch = 4 * ch
        levels = len(mult)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch, temb_ch)
        # Same registration order as diffusers (mid_block after up_blocks in the state_dict).
        self.down_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()

        skip_chs = [ch]
        cur = ch
        res = cfg.resolution
        level_res = []
        for i in range(levels):
            out = ch * mult[i]
            level_res.append(res)
            last = i == levels - 1
            self.down_blocks.append(
                DownBlock(cur, out, temb_ch, nrb, res in cfg.attn_resolutions, not last, dr, g, eps))
            cur = out
            skip_chs += [out] * nrb
            if not last:
                skip_chs.append(out)
                res //= 2
        for i in reversed(range(levels)):
            out = ch * mult[i]
            in_chs = []
            for j in range(nrb + 1):
                in_chs.append(cur + skip_chs.pop())
                cur = out
            self.up_blocks.append(
                UpBlock(in_chs, out, temb_ch, level_res[i] in cfg.attn_resolutions, i != 0, dr, g, eps))
        assert not skip_chs
        self.mid_block = MidBlock(ch * mult[-1], temb_ch, dr, g, eps)
        self.conv_norm_out = nn.GroupNorm(g, ch, eps=eps)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(t):
            t = torch.tensor(t)
        t = t.reshape(-1)
        if t.numel() == 1 and x.shape[0] != 1:
            t = t.expand(x.shape[0])
        temb = self.time_embedding(timestep_features(t, self.cfg.ch, x.dtype))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            h, outs = blk(h, temb)
            skips += outs
        h = self.mid_block(h, temb)
        for blk in self.up_blocks:
            h = blk(h, skips, temb)
        assert not skips
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def param_list(model: nn.Module) -> List[Tuple[str, List[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


# ----------------------------------------------------------------------------------------------------------
# Loading diffusers checkpoints (current or legacy attention names)

_LEGACY_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def convert_diffusers_keys(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map legacy attention names (query/key/value/proj_attn) to current ones (to_q/to_k/to_v/to_out.0);
    current names pass through. Legacy 1x1-conv-shaped attention weights [C, C, 1, 1] are squeezed."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if len(parts) >= 3 and parts[-2] in _LEGACY_ATTN and ".attentions." in k:
            k = ".".join(parts[:-2] + [_LEGACY_ATTN[parts[-2]], parts[-1]])
        if ".attentions." in k and k.endswith(".weight") and v.dim() == 4 and "group_norm" not in k:
            v = v[:, :, 0, 0]
        out[k] = v
    return out


def load_diffusers_state_dict(model: UNet, sd: Dict[str, torch.Tensor]) -> None:
    model.load_state_dict(convert_diffusers_keys(sd), strict=True)


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Minimal safetensors reader (8-byte LE header length, JSON header, raw LE data); F32/F16/F64 only."""
    import json
    import struct

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dt = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=dt[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float32))
    return out


# ----------------------------------------------------------------------------------------------------------
# Counter-based deterministic values (mirror of src/util/rng.ts)

_M32 = np.uint64(0xFFFFFFFF)


def hash_u32(seed: int, index) -> np.ndarray:
    """murmur3 fmix32 of (index * 0x9E3779B9 + seed) mod 2^32, vectorised; index: int or integer array."""
    i = np.asarray(index, dtype=np.uint64) & _M32
    h = (i * np.uint64(0x9E3779B9) + np.uint64(seed & 0xFFFFFFFF)) & _M32
    h = ((h ^ (h >> np.uint64(16))) * np.uint64(0x85EBCA6B)) & _M32
    h = ((h ^ (h >> np.uint64(13))) * np.uint64(0xC2B2AE35)) & _M32
    h = h ^ (h >> np.uint64(16))
    return h.astype(np.uint32)


def hash_uniform(seed: int, n: int, scale: float) -> np.ndarray:
    """((hashU32(seed, i) / 2^32) * 2 - 1) * scale in float64, then cast to float32 (as the TS Float32Array)."""
    u = hash_u32(seed, np.arange(n, dtype=np.uint64)).astype(np.float64)
    return (((u / 4294967296.0) * 2.0 - 1.0) * scale).astype(np.float32)


def fnv1a32(name: str) -> int:
    h = 0x811C9DC5
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def sample_indices(seed: int, count: int, numel: int) -> List[int]:
    """hashU32(seed, k) % numel for k = 0..count-1."""
    return [int(v) for v in (hash_u32(seed, np.arange(count, dtype=np.uint64)).astype(np.uint64) % np.uint64(numel))]


# ----------------------------------------------------------------------------------------------------------
# Initialisations


def _param_kinds(model: nn.Module) -> Dict[str, str]:
    kinds = {}
    for mname, m in model.named_modules():
        pre = mname + "." if mname else ""
        if isinstance(m, nn.GroupNorm):
            kinds[pre + "weight"], kinds[pre + "bias"] = "norm_weight", "norm_bias"
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            kinds[pre + "weight"], kinds[pre + "bias"] = "weight", "bias"
    return kinds


def fixture_value(name: str, shape: Sequence[int], kind: str) -> np.ndarray:
    """The fixture value of one parameter (float32, row-major of the torch shape)."""
    n = int(np.prod(shape))
    seed = fnv1a32(name)
    if kind == "weight":
        fan_in = int(np.prod(shape[1:]))  # in * kh * kw for conv, in for linear
        v = hash_uniform(seed, n, math.sqrt(3.0 / fan_in))
    elif kind == "bias" or kind == "norm_bias":
        v = hash_uniform(seed, n, 0.1)
    elif kind == "norm_weight":
        v = (1.0 + hash_uniform(seed, n, 0.1).astype(np.float64)).astype(np.float32)
    else:
        raise ValueError(kind)
    return v.reshape(shape)


@torch.no_grad()
def init_fixture(model: nn.Module) -> None:
    """Deterministic fixture init of EVERY parameter (no zeros), identical in TypeScript:
    conv/linear weight = hashUniform(fnv(name), n, sqrt(3/fan_in)); bias = hashUniform(fnv(name), n, 0.1);
    GroupNorm weight = 1 + hashUniform(fnv(name), n, 0.1) (u already rounded to float32, 1 + u rounded to float32);
    GroupNorm bias = hashUniform(fnv(name), n, 0.1)."""
    kinds = _param_kinds(model)
    for name, p in model.named_parameters():
        v = fixture_value(name, tuple(p.shape), kinds[name])
        p.copy_(torch.from_numpy(v).to(p.dtype))


def _zero_init_names(model: nn.Module) -> List[str]:
    names = []
    for mname, m in model.named_modules():
        if isinstance(m, ResnetBlock2D):
            names.append(mname + ".conv2")
        elif isinstance(m, AttentionBlock):
            names.append(mname + ".to_out.0")
    names.append("conv_out")
    return names


@torch.no_grad()
def init_paper(model: nn.Module, generator: Optional[torch.Generator] = None) -> None:
    """The original TF code's init: every conv/dense weight ~ variance_scaling(1.0, 'fan_avg', 'uniform'),
    i.e. U(-a, a) with a = sqrt(3 / fan_avg), fan_avg = (fan_in + fan_out) / 2 with fan_in = in*kh*kw and
    fan_out = out*kh*kw; all biases 0; GroupNorm weight 1, bias 0. Zero-initialised (TF: init_scale=0, which
    the TF code turns into scale 1e-10; we use exact 0): conv2 of each resnet, to_out.0 (TF proj_out) of each
    attention, and conv_out."""
    zero = set(_zero_init_names(model))
    for mname, m in model.named_modules():
        if isinstance(m, nn.GroupNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight
            rf = int(np.prod(w.shape[2:])) if w.dim() > 2 else 1
            fan_avg = (w.shape[1] * rf + w.shape[0] * rf) / 2.0
            if mname in zero:
                w.zero_()
            else:
                a = math.sqrt(3.0 / fan_avg)
                w.uniform_(-a, a, generator=generator)
            m.bias.zero_()


# ----------------------------------------------------------------------------------------------------------
# FLOPs (conv / linear / attention matmuls; MACs * 2; norms, activations, softmax not counted)


def count_flops(model: UNet, batch: int = 1) -> Dict[str, float]:
    cfg = model.cfg
    macs = {"conv": 0, "linear": 0, "attn_matmul": 0}
    hooks = []

    def conv_hook(m, inp, out):
        kh, kw = m.kernel_size
        macs["conv"] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def lin_hook(m, inp, out):
        macs["linear"] += out.numel() * m.in_features

    def attn_hook(m, inp, out):
        b, c, h, w = inp[0].shape
        macs["attn_matmul"] += 2 * b * (h * w) * (h * w) * c  # q k^T and w v

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, AttentionBlock):
            hooks.append(m.register_forward_hook(attn_hook))
    was_training = model.training
    model.eval()
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        model(torch.zeros(batch, cfg.in_channels, cfg.resolution, cfg.resolution, dtype=dtype),
              torch.zeros(batch))
    for h in hooks:
        h.remove()
    model.train(was_training)
    total = sum(macs.values())
    return {
        "gflop_per_image": 2.0 * total / batch / 1e9,
        "gmac_per_image": total / batch / 1e9,
        "breakdown_gmac_per_image": {k: v / batch / 1e9 for k, v in macs.items()},
    }


# ----------------------------------------------------------------------------------------------------------
# Diffusion schedule (linear betas 1e-4 .. 0.02, T = 1000) for the benchmark server


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> Dict[str, torch.Tensor]:
    betas = torch.linspace(beta_1, beta_T, T, dtype=torch.float64)
    alphas = 1.0 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
    # fixedlarge (TF code, 0-indexed arrays): np.append(posterior_variance[1], betas[1:])
    fixedlarge_var = torch.cat([post_var[1:2], betas[1:]])
    return {"betas": betas, "alphas": alphas, "abar": abar, "abar_prev": abar_prev,
            "post_var": post_var, "fixedlarge_var": fixedlarge_var}


# Values printed by src/util/rng.ts (npx tsx) for the same arguments: the Python mirror must match exactly.
TS_HASH_U32_VECTORS = [((0, 0), 0), ((1, 0), 1364076727), ((0, 1), 2462723854), ((12345, 7), 2795887828),
                       ((0xDEADBEEF, 4294967295), 412956564), ((2166136261, 123456), 3318538641),
                       ((0x5BD1E995 ^ 0x811C9DC5, 63), 1430165775)]
TS_HASH_UNIFORM_987654321_5_037 = [-0.12121106684207916, 0.3518187403678894, -0.08322723954916,
                                   -0.21682795882225037, 0.3672003149986267]


def self_test() -> None:
    for (seed, i), want in TS_HASH_U32_VECTORS:
        assert int(hash_u32(seed, i)) == want, (seed, i)
    assert [float(v) for v in hash_uniform(987654321, 5, 0.37)] == TS_HASH_UNIFORM_987654321_5_037
    assert fnv1a32("") == 0x811C9DC5 and fnv1a32("a") == 0xE40C292C and fnv1a32("foobar") == 0xBF9CF968


if __name__ == "__main__":
    torch.set_num_threads(2)
    self_test()
    print("hashU32 / hashUniform / fnv1a32 match the TypeScript test vectors")
    m = UNet(CIFAR10)
    n = count_params(m)
    print("CIFAR-10 U-Net parameters:", n)
    assert n == CIFAR10_PARAM_COUNT, n
    print("flops:", count_flops(m))
