"""PyTorch benchmark server for the TypeScript benchmark harness (bench/).

Protocol: one JSON command per line on stdin, exactly one JSON line answered on stdout per command
(logs and warnings go to stderr). Start it with reference/torch_server.sh (sets the OpenBLAS library path).

  {"cmd":"setup","name":NAME,"impl":IMPL[,"batch":B]}  build model + data + optimizer for NAME with the U-Net
                               IMPL (at batch B instead of NAME's own), warm up once
                               -> {"ok":true,"name","impl","setup_ms","warmup_ms","params","batch","config",...}
  {"cmd":"run","name":NAME,"impl":IMPL}    one timed run of NAME (must be set up) -> {"ok":true,"ms":wall-clock ms,...}
  {"cmd":"drop","name":NAME,"impl":IMPL}   forget a setup (frees its memory)
  {"cmd":"flops","name":"S"|"L"|NAME}  one forward, per image -> {"ok":true,"gflop_per_image","gmac_per_image",...}
  {"cmd":"info"}               torch version, threads
Or, for the memory suite, one measurement per process: torch_server.sh --memory NAME BATCH RUNS IMPL prints
{"maxrss_mb","setup_ms","run_ms"} (setup includes the warm-up run).
  {"cmd":"quit"}               -> {"ok":true} and exit
  errors                       -> {"ok":false,"error":message}

NAMEs:
  S-fwd                  S model (1x32x32, ch 32, ch_mult 1,2,2,2, 2 res blocks, attn at 16), batch 64, one
                         eps-prediction forward under torch.no_grad() at random t, float32
  S-train                one training step on S, batch 64: x_t = qSample(x0, t, noise) with t ~ U{0..999},
                         MSE(model(x_t, t), noise), backward, Adam(lr 2e-4, eps 1e-8) step, dropout 0.1 (train mode)
  L-fwd / L-train        the same with the CIFAR-10 model (3x32x32, ch 128, 35.7M params), batch 16
  S-sample-ddim50        a whole 50-step DDIM (eta 0) loop over t = 980, 960, ..., 0 of 64 images from N(0, I), S model
  S-sample-ancestral100  100 steps (t = 999 .. 900) of the 1000-step Algorithm 2 loop, fixedlarge variance, 64 images
  inception-fid256       FID Inception features (pool_3 and fc logits) of 256 images 3x32x32 in [-1, 1], pytorch-fid's
                         preprocessing ([0, 1], bilinear to 299, 2x - 1), in chunks of 32 under no_grad, float32,
                         reference/inception_fid.py's model with its hash weights; warm-up: one chunk
IMPLs (the U-Net rows): "reference" = torch_unet.UNet (diffusers' module tree, the default), "tf-port" =
torch_unet_tf.UNetTF (a second, independently written U-Net of the same function and parameter count, in the style
of the TF code's PyTorch ports); the benchmark times both and takes the faster as PyTorch's time.
Threads: torch.set_num_threads(TORCH_THREADS, default 2); OpenBLAS's own pool is OPENBLAS_NUM_THREADS, set by
torch_server.sh from the environment (the harness chooses both by measurement).
All runs: float32, torch.manual_seed(0) at setup. Weights: train rows use the paper's
init (torch_unet.init_paper); fwd and sampling rows keep torch's default init so that no layer is all-zero.
x0 for training is a fixed random batch in [-1, 1] (timing does not depend on data). Warm-up: fwd/train run once; the
sampling rows run a 2-step version of their loop (same shapes and code path) instead of a whole second loop.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import CIFAR10, UNet, UNetConfig, count_flops, count_params, init_paper, linear_schedule  # noqa: E402
import torch_unet_tf  # noqa: E402
import inception_fid  # noqa: E402

THREADS = int(os.environ.get("TORCH_THREADS", "2"))
IMPLS = ("reference", "tf-port")


def model_config(size: str, dropout: float) -> UNetConfig:
    if size == "S":
        return UNetConfig(1, 1, 32, 32, [1, 2, 2, 2], 2, [16], dropout)
    if size == "L":
        c = UNetConfig(**CIFAR10.to_dict())
        c.dropout = dropout
        return c
    raise ValueError(f"unknown model size {size!r} (S or L)")


SETUPS = {
    "S-fwd": ("S", 64, "fwd"),
    "S-train": ("S", 64, "train"),
    "L-fwd": ("L", 16, "fwd"),
    "L-train": ("L", 16, "train"),
    "S-sample-ddim50": ("S", 64, "ddim50"),
    "S-sample-ancestral100": ("S", 64, "ancestral100"),
    "inception-fid256": ("I", 256, "inception"),
}
INCEPTION_CHUNK = 32


class Bench:
    def __init__(self, name: str, impl: str = "reference", batch: int | None = None):
        if name not in SETUPS:
            raise ValueError(f"unknown setup {name!r}; known: {', '.join(SETUPS)}")
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; known: {', '.join(IMPLS)}")
        size, default_batch, kind = SETUPS[name]
        batch = batch or default_batch
        self.name, self.size, self.batch, self.kind, self.impl = name, size, batch, kind, impl
        torch.manual_seed(0)
        if kind == "inception":
            self.cfg = None
            self.model = inception_fid.hash_model(torch.float32)
            self.x = torch.rand(batch, 3, 32, 32) * 2 - 1
            return
        self.cfg = model_config(size, 0.1 if kind == "train" else 0.0)
        self.model = UNet(self.cfg)  # torch default init: all weights non-zero
        if kind == "train":
            init_paper(self.model)
        if impl == "tf-port":  # the same weights in the second implementation
            tf = torch_unet_tf.from_config(self.cfg)
            torch_unet_tf.copy_from_reference(tf, self.model)
            self.model = tf  # the paper's init (zero conv2 / to_out.0 / conv_out) for training
        self.T = 1000
        sch = linear_schedule(self.T)
        self.sqrt_abar = sch["abar"].sqrt().float()
        self.sqrt_1m_abar = (1.0 - sch["abar"]).sqrt().float()
        self.sch = sch
        c, r = self.cfg.in_channels, self.cfg.resolution
        self.shape = (batch, c, r, r)
        if kind == "train":
            self.model.train()
            self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-4, eps=1e-8)
            self.x0 = torch.rand(self.shape) * 2 - 1
        else:
            self.model.eval()
            self.x = torch.randn(self.shape)

    # --- the timed bodies -------------------------------------------------------------------------------
    def fwd(self):
        t = torch.randint(0, self.T, (self.batch,)).float()
        with torch.no_grad():
            out = self.model(self.x, t)
        return {"out_mean_abs": float(out.abs().mean())}

    def train(self):
        t = torch.randint(0, self.T, (self.batch,))
        noise = torch.randn(self.shape)
        xt = self.sqrt_abar[t][:, None, None, None] * self.x0 + self.sqrt_1m_abar[t][:, None, None, None] * noise
        self.opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(self.model(xt, t.float()), noise)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss)}

    def ddim(self, steps: int):
        abar = self.sch["abar"]
        seq = list(range(0, self.T, self.T // 50))[-steps:]  # 0, 20, ..., 980 (last `steps` of them)
        x = torch.randn(self.shape)
        with torch.no_grad():
            for i in reversed(range(len(seq))):
                t = seq[i]
                a_t = float(abar[t])
                a_prev = float(abar[seq[i - 1]]) if i > 0 else 1.0
                eps = self.model(x, torch.full((self.batch,), float(t)))
                x0 = (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)
                x = math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps
        return {"x_mean_abs": float(x.abs().mean()), "steps": len(seq)}

    def ancestral(self, steps: int):
        betas, alphas, abar = self.sch["betas"], self.sch["alphas"], self.sch["abar"]
        var = self.sch["fixedlarge_var"]
        x = torch.randn(self.shape)
        with torch.no_grad():
            for t in range(self.T - 1, self.T - 1 - steps, -1):
                eps = self.model(x, torch.full((self.batch,), float(t)))
                c1 = 1.0 / math.sqrt(float(alphas[t]))
                c2 = float(betas[t]) / math.sqrt(1.0 - float(abar[t]))
                x = c1 * (x - c2 * eps)
                if t > 0:
                    x = x + math.sqrt(float(var[t])) * torch.randn(self.shape)
        return {"x_mean_abs": float(x.abs().mean()), "steps": steps}

    def inception(self, images: int):
        with torch.no_grad():
            for s in range(0, images, INCEPTION_CHUNK):
                out = self.model((self.x[s:s + INCEPTION_CHUNK] + 1) / 2)
        return {"pool_mean": float(out["pool"].mean()), "images": images}

    def run_once(self, warmup: bool = False):
        if self.kind == "fwd":
            return self.fwd()
        if self.kind == "train":
            return self.train()
        if self.kind == "ddim50":
            return self.ddim(2 if warmup else 50)
        if self.kind == "ancestral100":
            return self.ancestral(2 if warmup else 100)
        if self.kind == "inception":
            return self.inception(INCEPTION_CHUNK if warmup else self.batch)
        raise AssertionError(self.kind)


def timed(fn):
    t0 = time.perf_counter()
    extra = fn()
    return (time.perf_counter() - t0) * 1000.0, extra


_flops_cache = {}


def flops(name: str) -> dict:
    size = name.split("-")[0]
    if size == "I" and size not in _flops_cache:
        m = inception_fid.hash_model(torch.float32)
        _flops_cache[size] = {**inception_fid.count_flops(m), "params": count_params(m), "size": size}
    if size not in _flops_cache:
        m = UNet(model_config(size, 0.0))
        _flops_cache[size] = {**count_flops(m), "params": count_params(m), "size": size}
    return _flops_cache[size]


def handle(state: dict, msg: dict) -> dict:
    cmd = msg.get("cmd")
    benches = state.setdefault("benches", {})
    if cmd == "setup":
        name, impl = msg.get("name"), msg.get("impl", "reference")
        benches.pop((name, impl), None)
        t0 = time.perf_counter()
        b = Bench(name, impl, msg.get("batch"))
        setup_ms = (time.perf_counter() - t0) * 1000.0
        warm_ms, _ = timed(lambda: b.run_once(warmup=True))
        benches[(name, impl)] = b
        return {"ok": True, "name": name, "impl": impl, "setup_ms": setup_ms, "warmup_ms": warm_ms,
                "params": count_params(b.model),
                "batch": b.batch, "config": b.cfg.to_dict() if b.cfg else {"model": "fid-inception-v3"},
                "threads": torch.get_num_threads(),
                "torch": torch.__version__}
    if cmd == "run":
        name, impl = msg.get("name"), msg.get("impl", "reference")
        b = benches.get((name, impl))
        if b is None:
            raise ValueError(f"run {name!r} ({impl}): not set up (set up: {list(benches)}); send setup first")
        ms, extra = timed(b.run_once)
        return {"ok": True, "name": name, "impl": impl, "ms": ms, **extra}
    if cmd == "drop":
        benches.pop((msg.get("name"), msg.get("impl", "reference")), None)
        return {"ok": True}
    if cmd == "flops":
        return {"ok": True, "name": msg.get("name", "S"), **flops(msg.get("name", "S"))}
    if cmd == "info":
        return {"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "setups": list(SETUPS),
                "impls": list(IMPLS)}
    if cmd == "quit":
        return {"ok": True, "quit": True}
    raise ValueError(f"unknown cmd {cmd!r}")


def memory(name: str, batch: int, runs: int, impl: str) -> None:
    """One memory measurement in this process: set up NAME at BATCH, run it RUNS times, print peak RSS (MB)."""
    import resource

    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    b = Bench(name, impl, batch)
    b.run_once(warmup=True)
    setup_ms = (time.perf_counter() - t0) * 1000.0
    t1 = time.perf_counter()
    for _ in range(runs):
        b.run_once()
    run_ms = (time.perf_counter() - t1) * 1000.0 / runs
    print(json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "setup_ms": setup_ms,
                      "run_ms": run_ms}), flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--memory":  # --memory NAME BATCH RUNS IMPL
        memory(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    torch.set_num_threads(THREADS)
    state: dict = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # anything printed by accident must not corrupt the protocol
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            ans = handle(state, json.loads(line))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            ans = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(ans) + "\n")
        out.flush()
        if ans.get("quit"):
            break


if __name__ == "__main__":
    main()
