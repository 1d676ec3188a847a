"""The mini-Pythia suite: which runs to train (sizes × schedule designs × checkpoints), and its tidy tables.

Three schedule designs, because the rise of QiD with training tokens has been tied to learning-rate decay
(arXiv 2510.06213):

* ``cosine`` (Pythia's design): one cosine run per size to its full token budget, with intermediate
  checkpoints — log-spaced early (doubling from `first_checkpoint_step`), then every quarter of the run.
  Only the last checkpoint is annealed; the intermediate ones are mid-schedule.
* ``annealed`` (Kumar et al.'s design): separate cosine runs, each annealed to completion at its own
  budget (fractions of the full budget); the full budget is the cosine run's last checkpoint.
* ``wsd`` (warmup-stable-decay): one constant-lr run to `wsd_stable_fraction` of each budget, with
  checkpoints in the constant phase, plus one decay branch per budget that anneals linearly from the
  stable checkpoint over the remaining `1 − wsd_stable_fraction` of that budget.

A preset names everything (sizes, token budgets, batch, learning rates, designs); `plan_runs(preset)`
expands it into `PlannedRun`s, `train_suite` trains them (resumably; a finished run is skipped), and
`collect_checkpoints` / `collect_train_logs` / `measure_suite` write the tidy tables under data/suite/.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qid import train as training
from qid.models import MINI_SHAPES
from qid.paths import DATA_DIR, REPO_ROOT
from qid.sweep import parse_shard

DESIGNS = ("cosine", "annealed", "wsd")
SUITE_DATA_DIR = DATA_DIR / "suite"
DEFAULT_RUNS_DIR = REPO_ROOT / "runs" / "suite"


@dataclass(frozen=True)
class SuitePreset:
    name: str
    sizes: tuple[str, ...]                    # design cosine: every size (keys of qid.models.MINI_SHAPES)
    tokens: dict                              # full token budget per size (design cosine's run length)
    max_lr: dict                              # peak learning rate per size (not tuned; larger for smaller models)
    batch_size: int = 8                       # sequences per step
    seq_len: int = 256                        # tokens per sequence
    warmup_steps: int = 25                    # linear warmup, the same for every run of the preset
    min_lr_ratio: float = 0.1                 # final lr / peak (Pythia 0.1); WSD decays to the same floor
    first_checkpoint_step: int = 16           # log-spaced checkpoints (halvings of the run) down to here ...
    regular_checkpoints: int = 4              # ... then the run is cut into this many equal parts
    annealed_sizes: tuple[str, ...] = ()      # design annealed: which sizes
    budget_fractions: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)  # budgets of annealed / WSD runs, × full
    wsd_sizes: tuple[str, ...] = ()           # design wsd: which sizes
    wsd_stable_fraction: float = 0.8         # WSD: decay over the last 20 % of each budget
    seed: int = 0
    eval_sequences: int = 32                  # held-out sequences scored at each checkpoint (training log)
    # QiD measurement of every checkpoint (qid.sweep settings)
    qid_methods: tuple[str, ...] = ("rtn", "gptq")
    qid_bits: tuple[int, ...] = (2, 3, 4, 8)
    qid_group_size: int = -1                  # -1 = per output channel: the same granularity at every size
    qid_eval_tokens: int = 16_384             # predicted tokens per evaluation (64 windows of 256)
    qid_calibration_samples: int = 32         # GPTQ calibration sequences of seq_len tokens
    note: str = ""

    def steps(self, tokens: float) -> int:
        return max(1, int(round(tokens / (self.batch_size * self.seq_len))))

    def validate(self) -> "SuitePreset":
        for size in (*self.sizes, *self.annealed_sizes, *self.wsd_sizes):
            if size not in MINI_SHAPES:
                raise ValueError(f"preset {self.name}: unknown size {size!r}; use some of {', '.join(MINI_SHAPES)}")
            if size not in self.tokens or size not in self.max_lr:
                raise ValueError(f"preset {self.name}: size {size!r} needs an entry in tokens and max_lr")
        if not all(0 < f <= 1 for f in self.budget_fractions):
            raise ValueError(f"preset {self.name}: budget_fractions must lie in (0, 1], got {self.budget_fractions}")
        if not 0 < self.wsd_stable_fraction < 1:
            raise ValueError(f"preset {self.name}: wsd_stable_fraction must lie in (0, 1)")
        return self


PRESETS = {
    # Finishes on 2 shared CPU cores in about half an hour of training (1 thread per run, 2 runs at once).
    # Smallest models get the most tokens: the output layer over the 4,096-token vocabulary dominates.
    "cpu": SuitePreset(
        name="cpu",
        sizes=("0.1m", "0.3m", "1m", "3m"),
        tokens={"0.1m": 6_000_000, "0.3m": 1_500_000, "1m": 1_000_000, "3m": 500_000},
        max_lr={"0.1m": 3e-3, "0.3m": 3e-3, "1m": 2e-3, "3m": 1.5e-3},
        annealed_sizes=("0.1m", "0.3m"),
        wsd_sizes=("0.1m", "0.3m"),
        note="CPU preset: 4 sizes (1.5 decades of N); annealed and WSD designs at the two smallest sizes only",
    ),
    # A minute-scale preset for tests and the chapter's live slice.
    "tiny": SuitePreset(
        name="tiny",
        sizes=("0.1m", "0.3m"),
        tokens={"0.1m": 40_960, "0.3m": 20_480},
        max_lr={"0.1m": 3e-3, "0.3m": 3e-3},
        batch_size=4, seq_len=64, warmup_steps=4, first_checkpoint_step=8, regular_checkpoints=2,
        annealed_sizes=("0.1m",), wsd_sizes=("0.1m",), budget_fractions=(0.5, 1.0),
        eval_sequences=8, qid_eval_tokens=2_048, qid_calibration_samples=8,
        note="tiny preset: seconds per run, for tests",
    ),
    # For the GPU campaign (bf16 autocast on CUDA); not run on these machines. The committed train split has
    # 3.6M tokens, so 14M tokens is ~4 epochs, about as far as repetition is harmless (Muennighoff et al. 2023):
    # going further needs a larger corpus first.
    "gpu": SuitePreset(
        name="gpu",
        sizes=("0.1m", "0.3m", "1m", "3m", "10m", "40m"),
        tokens={size: 14_000_000 for size in ("0.1m", "0.3m", "1m", "3m", "10m", "40m")},
        max_lr={"0.1m": 3e-3, "0.3m": 3e-3, "1m": 2e-3, "3m": 1.5e-3, "10m": 1e-3, "40m": 6e-4},
        batch_size=32, seq_len=256, warmup_steps=50, first_checkpoint_step=16, regular_checkpoints=8,
        # The other two designs at three sizes spanning two decades keep the campaign inside one lease.
        annealed_sizes=("0.3m", "3m", "40m"), wsd_sizes=("0.3m", "3m", "40m"),
        budget_fractions=(1 / 16, 1 / 8, 0.25, 0.5, 1.0),
        eval_sequences=64, qid_methods=("rtn", "gptq", "awq"), qid_eval_tokens=32_768, qid_calibration_samples=64,
        note="GPU preset: 6 sizes (2.6 decades of N, the largest 11x the CPU suite's), 14M tokens each (~4 epochs of "
             "the corpus; D/N = 140 for the smallest), annealed and WSD designs at 0.3m/3m/40m, RTN/GPTQ/AWQ",
    ),
}


def get_preset(name: str) -> SuitePreset:
    if name not in PRESETS:
        raise ValueError(f"unknown suite preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[name].validate()


def checkpoint_schedule(total_steps: int, first: int = 16, regular_parts: int = 4) -> list[int]:
    """Pythia-like checkpoint steps: log-spaced early (total/2, total/4, ... down to `first`), then every
    total/regular_parts steps, ending with `total_steps`. The halvings coincide with the annealed budgets."""
    steps = {total_steps}
    k = 1
    while round(total_steps / 2**k) >= first:
        steps.add(int(round(total_steps / 2**k)))
        k += 1
    steps.update(int(round(total_steps * part / regular_parts)) for part in range(1, regular_parts))
    return sorted(s for s in steps if 1 <= s <= total_steps)


@dataclass
class PlannedRun:
    design: str                  # cosine | annealed | wsd
    name: str                    # folder name under runs/suite/<preset>/<design>/
    size: str
    config: training.TrainConfig
    depends_on: str | None = None  # run name whose checkpoint this one branches from
    group: str = ""              # runs of one group must run in order, in one worker
    phase: str = ""              # what its checkpoints are: intermediate+final / annealed / stable / decayed

    def folder(self, runs_dir: Path, preset: str) -> Path:
        return Path(runs_dir) / preset / self.design / self.name


def plan_runs(preset: SuitePreset | str, runs_dir: str | Path = DEFAULT_RUNS_DIR, designs=DESIGNS,
              sizes=None, device: str = "cpu") -> list[PlannedRun]:
    """Every run of a preset, in an order where each WSD branch follows its constant run."""
    preset = get_preset(preset) if isinstance(preset, str) else preset.validate()
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown:
        raise ValueError(f"unknown design(s) {unknown}: use some of {', '.join(DESIGNS)}")
    runs_dir = Path(runs_dir)
    common = dict(batch_size=preset.batch_size, seq_len=preset.seq_len, warmup_steps=preset.warmup_steps,
                  min_lr_ratio=preset.min_lr_ratio, seed=preset.seed, eval_sequences=preset.eval_sequences,
                  device=device)

    def wanted(size, pool):
        return size in pool and (sizes is None or size in sizes)

    runs: list[PlannedRun] = []
    for size in preset.sizes:
        full_steps = preset.steps(preset.tokens[size])
        lr = preset.max_lr[size]
        if "cosine" in designs and wanted(size, preset.sizes):
            runs.append(PlannedRun("cosine", size, size, training.TrainConfig(
                size=size, steps=full_steps, max_lr=lr, schedule="cosine",
                checkpoint_steps=tuple(checkpoint_schedule(full_steps, preset.first_checkpoint_step,
                                                           preset.regular_checkpoints)),
                log_every=max(1, full_steps // 100), run=f"{preset.name}/cosine/{size}", design="cosine",
                keep_training_state="last", **common), group=f"cosine/{size}", phase="cosine"))
        if "annealed" in designs and wanted(size, preset.annealed_sizes):
            for fraction in preset.budget_fractions:
                if fraction >= 1:
                    continue  # the full budget is the cosine run's last checkpoint
                steps = int(round(fraction * full_steps))
                name = f"{size}-steps{steps:06d}"
                runs.append(PlannedRun("annealed", name, size, training.TrainConfig(
                    size=size, steps=steps, max_lr=lr, schedule="cosine", checkpoint_steps=(),
                    log_every=max(1, steps // 50), run=f"{preset.name}/annealed/{name}", design="annealed",
                    keep_training_state="last", **common), group=f"annealed/{name}", phase="annealed"))
        if "wsd" in designs and wanted(size, preset.wsd_sizes):
            budgets = [int(round(f * full_steps)) for f in preset.budget_fractions]
            branch_points = [max(preset.warmup_steps + 1, int(round(preset.wsd_stable_fraction * b))) for b in budgets]
            stable_steps = max(branch_points)
            stable_name = f"{size}-constant"
            runs.append(PlannedRun("wsd", stable_name, size, training.TrainConfig(
                size=size, steps=stable_steps, max_lr=lr, schedule="constant",
                checkpoint_steps=tuple(sorted(set(branch_points))),
                log_every=max(1, stable_steps // 100), run=f"{preset.name}/wsd/{stable_name}", design="wsd",
                keep_training_state="all", **common), group=f"wsd/{size}", phase="stable"))
            for budget, point in zip(budgets, branch_points):
                if budget <= point:
                    continue
                name = f"{size}-decay{point:06d}"
                runs.append(PlannedRun("wsd", name, size, training.TrainConfig(
                    size=size, steps=budget, max_lr=lr, schedule="wsd", decay_steps=budget - point,
                    init_from=str(runs_dir / preset.name / "wsd" / stable_name / f"step-{point:06d}"),
                    log_every=max(1, (budget - point) // 20), run=f"{preset.name}/wsd/{name}", design="wsd",
                    keep_training_state="last", **common),
                    depends_on=stable_name, group=f"wsd/{size}", phase="decayed"))
    return runs


def shard_runs(runs: list[PlannedRun], shard: tuple[int, int] | None) -> list[PlannedRun]:
    """Runs of one worker: groups (a WSD constant run and its branches stay together) dealt round-robin,
    largest total steps first so that the workers finish at about the same time."""
    if shard is None:
        return runs
    index, count = shard
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    ordered = sorted(groups.values(), key=lambda g: -sum(r.config.steps * _cost(r.size) for r in g))
    loads = [0.0] * count
    mine: list[PlannedRun] = []
    for group in ordered:
        worker = loads.index(min(loads))
        loads[worker] += sum(r.config.steps * _cost(r.size) for r in group)
        if worker == index - 1:
            mine.extend(group)
    return mine


def _cost(size: str) -> float:
    """Relative cost per step (measured tokens/s on 1 CPU thread: 6.3k, 4.6k, 2.9k, 1.3k)."""
    from qid.models import mini_shape

    shape = mini_shape(size)
    return shape.non_embedding_parameters + 2.0 * shape.d_model * 4096 + 2e5


def train_suite(preset: "str | SuitePreset" = "cpu", runs_dir: str | Path = DEFAULT_RUNS_DIR, designs=DESIGNS, sizes=None,
                device: str = "cpu", shard: tuple[int, int] | None = None, progress: bool = True,
                log=None, ray: str | None = None) -> list[Path]:
    """Train (or resume) every planned run of one shard; returns the final checkpoint folders.

    `ray` ('local' or a cluster address): every run group is a Ray task instead (`qid.distributed`)."""
    if ray is not None:
        from qid import distributed

        if shard is not None:
            raise ValueError("--shard and --ray: choose one (Ray schedules every run group itself)")
        return distributed.train_suite_on_ray(preset, runs_dir, designs, sizes, device, address=ray, log=log)
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    spec = get_preset(preset) if isinstance(preset, str) else preset.validate()
    runs = shard_runs(plan_runs(spec, runs_dir, designs, sizes, device), shard)
    finals = []
    for run in runs:
        folder = run.folder(runs_dir, spec.name)
        started = time.perf_counter()
        log(f"[{spec.name}] {run.design}/{run.name}: {run.config.steps} steps × {run.config.tokens_per_step} tokens "
            f"({run.config.schedule}, lr {run.config.max_lr:g}) -> {folder}")
        config = dataclasses.replace(run.config, extra={"preset": spec.name, "phase": run.phase, "group": run.group})
        finals.append(training.train(folder, config, progress=progress))
        log(f"[{spec.name}] {run.design}/{run.name}: done in {time.perf_counter() - started:.0f} s")
    return finals


# ------------------------------------------------------------------------------------------ tidy tables
CHECKPOINT_COLUMNS = (
    "preset", "design", "run", "size", "N", "step", "tokens", "tokens_per_parameter", "schedule", "phase",
    "lr", "max_lr", "total_steps", "eval_loss", "train_loss", "epochs", "seed", "batch_size", "seq_len",
    "tokens_per_second", "train_wall_s", "checkpoint",
)


def checkpoint_phase(metadata: dict) -> str:
    """intermediate / final (cosine), annealed, stable / decayed (wsd)."""
    design, step, total = metadata.get("design"), metadata["step"], metadata["total_steps"]
    if design == "cosine":
        return "final" if step == total else "intermediate"
    if design == "annealed":
        return "annealed"
    if design == "wsd":
        return "stable" if metadata["schedule"] == "constant" else "decayed"
    return metadata.get("phase", "")


def collect_checkpoints(preset: str = "cpu", runs_dir: str | Path = DEFAULT_RUNS_DIR):
    """One row per checkpoint of a trained preset (metadata, held-out loss), sorted."""
    import pandas as pd

    rows = []
    base = Path(runs_dir) / preset
    for metadata_file in sorted(base.glob(f"*/*/step-*/{training.METADATA_FILE}")):
        metadata = json.loads(metadata_file.read_text())
        if metadata.get("design") == "wsd" and metadata["schedule"] == "wsd" and metadata["step"] < metadata["total_steps"]:
            continue  # a decay branch's only checkpoint is its end
        row = {key: metadata.get(key) for key in CHECKPOINT_COLUMNS}
        row.update(preset=preset, run=Path(metadata_file).parent.parent.name, phase=checkpoint_phase(metadata),
                   tokens_per_parameter=metadata["tokens"] / metadata["N"],
                   checkpoint=str(Path(metadata_file).parent.relative_to(REPO_ROOT))
                   if Path(metadata_file).is_relative_to(REPO_ROOT) else str(Path(metadata_file).parent))
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"{base}: no checkpoints; run `qid train-suite --preset {preset}` first")
    table = pd.DataFrame(rows, columns=list(CHECKPOINT_COLUMNS))
    return table.sort_values(["design", "size", "run", "step"], key=_size_key).reset_index(drop=True)


def _size_key(column):
    if column.name == "size":
        return column.map(lambda s: MINI_SHAPES and list(MINI_SHAPES).index(s))
    return column


def collect_train_logs(preset: str = "cpu", runs_dir: str | Path = DEFAULT_RUNS_DIR):
    """Every run's train_log.csv stacked, with design, run, size and N."""
    import pandas as pd

    frames = []
    for log_file in sorted((Path(runs_dir) / preset).glob(f"*/*/{training.LOG_FILE}")):
        checkpoints = training.list_checkpoints(log_file.parent)
        if not checkpoints:
            continue
        metadata = training.read_metadata(checkpoints[-1])
        frame = pd.read_csv(log_file)
        frame.insert(0, "N", metadata["N"])
        frame.insert(0, "size", metadata["size"])
        frame.insert(0, "schedule", metadata["schedule"])
        frame.insert(0, "run", log_file.parent.name)
        frame.insert(0, "design", metadata["design"])
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"{Path(runs_dir) / preset}: no training logs; run `qid train-suite` first")
    return pd.concat(frames, ignore_index=True)


