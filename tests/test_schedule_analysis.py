"""Chapter 6's analyses (qid.chapters.schedule_analysis) on synthetic suite tables with the new suite's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qid.chapters import schedule_analysis as analysis
from qid.laws.registry import get_law
from qid.laws.schedules import annealing_area, constant, cosine, warmup_stable_decay

SIZES = {"0.1m": 1.0e5, "0.3m": 3.0e5}
TISSUE = {"L0": 3.0, "A": 1.5, "alpha": 0.3, "C": 0.8, "decay": 0.99}
LOG_EVERY = 7  # the suite logs every few steps


def synthetic_suite(decay_effect: float, seed: int = 0, noise: float = 0.002):
    """(train_log, qid_table) in the new suite's columns: per size, cosine runs for training seeds 0 and 1 with
    intermediate and final checkpoints, and a WSD family (a constant run with stable checkpoints and decay
    branches). QiD = k_size·loss16² + decay_effect·S2(λ = 0.999, after warmup) + noise."""
    rng = np.random.default_rng(seed)
    law = get_law("tissue_annealing")
    log_rows, qid_rows = [], []
    for size, N in SIZES.items():
        total, warmup, peak = 1200, 60, 3e-3
        runs = [("cosine", f"{size}", train_seed, cosine(total, warmup, peak, 3e-4),
                 [("intermediate", s) for s in (300, 600, 900)] + [("final", total - 1)]) for train_seed in (0, 1)]
        stable = constant(total, warmup, peak)
        runs.append(("wsd", f"{size}-constant", 0, stable, [("stable", s) for s in (300, 450, 600, 750, 900, 1050, 1199)]))
        for end in (300, 600, 900, 1200):
            branch = warmup_stable_decay(end, warmup, int(0.8 * end), peak, 3e-4, "linear")
            runs.append(("wsd", f"{size}-decay{end:06d}", 0, branch, [("decayed", end - 1)]))
        for design, run, train_seed, lr, checkpoints in runs:
            steps = np.unique(np.r_[np.arange(1, len(lr), LOG_EVERY), len(lr) - 1])  # the last step is logged too
            loss = law(TISSUE, lr=lr, step=steps) * (1 + 1e-3 * rng.standard_normal(len(steps)))
            log_rows.append(pd.DataFrame({"design": design, "run": run, "size": size, "N": N, "seed": train_seed,
                                          "step": steps, "tokens": steps * 2048, "lr": lr[steps], "train_loss": loss,
                                          "eval_loss": np.nan}))
            area = annealing_area(lr, 0.999, after_warmup=True)
            for phase, step in checkpoints:
                loss_16 = float(law(TISSUE, lr=lr, step=[step])[0]) - 0.3 * np.log10(N / 1e5)
                for method in ("rtn", "gptq"):
                    for bits in (2, 3, 4):
                        scale = {2: 0.5, 3: 0.1, 4: 0.02}[bits] * (1.5 if method == "rtn" else 1.0)
                        qid = scale * loss_16**2 / 10 + decay_effect * area[step] + noise * rng.standard_normal()
                        qid_rows.append({"preset": "cpu", "design": design, "phase": phase, "run": run, "size": size,
                                         "N": N, "train_seed": train_seed, "step": step, "tokens": step * 2048,
                                         "lr": lr[step], "loss_16": loss_16, "method": method, "bits": bits,
                                         "calib_seed": 0 if method == "gptq" else np.nan, "qid": qid, "qid_se": noise})
    return pd.concat(log_rows, ignore_index=True), pd.DataFrame(qid_rows)


def test_per_step_rates_rebuild_a_logged_schedule():
    lr = warmup_stable_decay(1000, 50, 800, 1e-3, 1e-4, "linear")
    steps = np.unique(np.concatenate([np.arange(1, 1000, 7), [49, 800, 999]]))  # corners: warmup end, decay start
    rebuilt = analysis.per_step_rates(steps, lr[steps])
    np.testing.assert_allclose(rebuilt, lr, rtol=0, atol=1e-18)  # exact on piecewise-linear schedules logged at the corners
    smooth = cosine(1000, 50, 1e-3, 1e-4)
    rebuilt = analysis.per_step_rates(np.arange(1, 1000, 7), smooth[1::7])
    assert np.max(np.abs(np.cumsum(rebuilt[1:995]) / np.cumsum(smooth[1:995]) - 1)) < 5e-3


def test_suite_runs_start_after_warmup_and_keep_seeds_apart():
    train_log, _ = synthetic_suite(0.0)
    runs = analysis.suite_curve_runs(train_log, "train_loss")
    assert {"cosine/0.1m/seed0", "cosine/0.1m/seed1", "wsd/0.1m-constant/seed0"} <= set(runs)
    assert all(run["steps"].min() >= 60 for run in runs.values())
    with pytest.raises(ValueError, match="lacks column"):
        analysis.suite_curve_runs(train_log.drop(columns="lr"))


@pytest.mark.parametrize("effect", [0.0, 0.3])
def test_decay_effect_recovers_a_known_effect_at_matched_loss(effect):
    train_log, qid_table = synthetic_suite(effect, seed=1)
    assert analysis.has_schedule_columns(qid_table)
    assert not analysis.has_schedule_columns(qid_table.drop(columns="train_seed"))
    runs = analysis.suite_curve_runs(train_log, "train_loss")
    checkpoints = analysis.checkpoint_schedule_statistics(qid_table, runs, 0.999)
    assert checkpoints["S2"].notna().all()
    truth = annealing_area(cosine(1200, 60, 3e-3, 3e-4), 0.999, after_warmup=True)[600]
    row = checkpoints[(checkpoints["design"] == "cosine") & (checkpoints["step"] == 600)].iloc[0]
    assert row["S2"] == pytest.approx(truth, rel=2e-3)  # from the interpolated log
    result = analysis.decay_effect(checkpoints, "gptq", 3, "S2", bootstrap=300, seed=0)
    assert result["estimable"] and result["n_lineages"] == 6
    low, high = result["t_interval"]
    assert low <= effect <= high
    if effect:
        assert low > 0  # a real effect is detected
        assert result["aicc"]["loss + annealing"] < result["aicc"]["loss"]


def test_matched_comparisons_never_extrapolate():
    _, qid_table = synthetic_suite(0.3, seed=2)
    result = analysis.schedule_effect(qid_table, "gptq", 3, min_rung=0)
    pairs = result["pairs"]
    assert len(pairs) == 8  # 4 decayed checkpoints per size
    stable = qid_table[(qid_table["phase"] == "stable") & (qid_table["method"] == "gptq") & (qid_table["bits"] == 3)]
    lowest = stable.groupby("size")["loss_16"].min()
    outside = pairs["loss_16"].to_numpy() < lowest[pairs["size"]].to_numpy()
    assert outside.any() and pairs.loc[outside, "matched_loss"].isna().all()
    assert (pairs.loc[~outside, "matched_loss"] > 0).all()  # decay adds QiD in this synthetic suite


def test_a_decay_branch_logged_from_its_branch_point_gets_its_parents_history():
    train_log, _ = synthetic_suite(0.0)
    branch = (train_log["run"] == "0.1m-decay000900") & (train_log["step"] < 700)
    runs_full = analysis.suite_curve_runs(train_log)
    runs_cut = analysis.suite_curve_runs(train_log[~branch])
    full, cut = runs_full["wsd/0.1m-decay000900/seed0"], runs_cut["wsd/0.1m-decay000900/seed0"]
    np.testing.assert_allclose(cut["lr"], full["lr"], rtol=1e-12)
    assert cut["steps"].min() >= 700  # its own losses only


def test_statistics_found_when_the_log_has_no_seed_column():
    train_log, qid_table = synthetic_suite(0.0)
    train_log = train_log[train_log["seed"] == 0].drop(columns="seed")
    checkpoints = analysis.checkpoint_schedule_statistics(qid_table, analysis.suite_curve_runs(train_log), 0.999)
    assert checkpoints["S1"].notna().all()


def wsd_family_table(effect_at_loss: float = 0.0, families=(("a", 0), ("b", 0), ("c", 1))):
    """Constant-rate checkpoints whose QiD is exponential in the loss (so log-QiD interpolation is exact), and decay
    branches that reach a lower loss at the same tokens, with QiD = the curve's + `effect_at_loss`."""
    rows = []
    for size, seed in families:
        for i, tokens in enumerate([1e5, 2e5, 4e5, 8e5, 1.6e6]):
            loss = 5.0 - 0.5 * i
            rows.append({"design": "wsd", "phase": "stable", "size": size, "train_seed": seed, "tokens": tokens,
                         "tokens_per_parameter": tokens / 1e4, "loss_16": loss, "method": "gptq", "bits": 3,
                         "calib_seed": 0.0, "qid": 0.5 * np.exp(-1.5 * loss)})
            decayed = loss - 0.25
            rows.append({"design": "wsd", "phase": "decayed", "size": size, "train_seed": seed, "tokens": tokens,
                         "tokens_per_parameter": tokens / 1e4, "loss_16": decayed, "method": "gptq", "bits": 3,
                         "calib_seed": 0.0, "qid": 0.5 * np.exp(-1.5 * decayed) + effect_at_loss})
    return pd.DataFrame(rows)


