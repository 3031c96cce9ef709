"""diffusers' inference timesteps, computed by numpy as diffusers' schedulers compute them (no diffusers).

Written from DDPMScheduler.set_timesteps / DDIMScheduler.set_timesteps (diffusers src/diffusers/schedulers/
scheduling_ddpm.py, scheduling_ddim.py), which share these three expressions, timesteps descending:

  leading   np.arange(0, K) * (T // K), .round(), reversed, + steps_offset
  trailing  np.round(np.arange(T, 0, -T / K)) - 1          (steps_offset not used)
  linspace  np.linspace(0, T - 1, K).round(), reversed     (steps_offset not used)

Writes test/fixtures/diffusers_timesteps.json, read by src/diffusion/timesteps.test.ts. Each case keeps
numpy's raw output: for some K numpy's arange gives 'trailing' K + 1 entries, the last -1.

Run: /usr/bin/python3 reference/diffusers_timesteps.py
"""

import json
import os

import numpy as np


def leading(T, K, offset):
    ratio = T // K
    return ((np.arange(0, K) * ratio).round()[::-1].copy().astype(np.int64) + offset).tolist()


def trailing(T, K):
    return (np.round(np.arange(T, 0, -T / K)).astype(np.int64) - 1).tolist()


def linspace(T, K):
    return np.linspace(0, T - 1, K).round()[::-1].copy().astype(np.int64).tolist()


CASES = {
    1000: [1, 2, 3, 7, 10, 20, 21, 25, 30, 50, 61, 100, 103, 121, 333, 1000],
    50: list(range(1, 51)),
    256: [1, 5, 16, 49, 98, 128, 256],
    4000: [10, 50, 61, 122],
}

cases = []
for T, Ks in CASES.items():
    for K in Ks:
        cases.append({"T": T, "K": K, "spacing": "leading", "offset": 0, "timesteps": leading(T, K, 0)})
        if (K - 1) * (T // K) + 1 < T:
            cases.append({"T": T, "K": K, "spacing": "leading", "offset": 1, "timesteps": leading(T, K, 1)})
        cases.append({"T": T, "K": K, "spacing": "trailing", "offset": 0, "timesteps": trailing(T, K)})
        cases.append({"T": T, "K": K, "spacing": "linspace", "offset": 0, "timesteps": linspace(T, K)})

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "diffusers_timesteps.json")
with open(out, "w") as f:
    json.dump({"numpy": np.__version__, "cases": cases}, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {out}: {len(cases)} cases")
