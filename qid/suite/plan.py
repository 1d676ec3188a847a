"""The mini-Pythia suite: a scaling-law experiment with model size N crossed with tokens per parameter D/N.

Every size is trained to the same **ladder** of D/N rungs (5, 10, 20, ... up to the size's `max_rung`), in two
schedule designs that share the ladder:

* ``cosine`` (Pythia's design): one cosine run per size and training seed, as long as its largest rung, with a
  checkpoint at every rung. Only the last checkpoint is annealed; the others are mid-schedule.
* ``wsd`` (warmup-stable-decay; Kumar et al.'s design of separately annealed runs): one constant-lr run per size
  with a checkpoint at every rung (the constant-lr checkpoints of arXiv 2510.06213) and at every branch point
  (`1 − wsd_decay_fraction` of a rung), plus one decay branch per rung that anneals linearly from its branch
  point and ends exactly at the rung: a run annealed at that rung's token count.

The peak learning rate of each size comes from a short **learning-rate sweep** (cosine runs to
`lr_sweep_tokens_per_parameter`·N tokens, at least `lr_sweep_min_tokens`, one per candidate), unless the preset
fixes it. `plan_runs(preset)` expands a preset into `PlannedRun`s; `train_suite` trains them (resumably; a
finished run is skipped); `qid.suite.tables` writes the tidy tables under data/suite/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qid.suite import train as training
from qid.suite.models import MINI_SHAPES
from qid.common.paths import DATA_DIR, REPO_ROOT

DESIGNS = ("cosine", "wsd")
SUITE_DATA_DIR = DATA_DIR / "suite"
DEFAULT_RUNS_DIR = REPO_ROOT / "runs" / "suite"
LR_SWEEP_DESIGN = "lr_sweep"


@dataclass(frozen=True)
class SuitePreset:
    name: str
    sizes: tuple[str, ...]                    # keys of qid.suite.models.MINI_SHAPES, smallest first
    max_rung: dict                            # largest D/N rung per size (the ladder is cut there)
    ladder: tuple[float, ...] = (5, 10, 20, 40, 80, 160, 320)  # D/N rungs shared by every size and design
    max_lr: dict = field(default_factory=dict)  # fixed peak lr per size; sizes missing here get the sweep's best
    lr_candidates: tuple[float, ...] = (2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)  # peak lrs tried by the sweep (factor 2)
    lr_sweep_tokens_per_parameter: float = 20.0  # length of each sweep run, × N tokens ...
    lr_sweep_min_tokens: int = 1_048_576        # ... but never shorter than this
    cosine_seeds: tuple[int, ...] = (0, 1)    # training seeds of the cosine design (seed spread is measured)
    wsd_seeds: tuple[int, ...] = (0,)         # training seeds of the WSD design
    batch_size: int = 32                      # sequences per step
    seq_len: int = 128                        # tokens per sequence (context)
    warmup_steps: int = 10                    # linear warmup, the same for every run of the preset
    min_lr_ratio: float = 0.1                 # final lr / peak (Pythia 0.1); WSD decays to the same floor
    wsd_decay_fraction: float = 0.2           # WSD: each branch decays over the last 20 % of its rung's tokens
    eval_sequences: int = 64                  # held-out sequences scored at each checkpoint (training log)
    # QiD measurement of every checkpoint
    qid_methods: tuple[str, ...] = ("rtn", "gptq", "awq")
    qid_bits: tuple[int, ...] = (2, 3, 4, 8)
    qid_group_size: int = -1                  # -1 = per output channel (rows of 32-256 inputs: no room for groups)
    qid_eval_windows: int = 512               # evaluation windows of seq_len tokens, stratified over documents
    qid_calibration_samples: int = 64         # GPTQ / AWQ calibration sequences of seq_len tokens
    qid_calibration_seeds: tuple[int, ...] = (0, 1, 2)  # calibration samples on the checkpoints picked for them
    qid_batch_size: int = 16                  # sequences per forward pass in measurement (fixed: results move with it)
    qid_full_split_windows: int | None = None  # the whole-split check: every eval window (None) or this many
    note: str = ""

    def steps(self, tokens: float) -> int:
        return max(1, int(round(tokens / (self.batch_size * self.seq_len))))

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def rungs(self, size: str) -> tuple[float, ...]:
        return tuple(r for r in self.ladder if r <= self.max_rung[size])

    def validate(self) -> "SuitePreset":
        for size in self.sizes:
            if size not in MINI_SHAPES:
                raise ValueError(f"preset {self.name}: unknown size {size!r}; use some of {', '.join(MINI_SHAPES)}")
            if size not in self.max_rung:
                raise ValueError(f"preset {self.name}: size {size!r} needs an entry in max_rung")
            if not self.rungs(size):
                raise ValueError(f"preset {self.name}: size {size!r} has no rung ≤ max_rung {self.max_rung[size]}")
        if not 0 < self.wsd_decay_fraction < 1:
            raise ValueError(f"preset {self.name}: wsd_decay_fraction must lie in (0, 1)")
        if not self.cosine_seeds:
            raise ValueError(f"preset {self.name}: cosine_seeds is empty")
        return self


PRESETS = {
    # The CPU suite: 4 sizes over 1.07 decades of N, vocabulary 1,024, context 128. Budget (planned from measured
    # single-thread tokens/s 94k / 49k / 39k / 28k): ~0.7k core-seconds of learning-rate sweep, ~3k of training
    # and ~2k of measurement, i.e. well under 2 hours on 2 cores. The two largest sizes stop at D/N 160 and 80
    # (the largest rungs of the largest sizes are the expensive ones; see the chapter's budget table).
    "cpu": SuitePreset(
        name="cpu",
        sizes=("13k", "25k", "57k", "150k"),
        max_rung={"13k": 320, "25k": 320, "57k": 160, "150k": 80},
        note="CPU preset: 4 sizes (N 12.8k-150k), D/N ladder 5-320 (5-160, 5-80 for the two largest), cosine x 2 "
             "seeds and WSD with a decay branch per rung; RTN/GPTQ/AWQ at 2/3/4/8 bits, 3 calibration seeds",
    ),
    # A minute-scale preset for tests and the chapter's live slice.
    "tiny": SuitePreset(
        name="tiny",
        sizes=("13k", "25k"),
        max_rung={"13k": 10, "25k": 5},
        ladder=(2.5, 5, 10),
        max_lr={"13k": 8e-3, "25k": 8e-3},
        lr_candidates=(4e-3, 8e-3), lr_sweep_tokens_per_parameter=2.5, lr_sweep_min_tokens=16_384,
        batch_size=4, seq_len=64, warmup_steps=4, eval_sequences=8,
        qid_methods=("rtn", "gptq", "awq"), qid_bits=(2, 4), qid_eval_windows=16, qid_calibration_samples=8,
        qid_calibration_seeds=(0, 1), qid_batch_size=8, qid_full_split_windows=64,
        note="tiny preset: for tests and chapter 03's live slice, minutes not seconds (its 11 runs took 705 s on 2 shared CPU cores; its 'full split' check is 64 windows: plumbing only)",
    ),
    # For the GPU campaign (bf16 autocast on CUDA). Sizes reach 10x the CPU suite's largest; the corpus has 10.2M
    # training tokens, so the longest run (the 1.5m size at D/N 20) stays under 4 epochs (30M tokens ≈ 3 epochs).
    "gpu": SuitePreset(
        name="gpu",
        sizes=("57k", "150k", "0.3m", "1m", "3m"),
        max_rung={"57k": 320, "150k": 160, "0.3m": 80, "1m": 20, "3m": 10},
        max_lr={"57k": 8e-3, "150k": 8e-3, "0.3m": 4e-3, "1m": 3e-3, "3m": 2e-3},
        cosine_seeds=(0, 1, 2), wsd_seeds=(0, 1),
        batch_size=64, seq_len=128, warmup_steps=20, eval_sequences=128,
        qid_eval_windows=1024, qid_calibration_samples=128,
        note="GPU preset: 5 sizes (N 57k-3.4M, 20x the CPU suite's largest), the same ladder, 3 cosine seeds and "
             "2 WSD seeds; learning rates fixed from the CPU sweep's trend (no sweep inside the 8-minute campaign)",
    ),
}


def get_preset(name: str) -> SuitePreset:
    if name not in PRESETS:
        raise ValueError(f"unknown suite preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[name].validate()


@dataclass
class PlannedRun:
    design: str                  # cosine | wsd | lr_sweep
    name: str                    # folder name under runs/suite/<preset>/<design>/
    size: str
    config: training.TrainConfig
    depends_on: str | None = None  # run name whose checkpoint this one branches from
    group: str = ""              # runs of one group must run in order, in one worker
    phase: str = ""              # what its checkpoints are: cosine / stable / decayed / lr_sweep

    def folder(self, runs_dir: Path, preset: str) -> Path:
        return Path(runs_dir) / preset / self.design / self.name


def size_parameters(size: str) -> int:
    """Non-embedding parameters N of a mini size (the count `qid.measure.checkpoints` measures on the model)."""
    from qid.suite.models import mini_shape

    return mini_shape(size).non_embedding_parameters


def rung_steps(preset: SuitePreset, size: str) -> dict[float, int]:
    """Optimizer step at which each D/N rung of a size is reached."""
    n = size_parameters(size)
    return {rung: preset.steps(rung * n) for rung in preset.rungs(size)}


def _common(preset: SuitePreset, device: str) -> dict:
    return dict(batch_size=preset.batch_size, seq_len=preset.seq_len, warmup_steps=preset.warmup_steps,
                min_lr_ratio=preset.min_lr_ratio, eval_sequences=preset.eval_sequences, device=device)


def plan_lr_sweep(preset: SuitePreset | str, runs_dir: str | Path = DEFAULT_RUNS_DIR, sizes=None,
                  device: str = "cpu") -> list[PlannedRun]:
    """The learning-rate sweep: one short cosine run per size without a fixed lr, per candidate peak lr."""
    preset = get_preset(preset) if isinstance(preset, str) else preset.validate()
    runs = []
    for size in preset.sizes:
        if size in preset.max_lr or (sizes is not None and size not in sizes):
            continue
        tokens = max(preset.lr_sweep_tokens_per_parameter * size_parameters(size), preset.lr_sweep_min_tokens)
        steps = max(preset.warmup_steps + 1, preset.steps(tokens))
        for lr in preset.lr_candidates:
            name = f"{size}-lr{lr:g}"
            runs.append(PlannedRun(LR_SWEEP_DESIGN, name, size, training.TrainConfig(
                size=size, steps=steps, max_lr=lr, schedule="cosine", seed=0, log_every=max(1, steps // 50),
                run=f"{preset.name}/{LR_SWEEP_DESIGN}/{name}", design=LR_SWEEP_DESIGN, keep_training_state="last",
                **_common(preset, device)), group=f"{LR_SWEEP_DESIGN}/{name}", phase=LR_SWEEP_DESIGN))
    return runs


def lr_sweep_results(preset: SuitePreset | str, runs_dir: str | Path = DEFAULT_RUNS_DIR):
    """One row per finished sweep run: size, N, max_lr, tokens, final held-out loss, and whether it is the best."""
    import pandas as pd

    preset = get_preset(preset) if isinstance(preset, str) else preset.validate()
    rows = []
    for run in plan_lr_sweep(preset, runs_dir):
        final = training.checkpoint_dir(run.folder(runs_dir, preset.name), run.config.steps)
        if not (final / training.METADATA_FILE).is_file():
            continue
        metadata = training.read_metadata(final)
        rows.append({"preset": preset.name, "size": run.size, "N": metadata["N"], "max_lr": run.config.max_lr,
                     "steps": run.config.steps, "tokens": metadata["tokens"],
                     "tokens_per_parameter": metadata["tokens"] / metadata["N"], "eval_loss": metadata["eval_loss"],
                     "train_loss": metadata.get("train_loss")})
    table = pd.DataFrame(rows, columns=["preset", "size", "N", "max_lr", "steps", "tokens", "tokens_per_parameter",
                                        "eval_loss", "train_loss"])
    table["chosen"] = False
    if len(table):
        best = table.loc[table.groupby("size")["eval_loss"].idxmin(), ["size", "max_lr"]]
        table["chosen"] = [lr == dict(best.values)[size] for size, lr in zip(table["size"], table["max_lr"])]
    return table


def chosen_learning_rates(preset: SuitePreset | str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> dict[str, float]:
    """Peak lr per size: the preset's fixed value, or the sweep's lowest held-out loss (the sweep must be done)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset.validate()
    chosen = dict(preset.max_lr)
    table = lr_sweep_results(preset, runs_dir)
    for size in preset.sizes:
        if size in chosen:
            continue
        rows = table[table["size"] == size] if len(table) else table
        if len(rows) < len(preset.lr_candidates):
            raise ValueError(f"preset {preset.name}: the learning-rate sweep of size {size} is not finished "
                             f"({len(rows)} of {len(preset.lr_candidates)} runs); run the sweep first")
        chosen[size] = float(rows.loc[rows["eval_loss"].idxmin(), "max_lr"])
    return chosen


