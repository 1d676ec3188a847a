"""The whole suite as one resumable command: learning-rate sweep, training, measurement, tables.

`run_pipeline` fans each stage out over `workers` processes (one torch thread each: on 2 cores two
single-threaded processes train these small models faster than one process with two threads, and a
thread count that exceeds the free cores makes PyTorch's spinning workers collapse). A stage starts when the
previous one is finished, because the designs need the sweep's learning rates and the measurement needs every
checkpoint. Every stage is resumable: finished runs and measured cells are skipped, so rerunning the same
command after an interruption continues where it stopped. Each stage's wall time is appended to
`runs/suite/<preset>/stage_times.jsonl`, which the provenance sums over resumptions.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from qid.suite import plan as suite
from qid.suite import run as suite_run


def _worker_setup(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _train_shard(preset, runs_dir, designs, sizes, device, shard, stage) -> int:
    finals = suite_run.train_suite(preset, runs_dir, designs, sizes, device, shard=shard, progress=False, stage=stage)
    return len(finals)


def _measure_shard(preset, runs_dir, device, shard) -> str:
    from qid.suite import measurement as suite_measure

    return str(suite_measure.measure_suite(preset, runs_dir=runs_dir, device=device, shard=shard, progress=False))


def stage_log_path(preset: str, runs_dir) -> Path:
    return Path(runs_dir) / preset / "stage_times.jsonl"


def _record_stage(preset: str, runs_dir, stage: str, seconds: float, workers: int) -> None:
    from qid.common.provenance import utc_now

    path = stage_log_path(preset, runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps({"stage": stage, "wall_s": round(seconds, 1), "workers": workers,
                                 "finished_utc": utc_now()}) + "\n")


def stage_times(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> dict[str, float]:
    """Wall seconds per stage, summed over every (resumed) execution."""
    path = stage_log_path(preset, runs_dir)
    totals: dict[str, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                totals[entry["stage"]] = totals.get(entry["stage"], 0.0) + entry["wall_s"]
    return {stage: round(seconds, 1) for stage, seconds in totals.items()}  # to the log's 0.1 s, no float tail


def run_pipeline(preset: str = "cpu", workers: int = 2, threads: int = 1, runs_dir=suite.DEFAULT_RUNS_DIR,
                 designs=suite.DESIGNS, sizes=None, device: str = "cpu", stages=("lr_sweep", "main", "measure"),
                 log=None) -> dict[str, float]:
    """Run the given stages in order, each over `workers` processes; returns this execution's wall seconds per stage."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    suite.get_preset(preset)
    seconds = {}
    context = get_context("spawn")
    for stage in stages:
        began = time.perf_counter()
        log(f"[{preset}] stage {stage}: {workers} worker(s) × {threads} thread(s)")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_setup,
                                 initargs=(threads,)) as pool:
            if stage == "measure":
                futures = [pool.submit(_measure_shard, preset, str(runs_dir), device, (i, workers))
                           for i in range(1, workers + 1)]
            else:
                futures = [pool.submit(_train_shard, preset, str(runs_dir), tuple(designs), sizes, device,
                                       (i, workers), stage) for i in range(1, workers + 1)]
            for future in futures:
                future.result()  # re-raises a worker's error here
        seconds[stage] = time.perf_counter() - began
        _record_stage(preset, runs_dir, stage, seconds[stage], workers)
        log(f"[{preset}] stage {stage}: done in {seconds[stage]:.0f} s")
    return seconds


def ngram_baselines(preset: str, runs_dir=suite.DEFAULT_RUNS_DIR) -> Path:
    """The n-gram baselines on the preset's evaluation windows and the whole eval split (cached in runs/)."""
    import torch

    from qid.suite import corpus, ngram

    from qid.measure import evaluate
    from qid.common.atomicio import atomic_write_csv

    path = Path(runs_dir) / preset / "ngram_baselines.csv"
    if not path.is_file():
        spec = suite.get_preset(preset)
        stream = torch.from_numpy(corpus.load_split_tokens("eval").astype("int64"))
        windows = evaluate.evaluation_windows(stream, spec.seq_len, spec.qid_eval_windows * (spec.seq_len - 1), 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(path, ngram.baselines(spec.seq_len, windows), float_format="%.6g")
    return path


def write_tables(preset: str = "cpu", runs_dir=suite.DEFAULT_RUNS_DIR, output_dir=suite.SUITE_DATA_DIR,
                 command: str = "") -> dict[str, Path]:
    """The tidy tables with provenance: commit, machine, packages, wall time per stage, tokens/s per size."""
    from qid.suite import corpus
    from qid.common.provenance import git_commit, machine_description, package_versions, utc_now
    from qid.suite.tables import collect_checkpoints, write_suite_tables

    import dataclasses

    ngram_baselines(preset, runs_dir)
    checkpoints = collect_checkpoints(preset, runs_dir)
    speed = checkpoints.groupby("size", sort=False)["tokens_per_second"].median().round(0).to_dict()
    times = stage_times(preset, runs_dir)
    provenance = {
        "command": command or f"qid train-suite --preset {preset} --workers 2 --threads 1 --measure",
        "preset": dataclasses.asdict(suite.get_preset(preset)),
        "commit": git_commit(), "machine": machine_description(), "packages": package_versions(),
        "written_utc": utc_now(),
        "wall_s_by_stage": times, "wall_s_total": round(sum(times.values()), 1),
        "training_tokens_per_second_by_size": speed,
        "corpus_train_tokens": int(corpus.load_split_tokens("train").size),
        "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        "note": "wall times are summed over resumed executions, on a machine that may be shared with other jobs "
                "(niceness: that of the process writing the tables, whose workers inherit it); tokens/s per size "
                "is the median over the size's runs of each run's single-thread training throughput",
    }
    return write_suite_tables(preset, runs_dir, output_dir, provenance=provenance, checkpoints=checkpoints)


def ensure_tables(preset: str, suite_dir, work_dir) -> Path:
    """The folder holding `preset`'s tables: `suite_dir` when they are there; for the tiny preset, built in
    `work_dir` (a couple of minutes on a CPU); otherwise a FileNotFoundError naming the command that makes them."""
    suite_dir, work_dir = Path(suite_dir), Path(work_dir)
    if (suite_dir / f"{preset}_qid.csv").is_file():
        return suite_dir
    tables = work_dir / "tables"
    if (tables / f"{preset}_qid.csv").is_file():
        return tables
    if preset != "tiny":
        raise FileNotFoundError(f"{suite_dir}/{preset}_qid.csv is missing: make it with `qid train-suite --preset "
                                f"{preset} --workers 2 --threads 1 --measure --output-dir {suite_dir}`")
    from qid.suite import measurement as suite_measure

    runs = work_dir / "runs"
    suite_run.train_suite(preset, runs, progress=False, log=lambda message: None, stage="all")
    suite_measure.measure_suite(preset, runs, progress=False)
    write_tables(preset, runs, tables)
    return tables
