"""FID of a sharded evaluation recomputed by numpy + scipy, and of its consecutive blocks of images.

An independent check of `ddpm eval merge` on a real run, and a measure of FID's spread at a smaller N:
the images of one run split into blocks of --block images (image i of the run is image i of any shorter
run with the same seed), each block scored against the same reference, the pytorch-fid way
(np.mean, np.cov, scipy.linalg.sqrtm of sigma1.dot(sigma2), its real part).

    /usr/bin/python3 reference/fid_blocks.py PART.npz REF.npz [--block 1000]

PART.npz: a partial result with features (`ddpm eval ... --shard`, or `ddpm eval merge --out`, of a run
with kid or pr among its metrics); REF.npz: `ddpm eval stats --data SPEC --out REF.npz` (mu, sigma).
Prints one JSON object: n, the whole run's FID, and each block's FID with their mean and standard deviation.
"""

import argparse
import json

import numpy as np
import scipy.linalg


def fid(x, mu2, sigma2):
    mu1 = x.mean(axis=0)
    sigma1 = np.cov(x, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part")
    ap.add_argument("ref")
    ap.add_argument("--block", type=int, default=1000)
    a = ap.parse_args()
    part = np.load(a.part)
    if "features" not in part.files:
        raise SystemExit(f"{a.part} holds no features: run the evaluation with kid or pr among its metrics")
    order = np.argsort(part["indices"], kind="stable")  # image order of the run
    x = part["features"].astype(np.float64)[order]
    ref = np.load(a.ref)
    mu2, sigma2 = ref["mu"].astype(np.float64), ref["sigma"].astype(np.float64)
    blocks = [fid(x[s : s + a.block], mu2, sigma2) for s in range(0, len(x) - a.block + 1, a.block)]
    print(
        json.dumps(
            {
                "n": len(x),
                "fid": fid(x, mu2, sigma2),
                "block": a.block,
                "blocks": [round(b, 6) for b in blocks],
                "blocksMean": float(np.mean(blocks)) if blocks else None,
                "blocksStd": float(np.std(blocks, ddof=1)) if len(blocks) > 1 else None,
            }
        )
    )


if __name__ == "__main__":
    main()
