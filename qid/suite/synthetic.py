"""A synthetic stand-in for the suite's QiD table (same columns as `data/suite/cpu_qid.csv`), with known truth.

Used to develop and test chapter 05 and the error model before (or without) the measured table: QiD follows
the unified law, and every variance component the error model estimates is put in with a known size —
eval-window noise (per window, so the window-loss table exists too), calibration-seed noise (GPTQ/AWQ, three
seeds on a subset of checkpoints) and training-seed noise (cosine runs with seeds 0 and 1). Nothing here
is a measurement: the chapter says so whenever it runs on this table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SYNTHETIC_TRUTH = {"k": 0.3, "alpha": 0.3, "beta": 0.5, "gamma": 5.0}  # unified-law parameters of the fake data
SYNTHETIC_SIZES = {"13k": 13_000, "35k": 35_000, "70k": 70_000, "150k": 150_000}  # name -> non-embedding N
SYNTHETIC_RUNGS = {"13k": [5, 10, 20, 40, 80, 160, 320], "35k": [5, 10, 20, 40, 80, 160, 320],
                   "70k": [5, 10, 20, 40, 80], "150k": [5, 10, 20, 40, 80]}  # tokens per parameter
METHOD_FACTORS = {"rtn": 1.6, "gptq": 1.0, "awq": 1.2}  # QiD of a method relative to GPTQ's
WINDOW_SD = 0.08  # nats: spread of one eval window's paired loss difference
WINDOWS = 32  # eval windows per checkpoint
CALIBRATION_CV = 0.08  # relative SD of QiD across calibration seeds
TRAINING_CV = 0.12  # relative SD of QiD across training seeds
VOCAB_SIZE = 1024


def _loss16(N: float, D: float) -> float:
    return 1.9 + 40.0 * N ** -0.3 + 60.0 * D ** -0.3


def synthetic_suite_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(qid table with the suite's columns, window-loss table: run, step, method, bits, calib_seed, window, loss)."""
    rng = np.random.default_rng(seed)
    rows, windows = [], []
    checkpoints = []
    for size, N in SYNTHETIC_SIZES.items():
        for rung in SYNTHETIC_RUNGS[size]:
            for train_seed in (0, 1):
                run = f"cosine-{size}-r{rung}-s{train_seed}"
                final = rung * N
                checkpoints.append(("cosine", "intermediate", run, size, N, train_seed, final / 2, 3e-4))
                checkpoints.append(("cosine", "final", run, size, N, train_seed, final, 3e-5))
        trunk = f"wsd-{size}-stable"
        for rung in SYNTHETIC_RUNGS[size]:
            checkpoints.append(("wsd", "stable", trunk, size, N, 0, rung * N, 1e-3))
            checkpoints.append(("wsd", "decayed", f"wsd-{size}-decay-r{rung}", size, N, 0, rung * N, 1e-5))
    training_effect = {}
    for design, phase, run, size, N, train_seed, tokens, lr in checkpoints:
        lineage = (design, size, train_seed)
        training_effect.setdefault(lineage, np.exp(TRAINING_CV * rng.standard_normal()))
        schedule = 0.4 if phase == "stable" else 1.0  # constant-lr checkpoints quantize better (the WSD claim)
        step = int(tokens // 1024)
        loss16 = _loss16(N, tokens)
        base_windows = loss16 + 0.3 * rng.standard_normal(WINDOWS)
        for window, loss in enumerate(base_windows):
            windows.append((run, step, "none", 16, np.nan, window, loss))
        repeated = rng.random() < 0.25
        for method, factor in METHOD_FACTORS.items():
            seeds = [np.nan] if method == "rtn" else ([0, 1, 2] if repeated else [0])
            for bits in (2, 3, 4, 8):
                law = SYNTHETIC_TRUTH["k"] * tokens ** SYNTHETIC_TRUTH["beta"] / (N ** SYNTHETIC_TRUTH["alpha"] * bits ** SYNTHETIC_TRUTH["gamma"])
                for calib_seed in seeds:
                    calibration = 1.0 if method == "rtn" else np.exp(CALIBRATION_CV * rng.standard_normal())
                    qid_true = law * factor * schedule * training_effect[lineage] * calibration
                    differences = qid_true + WINDOW_SD * rng.standard_normal(WINDOWS)
                    for window, difference in enumerate(differences):
                        windows.append((run, step, method, bits, calib_seed, window, base_windows[window] + difference))
                    rows.append({
                        "preset": "cpu", "design": design, "phase": phase, "run": run, "size": size, "N": N,
                        "train_seed": train_seed, "step": step, "tokens": tokens, "tokens_per_parameter": tokens / N,
                        "epochs": tokens / 2e7, "lr": lr, "loss_16": float(base_windows.mean()), "method": method,
                        "bits": bits, "group_size": 64, "calib_seed": calib_seed, "qid": float(differences.mean()),
                        "qid_se": float(differences.std(ddof=1) / np.sqrt(WINDOWS)), "kl": np.nan, "kl_se": np.nan,
                        "top1_agree": np.nan, "eval_windows": WINDOWS, "eval_tokens": WINDOWS * 256, "calib_samples": 32,
                        "batch_size": 8, "threads": 1, "seconds": 1.0,
                    })
    qid = pd.DataFrame(rows)
    qid.attrs["source"] = f"synthetic suite table (qid.suite.synthetic, seed {seed})"
    window_table = pd.DataFrame(windows, columns=["run", "step", "method", "bits", "calib_seed", "window", "loss"])
    return qid, window_table
