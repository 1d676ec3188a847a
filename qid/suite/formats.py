"""Measuring the suite's ladder at floating-point and micro-scaled formats beside integer 4-bit (issue 23).

Every ladder checkpoint of a preset (`qid.suite.tables.measured_checkpoints`) is measured with the preset's own
measurement settings (windows, calibration sample, batch size: `qid.suite.measurement.sweep_spec`) at:

* 4 bits: integer RTN and GPTQ and FP4 (E2M1) per output channel and in groups of 32 input columns, MXFP4 (blocks
  of 32, E8M0 scale) and NVFP4 (blocks of 16, E4M3 scale, FP32 tensor scale), each with round-to-nearest and with
  GPTQ on the format's grid (`gptq-mxfp4`, `gptq-nvfp4`);
* 8 bits: integer RTN and FP8 E4M3, the same two groupings (a reference point where every format is near lossless).

Every row carries its storage cost with scales (`bits_per_weight`), so formats are compared at equal storage:
the suite's rows are 32-256 inputs long, so integer 4-bit per channel costs 4.08-4.63 bits per weight, beside
MXFP4's 4.25 and NVFP4's 4.5. One calibration seed (0): the calibration component of GPTQ's variance comes from
the main suite's repeats (`qid.fitting.errormodel`).

The raw rows go to runs/suite/<preset>/formats_sweep.csv (a resumable `qid.measure.sweep` table: rerun to
continue); the tidy table data/suite/<preset>_formats.csv (columns `FORMATS_COLUMNS`) is rewritten after every
checkpoint, so an interrupted measurement still leaves a consistent table of what is done.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from qid.common.atomicio import atomic_write_csv, atomic_write_text
from qid.suite import measurement
from qid.suite import plan as suite
from qid.suite.tables import checkpoint_path, collect_checkpoints, measured_checkpoints

# (methods, bits) of the two sweeps: the 4-bit formats beside integer 4-bit, and the 8-bit reference.
FOUR_BIT_METHODS = ("rtn", "gptq", "fp4", "mxfp4", "nvfp4", "gptq-mxfp4", "gptq-nvfp4")
EIGHT_BIT_METHODS = ("rtn", "fp8")
GROUP_SIZES = (-1, 32)  # per output channel, and 32 input columns (MXFP4/NVFP4 use their own blocks of 32 and 16)
FORMATS_COLUMNS = (
    "preset", "design", "phase", "run", "size", "N", "train_seed", "step", "tokens", "tokens_per_parameter", "rung",
    "loss_16", "method", "bits", "group_size", "bits_per_weight", "calib_seed", "qid", "qid_se", "kl", "kl_se",
    "top1_agree", "eval_windows", "eval_tokens", "calib_samples", "batch_size", "threads", "seconds",
)


def formats_sweep_output(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    return Path(runs_dir) / preset / "formats_sweep.csv"


def formats_table_path(preset: str, output_dir=suite.SUITE_DATA_DIR) -> Path:
    return Path(output_dir) / f"{preset}_formats.csv"


def formats_provenance_path(preset: str, output_dir=suite.SUITE_DATA_DIR) -> Path:
    return Path(output_dir) / f"{preset}_formats_provenance.json"


def formats_provenance(preset: str, raw, table) -> dict:
    """Where the tidy table's rows came from, read off the raw sweep rows (`raw`, as `load_results` gives them):
    commits, package versions, devices and threads, the first and last finished cell, and what the table holds."""
    from qid.common.provenance import machine_description, utc_now

    return {
        "what": f"preset {preset}'s ladder at floating-point formats beside integer 4-bit (qid.suite.formats)",
        "command": f"qid measure-suite --preset {preset} --formats",
        "commits": sorted(raw["git_commit"].astype(str).unique()),
        "versions": sorted(raw["versions"].astype(str).unique()),
        "devices": sorted(raw["device"].astype(str).unique()), "threads": sorted(int(t) for t in raw["threads"].unique()),
        "first_cell_utc": str(raw["finished_at"].min()), "last_cell_utc": str(raw["finished_at"].max()),
        "cell_seconds": round(float(raw["seconds"].sum()), 1), "machine": machine_description(),
        "checkpoints": int(table[["run", "step"]].drop_duplicates().shape[0]), "rows": int(len(table)),
        "designs": sorted(table["design"].unique()), "train_seeds": sorted(int(s) for s in table["train_seed"].unique()),
        "written_utc": utc_now(),
    }


def formats_specs(preset: str, checkpoints, device: str = "cpu") -> list:
    """The two sweeps (4-bit formats, 8-bit reference) over the checkpoints, with the preset's settings."""
    specs = []
    for methods, bits in ((FOUR_BIT_METHODS, 4), (EIGHT_BIT_METHODS, 8)):
        spec = measurement.sweep_spec(preset, checkpoints, device, methods=methods, bits=[bits])
        specs.append(dataclasses.replace(spec, group_sizes=list(GROUP_SIZES)))
    return specs


