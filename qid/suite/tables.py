"""The suite's tidy tables under data/suite/: checkpoints, training logs, learning-rate sweep, QiD, window losses.

`write_suite_tables(preset)` collects them from the run folders (runs/suite/<preset>/) and the measurement's raw
files, and writes each atomically. `load_suite_table(kind, preset)` reads a committed table back through
`qid.common.csvtables.load_table`, which checks its columns.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np

from qid.suite import plan as suite
from qid.suite import train as training
from qid.common.atomicio import atomic_write_bytes, atomic_write_csv, atomic_write_text
from qid.suite.models import MINI_SHAPES
from qid.common.paths import REPO_ROOT

CHECKPOINT_COLUMNS = (
    "preset", "design", "phase", "run", "size", "N", "train_seed", "step", "tokens", "tokens_per_parameter", "rung",
    "schedule", "lr", "max_lr", "total_steps", "eval_loss", "train_loss", "epochs", "batch_size", "seq_len",
    "tokens_per_second", "train_wall_s", "checkpoint",
)
QID_COLUMNS = (
    "preset", "design", "phase", "run", "size", "N", "train_seed", "step", "tokens", "tokens_per_parameter", "rung",
    "epochs", "lr", "loss_16", "method", "bits", "group_size", "calib_seed", "qid", "qid_se", "kl", "kl_se",
    "top1_agree", "eval_windows", "eval_tokens", "calib_samples", "batch_size", "threads", "seconds", "beats_bigram",
)
WINDOW_COLUMNS = ("run", "step", "method", "bits", "calib_seed", "window", "loss")


def checkpoint_phase(metadata: dict) -> str:
    """intermediate / final (cosine), stable / decayed (wsd), lr_sweep."""
    design, step, total = metadata.get("design"), metadata["step"], metadata["total_steps"]
    if design == "cosine":
        return "final" if step == total else "intermediate"
    if design == "wsd":
        return "stable" if metadata["schedule"] == "constant" else "decayed"
    return design or ""


def _relative(path: Path) -> str:
    """Relative to the repository when inside it, else absolute: never relative to the working directory, which
    `checkpoint_path` would resolve against the repository (a chapter executed in a copy of the book)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _size_order(column):
    if column.name == "size":
        return column.map(lambda s: list(MINI_SHAPES).index(s) if s in MINI_SHAPES else len(MINI_SHAPES))
    return column


def collect_checkpoints(preset: str = "cpu", runs_dir=suite.DEFAULT_RUNS_DIR, designs=suite.DESIGNS):
    """One row per checkpoint of the designs (metadata, held-out loss, rung), sorted by design, size, run, step."""
    import pandas as pd

    spec = suite.get_preset(preset)
    rows = []
    base = Path(runs_dir) / preset
    for design in designs:
        for metadata_file in sorted((base / design).glob(f"*/step-*/{training.METADATA_FILE}")):
            metadata = json.loads(metadata_file.read_text())
            if metadata["schedule"] == "wsd" and metadata["step"] < metadata["total_steps"]:
                continue  # a decay branch's only checkpoint is its end
            rung = suite.rung_steps(spec, metadata["size"])
            on_ladder = {steps: r for r, steps in rung.items()}
            row = {key: metadata.get(key) for key in CHECKPOINT_COLUMNS}
            row.update(preset=preset, design=design, run=metadata_file.parent.parent.name,
                       phase=checkpoint_phase(metadata), train_seed=metadata.get("seed"),
                       tokens_per_parameter=metadata["tokens"] / metadata["N"],
                       rung=on_ladder.get(metadata["step"], np.nan), checkpoint=_relative(metadata_file.parent))
            rows.append(row)
    if not rows:
        raise FileNotFoundError(f"{base}: no checkpoints; train the suite first (`qid train-suite --preset {preset}`)")
    table = pd.DataFrame(rows, columns=list(CHECKPOINT_COLUMNS))
    return table.sort_values(["design", "size", "run", "step"], key=_size_order).reset_index(drop=True)


def measured_checkpoints(checkpoints):
    """The checkpoints whose QiD is measured: every one on the ladder (the WSD branch points are only for training)."""
    return checkpoints[checkpoints["rung"].notna()].reset_index(drop=True)


def collect_train_logs(preset: str = "cpu", runs_dir=suite.DEFAULT_RUNS_DIR, designs=(*suite.DESIGNS, suite.LR_SWEEP_DESIGN)):
    """Every run's train_log.csv stacked, with design, run, size, N and seed."""
    import pandas as pd

    frames = []
    for design in designs:
        for log_file in sorted((Path(runs_dir) / preset / design).glob(f"*/{training.LOG_FILE}")):
            checkpoints = training.list_checkpoints(log_file.parent)
            if not checkpoints:
                continue
            metadata = training.read_metadata(checkpoints[-1])
            frame = pd.read_csv(log_file)
            for column, value in (("seed", metadata.get("seed")), ("N", metadata["N"]), ("size", metadata["size"]),
                                  ("schedule", metadata["schedule"]), ("run", log_file.parent.name), ("design", design)):
                frame.insert(0, column, value)
            frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"{Path(runs_dir) / preset}: no training logs; train the suite first")
    return pd.concat(frames, ignore_index=True)