def sweep_spec(preset: str = "cpu", checkpoints=None, runs_dir: str | Path = DEFAULT_RUNS_DIR, device: str = "cpu"):
    """The QiD sweep (qid.sweep) of every checkpoint of a preset, with the preset's measurement settings."""
    from qid.sweep import SweepSpec

    spec = get_preset(preset)
    if checkpoints is None:
        checkpoints = [str(REPO_ROOT / c) if not Path(c).is_absolute() else c
                       for c in collect_checkpoints(preset, runs_dir)["checkpoint"]]
    return SweepSpec(
        checkpoints=list(checkpoints), methods=list(spec.qid_methods), bits=list(spec.qid_bits),
        group_sizes=[spec.qid_group_size], eval_tokens=spec.qid_eval_tokens, eval_window=spec.seq_len,
        eval_source="corpus:eval", calibration_samples=spec.qid_calibration_samples,
        calibration_length=spec.seq_len, calibration_source="corpus:calibration", seed=spec.seed,
        device=device, batch_size=16,
    )


def measure_suite(preset: str = "cpu", output: str | Path | None = None, runs_dir: str | Path = DEFAULT_RUNS_DIR,
                  device: str = "cpu", shard=None, progress: bool = True, ray: str | None = None) -> Path:
    """Run the QiD sweep over every checkpoint of a preset into a raw sweep CSV (resumable, shardable; on a
    Ray cluster when `ray` is 'local' or an address)."""
    from qid.sweep import run_sweep

    output = Path(output) if output else Path(runs_dir) / preset / "qid_sweep.csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    table = collect_checkpoints(preset, runs_dir)
    checkpoints = [str(REPO_ROOT / c) if not Path(c).is_absolute() else c for c in table["checkpoint"]]
    if shard is not None:
        # Shard by checkpoint (each is loaded and its 16-bit loss computed once), balancing by model size.
        index, count = parse_shard(shard)
        loads, mine = [0.0] * count, []
        for checkpoint, size in sorted(zip(checkpoints, table["size"]), key=lambda item: -_cost(item[1])):
            worker = loads.index(min(loads))
            loads[worker] += _cost(size)
            if worker == index - 1:
                mine.append(checkpoint)
        checkpoints = [c for c in checkpoints if c in mine]
        if not checkpoints:
            return output
    run_sweep(sweep_spec(preset, checkpoints, runs_dir=runs_dir, device=device), output, progress=progress, ray=ray)
    return output


