"""Writes test/fixtures/metrics.json: reference values of the evaluation metrics (src/eval/metrics.ts) computed
with numpy and scipy in float64 from small random feature sets.

Run (from anywhere; about a second):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OMP_NUM_THREADS=1 /usr/bin/python3 reference/make_metric_fixtures.py

Every input (features, logits) is rounded to float32 first and stored as base64 of its little-endian float32
bytes, so both sides start from identical numbers; float64 reference arrays (mu, sigma) are stored as base64 of
little-endian float64. Deterministic: numpy's default_rng with fixed seeds, so re-running rewrites an identical
file (with the same numpy version).

- FID: mu and sigma as pytorch-fid computes them (np.mean, np.cov(rowvar=False)); the distance both the
  pytorch-fid way (scipy.linalg.sqrtm of sigma1.dot(sigma2), real part, retried with 1e-6 added to the
  diagonals when the root is not finite) and by an eigenvalue route (sqrt(S_a) = V diag(sqrt l) V^T from
  np.linalg.eigh, then the square roots of np.linalg.eigvalsh(sqrt(S_a) S_b sqrt(S_a))), eigenvalues at or below
  d * 2^-52 * (the largest) counted as 0. Cases: d = 16 and 64 with more samples than dimensions
  (well-conditioned: the two routes agree to ~1e-12), and two rank-deficient ones (n < d for one or both sets),
  where sqrtm of the singular product is only accurate to ~1e-8 and the eigenvalue route is the reference.
- IS: the original Inception Score code's arithmetic (softmax, splits of rows [i n // s, (i + 1) n // s),
  exp(mean KL)), mean and np.std over splits.
- KID: per-subset unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (clean-fid's formula), on stored subset
  indices; mean and np.std over subsets.
- Precision / recall (Kynkaanniemi et al. 2019): brute-force squared distances as sums of squared differences;
  a point's radius is its (k+1)-th smallest distance in its own set (the first is itself, 0); inside means
  distance <= radius. The smallest relative gap between any compared distance and radius is stored (and
  asserted > 1e-9) so that the TS side's different rounding cannot flip a comparison.
"""

from __future__ import annotations

import base64
import json
import os

import numpy as np
import scipy
import scipy.linalg

FORMAT = "ddpm-ts/metric-fixture/v1"
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "fixtures", "metrics.json")
EPS = np.finfo(np.float64).eps


def f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def enc(a: np.ndarray) -> dict:
    """A float32 or float64 array as {dtype, shape, base64 of its little-endian bytes}."""
    dtype = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}[a.dtype]
    raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    return {"dtype": dtype, "shape": list(a.shape), "base64": base64.b64encode(raw).decode("ascii")}


def num(v) -> float:
    v = float(v)
    assert np.isfinite(v), v
    return v


# ---- FID ------------------------------------------------------------------------------------------------------


