"""Ray's overhead on a QiD sweep: the same tiny sweep run serially and as Ray tasks on a local cluster.

The sweep is the one the Ray tests use (tiny GPT-NeoX checkpoints with random weights, RTN and GPTQ at 2 and
4 bits per channel), so every cell costs well under a second and what is left is Ray's own cost: starting
the cluster, starting worker processes that import torch and transformers, shipping the spec and streaming
rows back. Each run writes a fresh output table. Per cluster: its start time, a first ("cold") Ray sweep
whose tasks start worker processes, then `--repeats` pairs of a serial sweep and a "warm" Ray sweep
(workers reused), alternating so that both see the same background load. A cluster of 1 CPU runs the tasks
one after another (pure overhead); a cluster of 2 CPUs also runs two checkpoints at once.

    .venv/bin/python benchmarks/bench_ray.py            # → data/benchmarks/ray_overhead.csv

Not a test: wall times depend on the machine and on whatever else runs on it (recorded in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from qid.measure import ray_sweep

from qid.common import provenance
from qid.common.atomicio import atomic_write_csv
from qid.suite.corpus import load_tokenizer
from qid.suite.models import gpt_neox_config
from qid.common.paths import DATA_DIR
from qid.measure.sweep import SweepSpec, run_sweep

OUTPUT = DATA_DIR / "benchmarks" / "ray_overhead.csv"


def tiny_checkpoints(folder: Path, count: int) -> list[str]:
    from transformers import GPTNeoXForCausalLM

    tokenizer = load_tokenizer()
    folders = []
    for index in range(count):
        checkpoint = folder / f"step-{(index + 1) * 100:06d}"
        torch.manual_seed(index)
        GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=len(tokenizer), context=32)).save_pretrained(str(checkpoint))
        tokenizer.save_pretrained(str(checkpoint))
        (checkpoint / "qid_metadata.json").write_text(json.dumps({"family": "test", "step": (index + 1) * 100,
                                                                  "tokens": (index + 1) * 51_200}))
        folders.append(str(checkpoint))
    return folders


def spec_for(folders) -> SweepSpec:
    return SweepSpec(checkpoints=folders, methods=["rtn", "gptq"], bits=[2, 4], group_sizes=[-1], eval_tokens=620,
                     calibration_samples=4, device="cpu", batch_size=16)


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=4, help="tiny checkpoints in the sweep (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--cluster-cpus", type=int, nargs="+", default=[1, 2], help="CPUs of each local cluster")
    parser.add_argument("--output", default=str(OUTPUT), help=f"CSV to write (default {OUTPUT})")
    args = parser.parse_args(argv)

    import ray

    quiet = lambda message: None  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        spec = spec_for(tiny_checkpoints(scratch / "models", args.checkpoints))
        cells = 2 * 2 * args.checkpoints

        def record(mode, cluster_cpus, repeat, wall, note=""):
            rows.append({"mode": mode, "cluster_cpus": cluster_cpus, "repeat": repeat, "checkpoints": args.checkpoints,
                         "cells": cells, "wall_s": round(wall, 3),
                         # the machine is shared: its 1-minute load average says how noisy the time is
                         "load_average_1min": round(os.getloadavg()[0], 2), "note": note})
            print(f"{mode:12s} cpus={cluster_cpus!s:4s} repeat {repeat}: {wall:7.2f} s {note}", file=sys.stderr)

        torch.set_num_threads(1)  # as in a one-CPU Ray task: the same arithmetic, the same rows
        run_sweep(spec, scratch / "warm-up.csv", progress=False, log=quiet)  # imports, tokenizer and text caches
        for cluster_cpus in args.cluster_cpus:
            record("ray_init", cluster_cpus, 1, timed(lambda: ray.init(
                num_cpus=cluster_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)),
                "starting the local cluster")
            record("ray_cold", cluster_cpus, 1, timed(lambda: ray_sweep.run_sweep_on_ray(
                spec, scratch / f"cold-{cluster_cpus}.csv", progress=False, log=quiet)), "workers start and import")
            # Serial and warm Ray runs alternate, so that both see the same background load.
            for repeat in range(1, args.repeats + 1):
                output = scratch / f"serial-{cluster_cpus}-{repeat}.csv"
                record("serial", cluster_cpus, repeat, timed(lambda: run_sweep(spec, output, progress=False, log=quiet)),
                       "1 torch thread, in the driver's process")
                output = scratch / f"ray-{cluster_cpus}-{repeat}.csv"
                record("ray_warm", cluster_cpus, repeat, timed(lambda: ray_sweep.run_sweep_on_ray(
                    spec, output, progress=False, log=quiet)), "workers already started")
            ray.shutdown()

    table = pd.DataFrame(rows)
    table["machine"] = provenance.machine_description()
    table["versions"] = provenance.package_versions_string() + f";ray={ray.__version__}"
    table["git_commit"] = provenance.git_commit()
    table["measured_at"] = provenance.utc_now()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(output, table)
    for cluster_cpus, group in table.groupby("cluster_cpus"):
        median = group.groupby("mode")["wall_s"].median()
        print(f"{cells} cells, cluster of {cluster_cpus} CPU(s): serial median {median['serial']:.2f} s; Ray warm "
              f"median {median['ray_warm']:.2f} s ({median['ray_warm'] - median['serial']:+.2f} s); cluster start "
              f"{median['ray_init']:.2f} s; first (cold) Ray sweep {median['ray_cold']:.2f} s")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