QID_COLUMNS = (
    "preset", "design", "run", "size", "N", "step", "tokens", "tokens_per_parameter", "phase", "lr", "method",
    "bits", "group_size", "loss_16", "loss_q", "qid", "qid_se", "eval_tokens", "calib_samples", "seconds",
)


def tidy_qid(sweep_csv: str | Path, checkpoints) -> "pd.DataFrame":
    """Join the sweep's rows with the checkpoints table (design, run, size, phase) into the tidy QiD table."""
    import pandas as pd

    from qid.sweep import load_results

    raw = load_results(sweep_csv)
    table = checkpoints.copy()
    table["_key"] = table["checkpoint"].map(lambda c: str(Path(c).resolve()) if Path(c).is_absolute()
                                            else str((REPO_ROOT / c).resolve()))
    raw = raw.copy()
    raw["_key"] = raw["checkpoint"].map(lambda c: str(Path(c).resolve()) if Path(c).is_absolute()
                                        else str((REPO_ROOT / c).resolve()))
    merged = raw.drop(columns=["N", "step"]).merge(
        table.drop(columns=["checkpoint"]), on="_key", how="inner", validate="many_to_one")
    merged = merged.rename(columns={"calib_samples": "calib_samples"})
    return merged[list(QID_COLUMNS)].sort_values(
        ["design", "size", "run", "step", "method", "bits"], key=_size_key).reset_index(drop=True)