def test_schedule_effect_interpolates_log_qid_and_clusters_by_family():
    table = wsd_family_table()
    for size, shift in (("a", 1e-4), ("b", -1e-4)):  # families scatter about no effect at matched loss
        table.loc[(table["size"] == size) & (table["phase"] == "decayed"), "qid"] += shift
    result = analysis.schedule_effect(table, "gptq", 3, min_rung=0, confidence=0.95)
    check = analysis.interpolation_summary(result["interpolation"])
    assert check["log"]["mean_relative_error"] == pytest.approx(0, abs=1e-9)  # exact on an exponential curve
    assert check["linear"]["over_predicted"] == check["linear"]["checkpoints"] > 0  # the chord of a convex curve
    matched = result["matched_loss"]
    assert matched["families"] == 3 and matched["mean"] == pytest.approx(0, abs=1e-12) and matched["low"] < 0 < matched["high"]
    assert result["token_gap"]["mean"] == pytest.approx(np.sqrt(2), rel=1e-9)  # half a rung further on the curve
    assert result["matched_tokens"]["mean"] > 0 and "cannot say" not in result["verdict"]


def test_schedule_effect_says_when_loss_and_tokens_cannot_be_separated():
    table = wsd_family_table(effect_at_loss=-1e-3)
    table.loc[table["size"] == "b", "qid"] += np.where(table.loc[table["size"] == "b", "phase"] == "decayed", -2e-4, 0)
    result = analysis.schedule_effect(table, "gptq", 3, min_rung=0)
    assert result["matched_loss"]["high"] < 0
    assert "cannot say whether that difference is decay or the extra tokens" in result["verdict"]
    assert result["verdict"][0].isupper() and "QiD" in result["verdict"]
