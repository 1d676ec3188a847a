"""The training-precision grid (issue 24): quantization-aware training across sizes, budgets and precisions.

The design, planned on paper from measured single-thread training throughput (`planned_core_seconds`):

* the fixed-depth family (4 layers, head width 8; issue 19), its three smallest sizes (N 13.2k, 28.9k,
  50.9k), trained on issue 19's 10-source corpus (`data/corpus_v2`, with its own tokenizer) at two token budgets,
  D/N = 5 and 20;
* weight precision P_w ∈ {3, 4, 5, 6, 8, 16} at every size and budget (activations and KV cache at 16 bits);
* activation and KV-cache precision P_a, P_kv ∈ {4, 8, 16} each (weights at 16 bits) at the smallest size, D/N 5;
* a second training seed for every P_w at both budgets of the smallest size, so the seed-to-seed spread is measured.

The machine is shared (the suite's training has priority until ~02:00 UTC and this grid runs at nice 10), so the plan
is ordered in phases, cheapest first within a phase: (1) the smallest size at D/N 5, every P_w; (2) the smallest size
at D/N 20 (the pilot at D/N 5 showed no precision effect in 64 steps); (3) its second seed; (4) the P_a × P_kv grid;
(5) the middle size; (6) the largest. Whatever the shared CPU did not reach is listed as `not_run` in the provenance and in the chapter.

Every run is a cosine schedule with batch 8 × 128 tokens (so the shortest run still has 64 steps) and a fixed peak
learning rate per size (the suite's per-size grid centre, halved for the 4× smaller batch: a choice, not a sweep).
After training, each final checkpoint is measured with the measurement package on one fixed set of held-out windows:
the loss in its training precision (for weight-only QAT: RTN per channel at P_w of the master weights, which is
exactly the training forward), the 16-bit master weights, and post-training quantization (GPTQ, per channel)
to P_post = 4 and 3 bits. Each run writes `result.json` in its folder; `collect` turns those into the tidy tables.
Resumable: a finished run (final checkpoint) is not retrained, a measured one (result.json) not re-measured.

    python -m qid.suite.qat_grid run --runs-dir /work/runs24 --worker 1/2     # one of two workers
    python -m qid.suite.qat_grid collect --runs-dir /work/runs24 --out data/qat
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from qid.common.corpus_files import CORPUS_V2_DIR
from qid.suite import qat
from qid.suite.models import mini_shape

SIZES = ("L4-13k", "L4-29k", "L4-51k")        # the three smallest sizes of the fixed-depth family
RUNGS = (5, 20)                                # token budgets, D/N
WEIGHT_BITS = (3, 4, 5, 6, 8, 16)              # P_w of the weight grid
ACTIVATION_KV_BITS = (4, 8, 16)                # P_a and P_kv of the activation / KV-cache grid
ACTIVATION_KV_SIZE, ACTIVATION_KV_RUNG = "L4-13k", 5
SECOND_SEED_SIZE = "L4-13k"
SEEDS = (0, 1)
MAX_LR = {"L4-13k": 8e-3, "L4-29k": 8e-3, "L4-51k": 4e-3}  # peak lr per size (cosine to 10 %)
BATCH_SIZE, SEQ_LEN, WARMUP_STEPS = 8, 128, 10  # sequences per step, tokens per sequence, warmup steps
POST_BITS = (4, 3)                             # P_post of the post-training quantization of every QAT checkpoint
POST_METHODS = ("gptq",)                      # per output channel (GPTQ, as Kumar et al.; RTN left out to save CPU)
EVAL_TOKENS = 16_384                           # predicted held-out tokens (130 windows of 128), seed 0
CALIBRATION_SAMPLES = 64                       # GPTQ calibration sequences of SEQ_LEN tokens, seed 0
RESULT_FILE = "result.json"
# The corpus: issue 19's 10-source edition, committed as data/corpus_v2 (the book's main suite keeps data/corpus).
# The grid itself ran in a checkout with those files copied over data/corpus and data/tokenizer (hence "+dirty"
# commits); the fingerprints in the table equal data/corpus_v2's (tests/test_qat_grid.py checks it).
CORPUS_DIR = CORPUS_V2_DIR
CORPUS_SOURCE = ("data/corpus_v2 (issue 19's 10-source corpus, 19.2M training tokens, with its tokenizer); "
                 "fingerprint = SHA-256 prefixes of train.jsonl.gz and tokenizer.json")
# Measured single-thread training throughput of the family at batch 32 on an idle 2-core machine (tokens/s, issue 19's
# benchmarks/bench_train.py), and the slowdown of the fake-quantized forward measured here (ratio of tokens/s, batch 8).
SINGLE_THREAD_TOKENS_PER_SECOND = {"L4-13k": 57_000, "L4-29k": 45_000, "L4-51k": 31_700}
QAT_SLOWDOWN = {"weights": 1.3, "activations_kv": 2.2}
SMALL_BATCH_SLOWDOWN = 1.5  # batch 8 instead of 32: more Python overhead per token (an estimate, not measured)


@dataclass(frozen=True)
class GridRun:
    size: str
    rung: float
    seed: int
    weight_bits: int
    activation_bits: int
    kv_bits: int

    @property
    def name(self) -> str:
        return (f"{self.size}-dn{self.rung:g}-w{self.weight_bits}a{self.activation_bits}kv{self.kv_bits}"
                f"-seed{self.seed}")

    @property
    def N(self) -> int:
        return mini_shape(self.size).non_embedding_parameters

    @property
    def steps(self) -> int:
        return max(1, int(round(self.rung * self.N / (BATCH_SIZE * SEQ_LEN))))

    @property
    def tokens(self) -> int:
        return self.steps * BATCH_SIZE * SEQ_LEN

    @property
    def precision(self) -> qat.TrainingPrecision:
        return qat.TrainingPrecision(self.weight_bits, self.activation_bits, self.kv_bits)

    @property
    def part(self) -> str:
        """Which grid the run belongs to: 'weights' (P_w varied) or 'activations_kv' (P_a / P_kv varied)."""
        return "weights" if (self.activation_bits, self.kv_bits) == (16, 16) else "activations_kv"

    @property
    def phase(self) -> int:
        """Order of the plan (see the module docstring): 1 = the smallest size at the small budget, ..., 6 = last."""
        if self.part == "activations_kv":
            return 4
        if self.seed > 0:
            return 3
        if self.size == SIZES[0]:
            return 1 if self.rung == min(RUNGS) else 2
        return 5 if self.size == SIZES[1] else 6

    def core_seconds(self) -> float:
        """Planned single-core training seconds (measurement not included)."""
        slowdown = QAT_SLOWDOWN[self.part] if not self.precision.is_full else 1.0
        return self.tokens / SINGLE_THREAD_TOKENS_PER_SECOND[self.size] * slowdown * SMALL_BATCH_SLOWDOWN


def plan() -> list[GridRun]:
    """Every run of the design, by phase and cheapest first within one (an interrupted grid has its broadest part)."""
    runs = {GridRun(size, rung, 0, bits, 16, 16) for size in SIZES for rung in RUNGS for bits in WEIGHT_BITS}
    runs |= {GridRun(SECOND_SEED_SIZE, rung, 1, bits, 16, 16) for rung in RUNGS for bits in WEIGHT_BITS}
    runs |= {GridRun(ACTIVATION_KV_SIZE, ACTIVATION_KV_RUNG, 0, 16, a, kv)
             for a in ACTIVATION_KV_BITS for kv in ACTIVATION_KV_BITS}
    return sorted(runs, key=lambda run: (run.phase, run.core_seconds(), run.name))


def planned_core_seconds(runs: list[GridRun] | None = None) -> float:
    return float(sum(run.core_seconds() for run in (runs if runs is not None else plan())))


def train_config(run: GridRun):
    from qid.suite.train import TrainConfig

    halfway = run.steps // 2
    return TrainConfig(size=run.size, steps=run.steps, batch_size=BATCH_SIZE, seq_len=SEQ_LEN, max_lr=MAX_LR[run.size],
                       warmup_steps=WARMUP_STEPS, schedule="cosine", seed=run.seed, device="cpu",
                       checkpoint_steps=(halfway,) if halfway > WARMUP_STEPS else (), eval_sequences=16,
                       log_every=max(1, run.steps // 20), run=run.name, design="qat",
                       keep_training_state="last", weight_bits=run.weight_bits, activation_bits=run.activation_bits,
                       kv_bits=run.kv_bits, corpus_dir=str(CORPUS_DIR), extra={"rung": run.rung})


# ----------------------------------------------------------------------------------------------- measuring
def evaluation_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out windows and GPTQ calibration sample every checkpoint is measured on."""
    from qid.measure.evaluate import evaluation_windows
    from qid.measure.textsource import sample_calibration
    from qid.suite import corpus

    evaluation = torch.from_numpy(corpus.load_split_tokens("eval", corpus_dir=CORPUS_DIR).astype(np.int64))
    calibration = torch.from_numpy(corpus.load_split_tokens("calibration", corpus_dir=CORPUS_DIR).astype(np.int64))
    return (evaluation_windows(evaluation, SEQ_LEN, EVAL_TOKENS, seed=0),
            sample_calibration(calibration, CALIBRATION_SAMPLES, SEQ_LEN, seed=0))