def write_suite_tables(preset: str = "cpu", runs_dir: str | Path = DEFAULT_RUNS_DIR,
                       output_dir: str | Path = SUITE_DATA_DIR, sweep_csv: str | Path | None = None,
                       provenance: dict | None = None) -> dict[str, Path]:
    """Write data/suite/{preset}_checkpoints.csv, _train_log.csv, _qid.csv (if measured) and _provenance.json."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = collect_checkpoints(preset, runs_dir)
    paths = {"checkpoints": output_dir / f"{preset}_checkpoints.csv", "train_log": output_dir / f"{preset}_train_log.csv"}
    checkpoints.to_csv(paths["checkpoints"], index=False, float_format="%.6g")
    collect_train_logs(preset, runs_dir).to_csv(paths["train_log"], index=False, float_format="%.6g")
    sweep_csv = Path(sweep_csv) if sweep_csv else Path(runs_dir) / preset / "qid_sweep.csv"
    if sweep_csv.is_file():
        paths["qid"] = output_dir / f"{preset}_qid.csv"
        tidy_qid(sweep_csv, checkpoints).to_csv(paths["qid"], index=False, float_format="%.6g")
    if provenance is not None:
        paths["provenance"] = output_dir / f"{preset}_provenance.json"
        paths["provenance"].write_text(json.dumps(provenance, indent=2) + "\n")
    return paths


# ------------------------------------------------------------------------------------------------- load
def load_suite_table(kind: str, preset: str = "cpu", directory: str | Path = SUITE_DATA_DIR):
    """A committed suite table ('checkpoints', 'train_log' or 'qid'), checked by qid.tables.load_table."""
    from qid.tables import load_table

    required = {
        "checkpoints": (CHECKPOINT_COLUMNS, ("N", "step", "tokens", "eval_loss")),
        "train_log": (("design", "run", "size", "N", "step", "tokens", "lr", "train_loss"), ("N", "step", "tokens")),
        "qid": (QID_COLUMNS, ("N", "tokens", "bits")),
    }
    if kind not in required:
        raise ValueError(f"unknown suite table {kind!r}: use one of {', '.join(required)}")
    columns, positive = required[kind]
    table = load_table(Path(directory) / f"{preset}_{kind}.csv", required=columns, positive=positive)
    if kind == "qid":
        from qid.tables import check_table

        check_table(table, f"{preset}_qid.csv", finite=("loss_16", "loss_q", "qid", "qid_se"))
    return table


# ------------------------------------------------------------------------------------------- pipeline
def run_pipeline(preset: str = "cpu", workers: int = 2, threads: int = 1, runs_dir: str | Path = DEFAULT_RUNS_DIR,
                 designs=DESIGNS, sizes=None, device: str = "cpu", measure: bool = True,
                 output_dir: str | Path = SUITE_DATA_DIR, command: str = "", log=None) -> dict[str, Path]:
    """Train every run of a preset in `workers` parallel processes (`threads` torch threads each), measure
    QiD on every checkpoint (same sharding), and write the tidy tables with provenance.

    Everything is resumable: rerunning after an interruption skips finished runs and measured cells.
    """
    import datetime as _dt
    import subprocess

    from qid.provenance import git_commit, machine_description, package_versions, utc_now

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    get_preset(preset)
    started_utc, started, commit_at_start = utc_now(), time.perf_counter(), git_commit()

    def fan_out(subcommand: list[str]) -> float:
        began = time.perf_counter()
        processes = []
        for index in range(1, workers + 1):
            arguments = [sys.executable, "-m", "qid", *subcommand, "--preset", preset, "--runs-dir", str(runs_dir),
                         "--device", device, "--threads", str(threads), "--shard", f"{index}/{workers}", "--no-progress"]
            log(" ".join(arguments[2:]))
            processes.append(subprocess.Popen(arguments, cwd=REPO_ROOT))
        codes = [process.wait() for process in processes]
        if any(codes):
            raise RuntimeError(f"`qid {' '.join(subcommand)}` worker(s) failed with exit codes {codes}")
        return time.perf_counter() - began

    extra = []
    if tuple(designs) != DESIGNS:
        extra += ["--designs", *designs]
    if sizes:
        extra += ["--sizes", *sizes]
    train_wall = fan_out(["train-suite", *extra])
    measure_wall = fan_out(["measure-suite"]) if measure else 0.0
    provenance = {
        "command": command or f"qid train-suite --preset {preset} --workers {workers} --threads {threads}"
                              + (" --measure" if measure else ""),
        "preset": dataclasses.asdict(get_preset(preset)),
        "commit": git_commit(), "train_commit": commit_at_start, "measure_commit": git_commit(),
        "machine": machine_description(), "packages": package_versions(),
        "started_utc": started_utc, "finished_utc": utc_now(),
        "train_wall_s": round(train_wall, 1), "measure_wall_s": round(measure_wall, 1),
        "total_wall_s": round(time.perf_counter() - started, 1),
        "workers": workers, "threads_per_worker": threads, "device": device,
        "note": "wall times are elapsed time on a machine shared with other jobs; per-run tokens/s are in the "
                "checkpoints table",
    }
    return write_suite_tables(preset, runs_dir, output_dir, provenance=provenance)


# ------------------------------------------------------------------------------------------- analysis
def significant_rows(qid_table, min_sigma: float = 2.0):
    """Rows whose QiD is above zero by at least `min_sigma` standard errors (the rest is noise at our scale)."""
    return qid_table[qid_table["qid"] > min_sigma * qid_table["qid_se"]]


def log_slope(x, y) -> tuple[float, float, int]:
    """Least-squares slope of log y on log x, its standard error and the number of points (NaN below 3)."""
    x, y = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan"), n
    design = np.column_stack([np.ones(n), x])
    coefficients, residuals, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coefficients
    sigma2 = float(resid @ resid) / (n - 2)
    covariance = sigma2 * np.linalg.inv(design.T @ design)
    return float(coefficients[1]), float(np.sqrt(covariance[1, 1])), n


def token_slopes(qid_table, phases=("intermediate", "final"), min_sigma: float = 2.0):
    """Per size, method and bits: slope of log QiD against log tokens (the paper's β, one size at a time),
    over the checkpoints of the given phases whose QiD is significantly positive."""
    import pandas as pd

    rows = []
    table = significant_rows(qid_table[qid_table["phase"].isin(phases)], min_sigma)
    for (size, method, bits), group in table.groupby(["size", "method", "bits"], sort=False):
        slope, se, n = log_slope(group["tokens"], group["qid"])
        rows.append({"size": size, "N": int(group["N"].iloc[0]), "method": method, "bits": int(bits),
                     "beta": slope, "beta_se": se, "points": n,
                     "tokens_min": group["tokens"].min(), "tokens_max": group["tokens"].max()})
    return pd.DataFrame(rows, columns=["size", "N", "method", "bits", "beta", "beta_se", "points", "tokens_min", "tokens_max"])


def fit_ouyang_per_bit(qid_table, method: str, bits: int, phases=("intermediate", "final"), min_sigma: float = 2.0):
    """lmfit fit of QiD = k·D^β / N^α (law ouyang_per_bit) to the significant cells of one method and bit
    width; least squares on log residuals (qid.fit). Returns the FitResult."""
    from qid.fit import fit_law

    table = significant_rows(qid_table[(qid_table["method"] == method) & (qid_table["bits"] == bits)
                                       & qid_table["phase"].isin(phases)], min_sigma)
    if len(table) < 4 or table["N"].nunique() < 2:
        raise ValueError(f"{method} {bits}-bit: only {len(table)} significant cells over {table['N'].nunique()} "
                         "size(s); need ≥ 4 cells over ≥ 2 sizes to fit α and β")
    data = table.rename(columns={"tokens": "D"})[["N", "D", "qid"]].astype(float).reset_index(drop=True)
    return fit_law("ouyang_per_bit", data)


def design_effects(qid_table):
    """Paired comparisons at the same size, method and bits, one row per pair:

    * ``anneal_vs_midschedule``: a separate run annealed at T tokens (annealed design) minus the cosine run's
      mid-schedule checkpoint at the same T;
    * ``wsd_decay``: a WSD branch after its decay (T tokens) minus its stable-phase start (0.8·T tokens).

    difference_se = sqrt(se_a² + se_b²) treats the two QiDs as independent; both are measured on the same
    evaluation windows, so it is conservative when their errors are positively correlated.
    """
    import pandas as pd

    keys = ["size", "method", "bits"]
    rows = []
    cosine = qid_table[qid_table["phase"] == "intermediate"]
    for _, row in qid_table[qid_table["phase"] == "annealed"].iterrows():
        match = cosine[(cosine[keys] == row[keys]).all(axis=1) & (cosine["tokens"] == row["tokens"])]
        if len(match):
            other = match.iloc[0]
            rows.append({"comparison": "anneal_vs_midschedule", **{k: row[k] for k in keys}, "tokens_a": row["tokens"],
                         "tokens_b": other["tokens"], "qid_a": row["qid"], "qid_b": other["qid"],
                         "lr_a": row["lr"], "lr_b": other["lr"],
                         "difference": row["qid"] - other["qid"], "difference_se": math.hypot(row["qid_se"], other["qid_se"])})
    stable = qid_table[qid_table["phase"] == "stable"]
    for _, row in qid_table[qid_table["phase"] == "decayed"].iterrows():
        start = int(row["run"].rsplit("decay", 1)[1])
        match = stable[(stable[keys] == row[keys]).all(axis=1) & (stable["step"] == start)]
        if len(match):
            other = match.iloc[0]
            rows.append({"comparison": "wsd_decay", **{k: row[k] for k in keys}, "tokens_a": row["tokens"],
                         "tokens_b": other["tokens"], "qid_a": row["qid"], "qid_b": other["qid"],
                         "lr_a": row["lr"], "lr_b": other["lr"],
                         "difference": row["qid"] - other["qid"], "difference_se": math.hypot(row["qid_se"], other["qid_se"])})
    table = pd.DataFrame(rows)
    if len(table):
        table["z"] = table["difference"] / table["difference_se"]
    return table