def checkpoint_path(path) -> str:
    """A checkpoint folder as an absolute, resolved path (the tables store it relative to the repository)."""
    path = Path(path)
    return str((path if path.is_absolute() else REPO_ROOT / path).resolve())


# --- the measurement's raw files (qid.suite.measurement writes them) -------------------------------------------------
def sweep_output(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    return Path(runs_dir) / preset / "qid_sweep.csv"


def window_losses_output(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    return Path(runs_dir) / preset / "window_losses.jsonl"


def full_split_output(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    return Path(runs_dir) / preset / "qid_full_split.csv"



# A cell of the suite's tables: what was measured, whatever setting (threads, batch size) it was measured with.
CELL_COLUMNS = ("method", "bits", "group_size", "calib_seed", "eval_source", "eval_window", "eval_tokens")


def latest_per_cell(raw):
    """One row per cell (checkpoint, CELL_COLUMNS): a rerun with another thread count or batch size measures a
    finished cell again under a new key; the tables keep the row finished last (its `threads` and `batch_size`
    columns say which setting that was)."""
    raw = raw.copy()
    raw["_cell"] = raw["checkpoint"].map(checkpoint_path)
    keys = ["_cell", *[column for column in CELL_COLUMNS if column in raw.columns]]
    order = raw["finished_at"].fillna("") if "finished_at" in raw.columns else None
    if order is not None:
        raw = raw.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
    kept = raw.drop_duplicates(subset=keys, keep="last").sort_index()
    return kept.drop(columns="_cell").reset_index(drop=True)


def tidy_qid(sweep_csv, checkpoints, bigram_loss: float | None = None):
    """The sweep's rows joined with the checkpoints table (design, phase, run, size, seed, rung) into the QiD table.

    `bigram_loss`: the bigram baseline on the same evaluation windows; `beats_bigram` says whether the checkpoint's
    16-bit loss is below it (the trained-regime criterion for the rows a fit uses; empty when not given)."""
    import pandas as pd

    from qid.measure.sweep import load_results

    raw = latest_per_cell(load_results(sweep_csv))
    table = checkpoints.copy()
    table["_key"] = table["checkpoint"].map(checkpoint_path)
    raw["_key"] = raw["checkpoint"].map(checkpoint_path)
    # the checkpoint table's own settings (training batch size, ...) give way to the measurement's
    table = table.drop(columns=[c for c in table.columns if c in raw.columns and c != "_key"] + ["checkpoint"],
                       errors="ignore")
    merged = raw.drop(columns=["N", "step"], errors="ignore").merge(
        checkpoints.assign(_key=checkpoints["checkpoint"].map(checkpoint_path))[["_key", "N", "step"]].merge(
            table, on="_key"), on="_key", how="inner", validate="many_to_one")
    merged["beats_bigram"] = (merged["loss_16"] < bigram_loss) if bigram_loss is not None else pd.NA
    return merged[list(QID_COLUMNS)].sort_values(
        ["design", "size", "run", "step", "method", "bits", "calib_seed"], key=_size_order).reset_index(drop=True)


def read_window_losses(path, checkpoints):
    """The measurement's per-window losses (JSON lines) as a long table; duplicate cells keep their last line."""
    import pandas as pd

    keys = checkpoints.assign(_key=checkpoints["checkpoint"].map(checkpoint_path)).set_index("_key")
    latest: dict = {}
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            latest[(entry["checkpoint"], entry["method"], entry["bits"], entry["calib_seed"])] = entry
    frames = []
    for (checkpoint, method, bits, calib_seed), entry in latest.items():
        key = checkpoint_path(checkpoint)
        if key not in keys.index:
            continue
        losses = np.asarray(entry["windows"], dtype=float)
        frames.append(pd.DataFrame({"run": keys.loc[key, "run"], "step": int(keys.loc[key, "step"]), "method": method,
                                    "bits": int(bits), "calib_seed": calib_seed, "window": np.arange(len(losses)),
                                    "loss": losses}))
    table = pd.concat(frames, ignore_index=True)
    return table[list(WINDOW_COLUMNS)]


def _gzip_csv_bytes(frame) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        handle.write(frame.to_csv(index=False, float_format="%.7g").encode())
    return buffer.getvalue()


def full_split_comparison(preset: str, runs_dir, checkpoints):
    """Per checkpoint, method and bits: QiD on the sample and on the whole split, and their difference in SEs."""
    import pandas as pd

    from qid.measure.sweep import load_results

    sample = latest_per_cell(load_results(sweep_output(preset, runs_dir)))
    full = latest_per_cell(load_results(full_split_output(preset, runs_dir)))
    sample = sample[(sample["calib_seed"].fillna(0) == 0)]
    keyed = checkpoints.assign(_key=checkpoints["checkpoint"].map(checkpoint_path)).set_index("_key")
    rows = []
    for _, row in full.iterrows():
        key = checkpoint_path(row["checkpoint"])
        match = sample[(sample["checkpoint"].map(checkpoint_path) == key) & (sample["method"] == row["method"])
                       & (sample["bits"] == row["bits"])]
        if not len(match) or key not in keyed.index:
            continue
        other = match.iloc[0]
        rows.append({"run": keyed.loc[key, "run"], "size": keyed.loc[key, "size"], "step": int(row["step"]),
                     "method": row["method"], "bits": int(row["bits"]),
                     "windows_sample": int(other["eval_windows"]), "windows_full": int(row["eval_windows"]),
                     "qid_sample": other["qid"], "qid_sample_se": other["qid_se"],
                     "qid_full": row["qid"], "qid_full_se": row["qid_se"],
                     "difference_in_sample_se": (other["qid"] - row["qid"]) / other["qid_se"]})
    return pd.DataFrame(rows)


def write_suite_tables(preset: str = "cpu", runs_dir=suite.DEFAULT_RUNS_DIR, output_dir=suite.SUITE_DATA_DIR,
                       provenance: dict | None = None, checkpoints=None) -> dict[str, Path]:
    """Write data/suite/{preset}_*.csv(.gz) and _provenance.json from what is trained and measured so far.
    `checkpoints`: the caller's `collect_checkpoints(preset, runs_dir)`, when it has read it already."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs = Path(runs_dir) / preset
    checkpoints = collect_checkpoints(preset, runs_dir) if checkpoints is None else checkpoints
    paths = {"checkpoints": output_dir / f"{preset}_checkpoints.csv", "train_log": output_dir / f"{preset}_train_log.csv",
             "lr_sweep": output_dir / f"{preset}_lr_sweep.csv"}
    atomic_write_csv(paths["checkpoints"], checkpoints, float_format="%.6g")
    atomic_write_csv(paths["train_log"], collect_train_logs(preset, runs_dir), float_format="%.6g")
    atomic_write_csv(paths["lr_sweep"], suite.lr_sweep_results(preset, runs_dir), float_format="%.6g")
    sweep_csv = sweep_output(preset, runs_dir)
    baselines = runs / "ngram_baselines.csv"
    bigram = None
    if baselines.is_file():
        import pandas as pd

        table = pd.read_csv(baselines)
        match = table[(table["model"] == "bigram") & (table["split_sample"] == "eval windows")]
        bigram = float(match["loss"].iloc[0]) if len(match) else None
    if sweep_csv.is_file():
        paths["qid"] = output_dir / f"{preset}_qid.csv"
        atomic_write_csv(paths["qid"], tidy_qid(sweep_csv, checkpoints, bigram), float_format="%.6g")
    windows = window_losses_output(preset, runs_dir)
    if windows.is_file():
        paths["window_losses"] = output_dir / f"{preset}_window_losses.csv.gz"
        atomic_write_bytes(paths["window_losses"], _gzip_csv_bytes(read_window_losses(windows, checkpoints)))
    full = full_split_output(preset, runs_dir)
    if full.is_file() and sweep_csv.is_file():
        paths["full_split"] = output_dir / f"{preset}_full_split.csv"
        atomic_write_csv(paths["full_split"], full_split_comparison(preset, runs_dir, checkpoints),
                         float_format="%.6g")
    if baselines.is_file():
        paths["baselines"] = output_dir / f"{preset}_baselines.csv"
        atomic_write_bytes(paths["baselines"], baselines.read_bytes())
    if provenance is not None:
        paths["provenance"] = output_dir / f"{preset}_provenance.json"
        atomic_write_text(paths["provenance"], json.dumps(provenance, indent=2) + "\n")
    return paths


SUITE_TABLES = {
    "checkpoints": (CHECKPOINT_COLUMNS, ("N", "step", "tokens", "eval_loss")),
    "train_log": (("design", "run", "size", "N", "seed", "step", "tokens", "lr", "train_loss"), ("N", "step", "tokens")),
    "qid": (QID_COLUMNS, ("N", "tokens", "bits")),
    "lr_sweep": (("size", "N", "max_lr", "tokens", "eval_loss", "chosen"), ("N", "max_lr", "tokens")),
    "baselines": (("model", "split_sample", "loss"), ()),
    "full_split": (("run", "step", "method", "bits", "qid_sample", "qid_sample_se", "qid_full", "qid_full_se"), ()),
}


def load_suite_table(kind: str, preset: str = "cpu", directory=suite.SUITE_DATA_DIR):
    """A committed suite table, checked by qid.common.csvtables.load_table (columns present, positive where they must be)."""
    from qid.common.csvtables import load_table

    if kind == "window_losses":
        import pandas as pd

        path = Path(directory) / f"{preset}_window_losses.csv.gz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; measure the suite first")
        return pd.read_csv(path)
    if kind not in SUITE_TABLES:
        raise ValueError(f"unknown suite table {kind!r}: use one of {', '.join([*SUITE_TABLES, 'window_losses'])}")
    columns, positive = SUITE_TABLES[kind]
    table = load_table(Path(directory) / f"{preset}_{kind}.csv", required=columns, positive=positive)
    if kind == "qid":
        from qid.common.csvtables import check_table

        check_table(table, f"{preset}_qid.csv", finite=("loss_16", "qid", "qid_se"))
    return table