def measurement_order(checkpoints):
    """Seed 0 of the cosine design first (one full ladder per size as early as possible), then the rest."""
    order = checkpoints.assign(_later=(checkpoints["train_seed"] != 0) | (checkpoints["design"] != "cosine"))
    order = order.sort_values(["_later", "N", "design", "run", "step"], kind="stable")
    return order.drop(columns="_later").reset_index(drop=True)


def tidy_formats(raw, checkpoints):
    """The raw sweep rows (`load_results` of the sweep table) joined with the checkpoints table into
    `FORMATS_COLUMNS`, sorted."""
    raw = raw.copy()
    raw["_key"] = raw["checkpoint"].map(checkpoint_path)
    metadata = checkpoints.assign(_key=checkpoints["checkpoint"].map(checkpoint_path))
    metadata = metadata.drop(columns=[c for c in metadata.columns if c in raw.columns and c not in ("_key", "N", "step")])
    merged = raw.drop(columns=["N", "step"]).merge(metadata, on="_key", how="inner", validate="many_to_one")
    return merged[list(FORMATS_COLUMNS)].sort_values(
        ["design", "N", "run", "step", "bits", "method", "group_size"]).reset_index(drop=True)


def measure_formats(preset: str = "cpu", runs_dir=suite.DEFAULT_RUNS_DIR, output_dir=suite.SUITE_DATA_DIR,
                    device: str = "cpu", progress: bool = True, limit: int | None = None, log=print) -> Path:
    """Measure the format cells on every ladder checkpoint of `preset` (resumable); write the tidy table after each
    checkpoint; return its path. `limit`: stop after that many checkpoints (the rest stay for a later call)."""
    from qid.measure.sweep import load_results, run_sweep

    checkpoints = measured_checkpoints(collect_checkpoints(preset, runs_dir))
    ordered = measurement_order(checkpoints)
    if limit is not None:
        ordered = ordered.head(limit)
    raw, table = formats_sweep_output(preset, runs_dir), formats_table_path(preset, output_dir)
    raw.parent.mkdir(parents=True, exist_ok=True)
    table.parent.mkdir(parents=True, exist_ok=True)
    for position, checkpoint in enumerate(ordered["checkpoint"], start=1):
        written = 0
        for spec in formats_specs(preset, [checkpoint_path(checkpoint)], device):
            written += run_sweep(spec, raw, progress=progress)["written"]
        raw_rows = load_results(raw)  # once per checkpoint: the tidy table and its provenance both read it
        tidy = tidy_formats(raw_rows, checkpoints)
        atomic_write_csv(table, tidy)
        atomic_write_text(formats_provenance_path(preset, output_dir),
                          json.dumps(formats_provenance(preset, raw_rows, tidy), indent=1) + "\n")
        log(f"formats: {position}/{len(ordered)} {checkpoint}: {written} new row(s); table {table}")
    return table


def ensure_formats_table(preset: str, suite_dir, work_dir) -> Path:
    """`preset`'s formats table: from `suite_dir` when it is there; for the tiny preset, trained and measured in
    `work_dir` (a few minutes on a CPU); otherwise a FileNotFoundError naming the command that makes it."""
    committed = formats_table_path(preset, suite_dir)
    if committed.is_file():
        return committed
    built = formats_table_path(preset, Path(work_dir) / "tables")
    if built.is_file():
        return built
    if preset != "tiny":
        raise FileNotFoundError(f"{committed} is missing: make it with `qid measure-suite --preset {preset} --formats "
                                f"--output-dir {suite_dir}` (after `qid train-suite --preset {preset}`)")
    from qid.suite import run as suite_run

    runs = Path(work_dir) / "runs"
    suite_run.train_suite(preset, runs, progress=False, log=lambda message: None, stage="all")
    return measure_formats(preset, runs, built.parent, progress=False, log=lambda message: None)