def training_precision_losses(model, precision: qat.TrainingPrecision, windows: torch.Tensor) -> torch.Tensor:
    """Per-window losses of the model in its training precision (the QAT forward, installed then removed)."""
    from qid.measure.evaluate import window_losses

    installed = qat.install(model, precision)
    try:
        return window_losses(model, windows, batch_size=16)
    finally:
        installed.remove()


def measure_checkpoint(folder: Path, precision: qat.TrainingPrecision, windows: torch.Tensor,
                       calibration: torch.Tensor) -> dict:
    """Losses of one QAT checkpoint: in training precision, at 16 bits, and after PTQ to each P_post (weight grid only)."""
    from qid.measure.checkpoints import load_checkpoint
    from qid.measure.evaluate import paired_qid, predicted_tokens, window_losses
    from qid.measure.quantize import quantize_model, restore_weights, snapshot_weights

    model = load_checkpoint(str(folder))[0]
    trained = training_precision_losses(model, precision, windows)
    master = window_losses(model, windows, batch_size=16)
    result = {"loss": float(trained.mean()), "loss_se": float(trained.std() / np.sqrt(len(trained))),
              "loss_master": float(master.mean()), "eval_tokens": predicted_tokens(windows), "ptq": []}
    if (precision.activations, precision.kv_cache) != (16, 16):
        return result  # PTQ of weights is compared on the weight grid only (activations and KV at 16 bits)
    snapshot = snapshot_weights(model)
    for method in POST_METHODS:
        for bits in POST_BITS:
            quantize_model(model, method, bits, group_size=-1, calibration=calibration, batch_size=16)
            post = window_losses(model, windows, batch_size=16)
            restore_weights(model, snapshot)
            paired = paired_qid(trained, post)
            result["ptq"].append({"method": method, "P_post": bits, "loss_post": paired.loss_q,
                                  "delta_ptq": paired.qid, "delta_ptq_se": paired.qid_se})
    return result