def gaussian_features(rng: np.random.Generator, n: int, d: int, shift: float, decay: float) -> np.ndarray:
    """n rows of correlated features N(mu, W W^T), rounded to float32: W = Q diag(decay^j) with Q a random
    orthogonal matrix, so the covariance's condition number is about decay^(-2 (d - 1)) (times the sampling's)."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    w = q * (decay ** np.arange(d))[None, :]
    mu = shift + 0.5 * rng.standard_normal(d)
    return f32(rng.standard_normal((n, d)) @ w.T + mu)


def fid_sqrtm(mu1, s1, mu2, s2, eps=1e-6) -> dict:
    """The pytorch-fid arithmetic: trace of the real part of sqrtm(S1 S2), retried with eps I added."""
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    offset_used = False
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
        offset_used = True
    max_imag = float(np.max(np.abs(covmean.imag))) if np.iscomplexobj(covmean) else 0.0
    covmean = covmean.real
    diff = mu1 - mu2
    fid = diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    return {"fid": num(fid), "tr_sqrt": num(np.trace(covmean)), "offset_used": offset_used, "max_imag": max_imag}


def above_roundoff(values: np.ndarray) -> np.ndarray:
    floor = len(values) * EPS * np.max(np.abs(values))
    return np.where(values > floor, values, 0.0)


def tr_sqrt_eig(s1: np.ndarray, s2: np.ndarray) -> float:
    l, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(above_roundoff(l))[None, :]) @ v.T
    m = root @ s2 @ root
    m = 0.5 * (m + m.T)
    return float(np.sum(np.sqrt(above_roundoff(np.linalg.eigvalsh(m)))))


def fid_case(name: str, seed: int, d: int, na: int, nb: int, decay: float) -> dict:
    rng = np.random.default_rng(seed)
    a = gaussian_features(rng, na, d, shift=0.3, decay=decay)
    b = gaussian_features(rng, nb, d, shift=0.5, decay=decay)
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    mu_a, mu_b = a64.mean(axis=0), b64.mean(axis=0)
    s_a, s_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    mean_term = float(np.sum((mu_a - mu_b) ** 2))
    tr = tr_sqrt_eig(s_a, s_b)
    trace_term = float(np.trace(s_a) + np.trace(s_b) - 2 * tr)
    sq = fid_sqrtm(mu_a, s_a, mu_b, s_b)
    eig_a = np.linalg.eigvalsh(s_a)
    eig_b = np.linalg.eigvalsh(s_b)
    return {
        "name": name,
        "d": d,
        "a": enc(a),
        "b": enc(b),
        "mu_a": enc(mu_a),
        "sigma_a": enc(s_a),
        "mu_b": enc(mu_b),
        "sigma_b": enc(s_b),
        "rank_a": int(np.linalg.matrix_rank(s_a)),
        "rank_b": int(np.linalg.matrix_rank(s_b)),
        "cond_a": num(eig_a[-1] / eig_a[0]) if na > d else None,
        "cond_b": num(eig_b[-1] / eig_b[0]) if nb > d else None,
        "mean_term": num(mean_term),
        "trace_term": num(trace_term),
        "tr_sqrt_eig": num(tr),
        "fid_eig": num(mean_term + trace_term),
        "sqrtm": sq,
        "fid_sqrtm": sq["fid"],
    }


# ---- IS -------------------------------------------------------------------------------------------------------


def inception_score(logits: np.ndarray, splits: int) -> dict:
    x = logits.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    preds = e / e.sum(axis=1, keepdims=True)
    n = preds.shape[0]
    scores = []
    for i in range(splits):
        part = preds[(i * n // splits):((i + 1) * n // splits), :]
        py = np.mean(part, axis=0, keepdims=True)
        kl = part * (np.log(part) - np.log(py))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return {"mean": num(np.mean(scores)), "std": num(np.std(scores)), "split_scores": [num(s) for s in scores]}


def is_case(name: str, seed: int, n: int, classes: int, splits: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = f32(2.0 * rng.standard_normal((n, classes)) + 3.0 * np.eye(classes)[labels])
    return {"name": name, "n": n, "classes": classes, "splits": splits, "logits": enc(logits),
            **inception_score(logits, splits)}


# ---- KID ------------------------------------------------------------------------------------------------------


def mmd_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape
    a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
    b = (x @ y.T / d + 1) ** 3
    t = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m  # clean-fid's kernel_distance, one subset
    value = t / m
    # the same from the definition: off-diagonal means minus twice the cross mean
    kxx, kyy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3
    direct = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * b.mean()
    assert abs(value - direct) <= 1e-12 * max(1.0, abs(direct)), (value, direct)
    return float(value)


def kid_case(name: str, seed: int, d: int, n_real: int, n_fake: int, subsets: int, m: int) -> dict:
    rng = np.random.default_rng(seed)
    real = f32(rng.standard_normal((n_real, d)))
    fake = f32(0.9 * rng.standard_normal((n_fake, d)) + 0.3)
    idx, values = [], []
    for _ in range(subsets):
        ri = rng.choice(n_real, m, replace=False)
        fi = rng.choice(n_fake, m, replace=False)
        idx.append({"real": [int(i) for i in ri], "fake": [int(i) for i in fi]})
        values.append(mmd_unbiased(real[ri].astype(np.float64), fake[fi].astype(np.float64)))
    return {"name": name, "d": d, "real": enc(real), "fake": enc(fake), "subset_size": m, "subsets": idx,
            "mmd": [num(v) for v in values], "mean": num(np.mean(values)), "std": num(np.std(values))}


# ---- precision and recall -------------------------------------------------------------------------------------


def sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)


def pr_case(name: str, seed: int, d: int, n_real: int, n_fake: int, ks: list) -> dict:
    rng = np.random.default_rng(seed)
    real = f32(rng.standard_normal((n_real, d)))
    fake = f32(1.2 * rng.standard_normal((n_fake, d)) + 0.4)
    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    d_rr, d_ff, d_fr = sq_dists(r64, r64), sq_dists(f64, f64), sq_dists(f64, r64)
    assert np.all(np.sort(d_rr, axis=1)[:, 1] > 0) and np.all(np.sort(d_ff, axis=1)[:, 1] > 0), "duplicate rows"
    results = []
    for k in ks:
        rad_r = np.sort(d_rr, axis=1)[:, k]  # index 0 is the row itself
        rad_f = np.sort(d_ff, axis=1)[:, k]
        precision = float(np.mean(np.any(d_fr <= rad_r[None, :], axis=1)))
        recall = float(np.mean(np.any(d_fr.T <= rad_f[None, :], axis=1)))
        gap = min(np.min(np.abs(d_fr - rad_r[None, :]) / rad_r[None, :]),
                  np.min(np.abs(d_fr.T - rad_f[None, :]) / rad_f[None, :]))
        assert gap > 1e-9, f"{name} k={k}: a distance lies within {gap} of a radius"
        results.append({"k": k, "radii_real": enc(rad_r), "radii_fake": enc(rad_f), "precision": precision,
                        "recall": recall, "min_rel_gap": num(gap)})
    return {"name": name, "d": d, "real": enc(real), "fake": enc(fake), "results": results}


def main() -> None:
    fixture = {
        "format": FORMAT,
        "generator": "reference/make_metric_fixtures.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "encoding": "arrays are {dtype, shape, base64}: little-endian float32 (inputs) or float64 (references), "
                    "row-major",
        "fid": [
            fid_case("d16", 1, 16, 200, 150, 0.9),
            fid_case("d64", 2, 64, 200, 150, 0.98),
            fid_case("d64_rank_deficient_a", 3, 64, 40, 100, 0.95),
            fid_case("d32_rank_deficient_both", 4, 32, 20, 28, 0.95),
        ],
        "is": [is_case("n250_c10", 5, 250, 10, 10), is_case("n103_c7", 6, 103, 7, 10)],
        "kid": [kid_case("d16", 7, 16, 120, 90, 6, 40)],
        "pr": [pr_case("d8", 8, 8, 300, 280, [1, 3, 5])],
    }
    text = json.dumps(fixture, indent=1) + "\n"
    with open(OUT, "w") as f:
        f.write(text)
    for c in fixture["fid"]:
        print(f"fid {c['name']}: eig {c['fid_eig']:.12g} sqrtm {c['fid_sqrtm']:.12g} "
              f"rel diff {abs(c['fid_eig'] - c['fid_sqrtm']) / abs(c['fid_eig']):.2e} ranks {c['rank_a']}/{c['rank_b']} "
              f"cond {c['cond_a'] or 0:.3g}/{c['cond_b'] or 0:.3g} "
              f"offset {c['sqrtm']['offset_used']} max imag {c['sqrtm']['max_imag']:.2e}")
    for c in fixture["is"]:
        print(f"is {c['name']}: {c['mean']:.6f} +- {c['std']:.6f}")
    for c in fixture["kid"]:
        print(f"kid {c['name']}: {c['mean']:.6g} +- {c['std']:.6g}")
    for c in fixture["pr"]:
        for r in c["results"]:
            print(f"pr {c['name']} k={r['k']}: precision {r['precision']:.4f} recall {r['recall']:.4f} "
                  f"min rel gap {r['min_rel_gap']:.2e}")
    print(f"wrote {OUT} ({len(text) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