def plan_runs(preset: SuitePreset | str, runs_dir: str | Path = DEFAULT_RUNS_DIR, designs=DESIGNS,
              sizes=None, device: str = "cpu", learning_rates: dict | None = None) -> list[PlannedRun]:
    """Every run of a preset, in an order where each WSD branch follows its constant run.

    learning_rates: peak lr per size (default: `chosen_learning_rates`, which needs the finished sweep)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset.validate()
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown:
        raise ValueError(f"unknown design(s) {unknown}: use some of {', '.join(DESIGNS)}")
    if sizes is not None:
        missing = [size for size in sizes if size not in preset.sizes]
        if missing:
            raise ValueError(f"preset {preset.name} has no size {missing}: use some of {', '.join(preset.sizes)}")
    runs_dir = Path(runs_dir)
    lrs = learning_rates if learning_rates is not None else chosen_learning_rates(preset, runs_dir)
    common = _common(preset, device)
    runs: list[PlannedRun] = []
    for size in preset.sizes:
        if sizes is not None and size not in sizes:
            continue
        rungs = rung_steps(preset, size)
        last = max(rungs.values())
        lr = lrs[size]
        if "cosine" in designs:
            for seed in preset.cosine_seeds:
                name = f"{size}-seed{seed}"
                runs.append(PlannedRun("cosine", name, size, training.TrainConfig(
                    size=size, steps=last, max_lr=lr, schedule="cosine", seed=seed,
                    checkpoint_steps=tuple(sorted(set(rungs.values()))), log_every=max(1, last // 200),
                    run=f"{preset.name}/cosine/{name}", design="cosine", keep_training_state="last", **common),
                    group=f"cosine/{name}", phase="cosine"))
        if "wsd" in designs:
            for seed in preset.wsd_seeds:
                branch = {rung: max(preset.warmup_steps + 1, int(round((1 - preset.wsd_decay_fraction) * steps)))
                          for rung, steps in rungs.items()}
                stable_name = f"{size}-seed{seed}-constant"
                stable_folder = runs_dir / preset.name / "wsd" / stable_name
                runs.append(PlannedRun("wsd", stable_name, size, training.TrainConfig(
                    size=size, steps=last, max_lr=lr, schedule="constant", seed=seed,
                    checkpoint_steps=tuple(sorted(set(rungs.values()) | set(branch.values()))),
                    log_every=max(1, last // 200), run=f"{preset.name}/wsd/{stable_name}", design="wsd",
                    keep_training_state="all", **common), group=f"wsd/{size}-seed{seed}", phase="stable"))
                for rung, steps in rungs.items():
                    point = branch[rung]
                    if steps <= point:
                        continue  # a rung inside the warmup has no room for a decay
                    name = f"{size}-seed{seed}-decay{steps:06d}"
                    runs.append(PlannedRun("wsd", name, size, training.TrainConfig(
                        size=size, steps=steps, max_lr=lr, schedule="wsd", decay_steps=steps - point, seed=seed,
                        init_from=str(stable_folder / f"step-{point:06d}"),
                        log_every=max(1, (steps - point) // 20), run=f"{preset.name}/wsd/{name}", design="wsd",
                        keep_training_state="last", **common),
                        depends_on=stable_name, group=f"wsd/{size}-seed{seed}", phase="decayed"))
    return runs


def shard_runs(runs: list[PlannedRun], shard: tuple[int, int] | None) -> list[PlannedRun]:
    """Runs of one worker: groups (a WSD constant run and its branches stay together) dealt to the least-loaded
    worker, largest first, so that the workers finish at about the same time."""
    if shard is None:
        return runs
    index, count = shard
    mine: list[PlannedRun] = []
    for worker, group in zip(assign_groups(runs, count), _groups(runs)):
        if worker == index - 1:
            mine.extend(group)
    return mine


def _groups(runs: list[PlannedRun]) -> list[list[PlannedRun]]:
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    return list(groups.values())


def balance(costs: list[float], workers: int) -> list[int]:
    """Worker index of each job: longest processing time first onto the least-loaded worker (so that the workers
    finish at about the same time). Shared by the training and the measurement shards."""
    loads, assignment = [0.0] * workers, [0] * len(costs)
    for position in sorted(range(len(costs)), key=lambda i: -costs[i]):
        worker = loads.index(min(loads))
        loads[worker] += costs[position]
        assignment[position] = worker
    return assignment


def assign_groups(runs: list[PlannedRun], workers: int) -> list[int]:
    """Worker index of each group of `_groups(runs)`, balanced by estimated training seconds."""
    return balance([sum(run_cost(run) for run in group) for group in _groups(runs)], workers)


# Measured single-thread training throughput on the 2-core machine (tokens/s, vocabulary 1,024, context 128,
# batch 32); sizes not measured fall back to a FLOP-based estimate.
MEASURED_TOKENS_PER_SECOND = {"13k": 94_000, "25k": 49_000, "57k": 39_000, "150k": 28_000}


def tokens_per_second_estimate(size: str, vocab_size: int = 1024) -> float:
    if size in MEASURED_TOKENS_PER_SECOND:
        return MEASURED_TOKENS_PER_SECOND[size]
    from qid.suite.models import mini_shape

    shape = mini_shape(size)
    flops = 6 * (shape.non_embedding_parameters + shape.d_model * vocab_size)  # per token, forward + backward
    return 2.6e10 / flops  # ~26 GFLOP/s effective on one core, calibrated on the 150k size


def run_cost(run: PlannedRun) -> float:
    """Estimated single-thread seconds of a run (steps trained here, from its branch point when it has one)."""
    start = 0
    if run.config.init_from:
        start = int(Path(run.config.init_from).name.split("-")[1])
    return (run.config.steps - start) * run.config.tokens_per_step / tokens_per_second_estimate(run.size)


def cost_per_token(size: str) -> float:
    """Relative cost per token of a size (used to balance measurement shards)."""
    return 1.0 / tokens_per_second_estimate(size)


def budget_table(preset: SuitePreset | str, learning_rates: dict | None = None):
    """The plan on paper: per size, tokens and estimated single-thread seconds of the sweep and of each design."""
    import pandas as pd

    preset = get_preset(preset) if isinstance(preset, str) else preset.validate()
    lrs = learning_rates or {size: preset.max_lr.get(size, preset.lr_candidates[0]) for size in preset.sizes}
    rows = []
    for size in preset.sizes:
        sweep = [r for r in plan_lr_sweep(preset) if r.size == size]
        runs = plan_runs(preset, sizes=[size], learning_rates=lrs)
        row = {"size": size, "N": size_parameters(size), "rungs": len(preset.rungs(size)),
               "max_D_over_N": max(preset.rungs(size)), "tokens_per_second": tokens_per_second_estimate(size),
               "sweep_tokens": sum(r.config.steps * r.config.tokens_per_step for r in sweep),
               "sweep_s": sum(run_cost(r) for r in sweep)}
        for design in DESIGNS:
            chosen = [r for r in runs if r.design == design]
            row[f"{design}_s"] = sum(run_cost(r) for r in chosen)
        row["train_s"] = row["sweep_s"] + sum(row[f"{d}_s"] for d in DESIGNS)
        rows.append(row)
    return pd.DataFrame(rows)


STAGES = ("lr_sweep", "main", "all")


def planned_stage(spec: SuitePreset, stage: str, runs_dir, designs=DESIGNS, sizes=None, device: str = "cpu"):
    """The runs of one stage: the learning-rate sweep, or the designs (which need the sweep's choice)."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: use one of {', '.join(STAGES)}")
    if stage == "lr_sweep":
        return plan_lr_sweep(spec, runs_dir, sizes, device)
    return plan_runs(spec, runs_dir, designs, sizes, device)