def run_worker(runs_dir: Path, worker: int = 1, workers: int = 1, progress: bool = False) -> int:
    """Train and measure this worker's share of the plan (runs i with i % workers == worker − 1); returns runs done."""
    from qid.common.atomicio import atomic_write_text
    from qid.suite.train import read_metadata, train

    torch.set_num_threads(1)
    windows, calibration = evaluation_data()
    done = 0
    for index, run in enumerate(plan()):
        if index % workers != worker - 1:
            continue
        folder = runs_dir / run.name
        if (folder / RESULT_FILE).is_file():
            done += 1
            continue
        final = train(folder, train_config(run), progress=progress)
        measured = measure_checkpoint(final, run.precision, windows, calibration)
        metadata = read_metadata(final)
        record = {**asdict(run), "run": run.name, "part": run.part, "N": run.N, "tokens": run.tokens,
                  "steps": run.steps, "max_lr": MAX_LR[run.size], "batch_size": BATCH_SIZE, "seq_len": SEQ_LEN,
                  "train_wall_s": metadata["train_wall_s"], "tokens_per_second": metadata["tokens_per_second"],
                  "corpus": metadata["corpus_sha256"], "commit": metadata["commit"], "machine": metadata["machine"],
                  "saved_utc": metadata["saved_utc"], **measured}
        atomic_write_text(folder / RESULT_FILE, json.dumps(record, indent=1) + "\n")
        done += 1
        print(f"[qat-grid] {run.name}: loss {measured['loss']:.4f} ({metadata['train_wall_s']:.0f} s)", flush=True)
    return done


# ------------------------------------------------------------------------------------------------- tables
GRID_COLUMNS = ("run", "part", "size", "N", "rung", "tokens", "steps", "seed", "P_w", "P_a", "P_kv", "max_lr",
                "loss", "loss_se", "loss_master", "train_wall_s", "tokens_per_second")
PTQ_COLUMNS = ("run", "size", "N", "rung", "tokens", "seed", "P_w", "loss", "method", "P_post", "loss_post",
               "delta_ptq", "delta_ptq_se")


def collect(runs_dir: Path, out_dir: Path, command: str = "") -> dict:
    """Write grid.csv, ptq.csv and provenance.json from every measured run under runs_dir; returns the provenance."""
    import pandas as pd

    from qid.common.atomicio import atomic_write_csv, atomic_write_text
    from qid.common.provenance import utc_now

    records = [json.loads(path.read_text()) for path in sorted(runs_dir.glob(f"*/{RESULT_FILE}"))]
    planned = {run.name for run in plan()}
    records = [r for r in records if r["run"] in planned]
    rows, ptq_rows = [], []
    for r in records:
        rows.append({**r, "P_w": r["weight_bits"], "P_a": r["activation_bits"], "P_kv": r["kv_bits"]})
        ptq_rows += [{**rows[-1], **cell} for cell in r["ptq"]]
    order = ["part", "size", "rung", "seed", "P_w", "P_a", "P_kv"]
    grid = pd.DataFrame(rows, columns=list(GRID_COLUMNS) + ["corpus", "commit", "machine", "saved_utc"])
    grid = grid.sort_values(order).reset_index(drop=True) if len(grid) else grid
    ptq = pd.DataFrame(ptq_rows, columns=list(PTQ_COLUMNS))
    if len(ptq):
        ptq = ptq.sort_values(["size", "rung", "seed", "P_w", "method", "P_post"]).reset_index(drop=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out_dir / "grid.csv", grid[list(GRID_COLUMNS)], index=False, float_format="%.6g")
    atomic_write_csv(out_dir / "ptq.csv", ptq, index=False, float_format="%.6g")
    missing = sorted(planned - {r["run"] for r in records})
    provenance = {
        "what": "training-precision grid (issue 24): QAT runs of the suite's 4-layer family; see qid/suite/qat_grid.py",
        "command": command or "python -m qid.suite.qat_grid run / collect",
        "commits": sorted({r["commit"] for r in records}), "corpus": sorted({r["corpus"] for r in records}),
        "corpus_source": CORPUS_SOURCE,
        "machines": sorted({r["machine"] for r in records}),
        "first_run_utc": min((r["saved_utc"] for r in records), default=None),
        "last_run_utc": max((r["saved_utc"] for r in records), default=None), "collected_utc": utc_now(),
        "design": {"sizes": list(SIZES), "rungs": list(RUNGS), "weight_bits": list(WEIGHT_BITS),
                   "activation_kv_bits": list(ACTIVATION_KV_BITS),
                   "activation_kv_at": [ACTIVATION_KV_SIZE, ACTIVATION_KV_RUNG],
                   "second_seed_at": [SECOND_SEED_SIZE, list(RUNGS)], "max_lr": MAX_LR,
                   "batch_size": BATCH_SIZE, "seq_len": SEQ_LEN, "warmup_steps": WARMUP_STEPS,
                   "post_bits": list(POST_BITS), "post_methods": list(POST_METHODS), "eval_tokens": EVAL_TOKENS,
                   "calibration_samples": CALIBRATION_SAMPLES},
        "planned_runs": len(planned), "measured_runs": len(records), "not_run": missing,
        "planned_core_seconds": round(planned_core_seconds(), 1),
        # wall seconds of the training loops (on a shared machine: far more than the CPU they used)
        "train_wall_seconds": round(float(sum(r["train_wall_s"] for r in records)), 1),
    }
    atomic_write_text(out_dir / "provenance.json", json.dumps(provenance, indent=1) + "\n")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qid.suite.qat_grid", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train and measure (resumable)")
    run_parser.add_argument("--runs-dir", required=True, type=Path)
    run_parser.add_argument("--worker", default="1/1", help="K/W: this process takes every W-th run from the K-th")
    run_parser.add_argument("--progress", action="store_true")
    collect_parser = commands.add_parser("collect", help="write the tidy tables from the measured runs")
    collect_parser.add_argument("--runs-dir", required=True, type=Path)
    collect_parser.add_argument("--out", required=True, type=Path)
    commands.add_parser("plan", help="print the plan and its planned core-seconds")
    args = parser.parse_args(argv)
    if args.command == "plan":
        for run in plan():
            print(f"{run.phase} {run.name:40s} steps {run.steps:5d} tokens {run.tokens:8d} ~{run.core_seconds():6.1f} core-s")
        print(f"{len(plan())} runs, {planned_core_seconds() / 60:.1f} core-minutes of training planned")
        return 0
    if args.command == "run":
        try:
            worker, workers = (int(part) for part in args.worker.split("/"))
            if not 1 <= worker <= workers:
                raise ValueError
        except ValueError:
            print(f"--worker {args.worker!r}: use K/W with 1 ≤ K ≤ W", file=sys.stderr)
            return 2
        run_worker(args.runs_dir, worker, workers, progress=args.progress)
        return 0
    provenance = collect(args.runs_dir, args.out, command=" ".join(["python -m qid.suite.qat_grid", *(argv or sys.argv[1:])]))
    print(f"{provenance['measured_runs']}/{provenance['planned_runs']} runs collected into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
