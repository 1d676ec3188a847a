"""Benchmark of QiD measurement: evaluation throughput, GPTQ time and peak memory; GPTQ against a reference.

Not a timed test: run it by hand, results go to data/benchmarks/ (documented in data/README.md).

    .venv/bin/python benchmarks/bench_measure.py                 # CPU: small local models + reference check
    .venv/bin/python benchmarks/bench_measure.py --device cuda   # GPU: also Pythia-160M- and 1B-shaped models

Parts:

1. ``throughput``: for GPT-NeoX models with random weights (speed does not depend on training) — the
   book's mini sizes on CPU; on CUDA also the Pythia-160M and Pythia-1B shapes with Pythia's vocabulary and
   2048-token windows — it times `qid.measure.evaluate.window_losses` (tokens/s, achieved FLOP/s, and on CUDA the
   fraction of the bf16 dense peak, ~800 TFLOP/s on an H100 as measured on the project's GPU machine) and
   `qid.measure.quantize.quantize_model(..., "gptq", 4, 128)` (seconds; evaluation: best of three runs), each with its peak memory (CUDA: peak
   allocated; CPU: peak resident set size of the process, reset before each measurement through
   /proc/self/clear_refs). FLOPs per token: 2·(non-embedding + output-head parameters) +
   2·layers·window·d_model for attention (forward only, causal half not discounted).
   → data/benchmarks/measure_throughput.csv
2. ``reference``: our GPTQ against llmcompressor's (installed only in .venv-bench, see
   benchmarks/reference_gptq_llmcompressor.py) on the same small model trained by `qid.suite.train`, the same
   calibration sample and the same evaluation windows, at 2, 3 and 4 bits per-channel. Both are scored by
   the same `window_losses`; the table holds both QiDs with their standard errors and the paired
   difference with its own SE, without and with (static) act-order. → data/benchmarks/gptq_reference.csv (or a row saying why the reference
   could not run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qid.measure import evaluate, quantize  # noqa: E402

from qid.common import provenance, runtime
from qid.measure.checkpoints import non_embedding_parameters, total_parameters  # noqa: E402
from qid.suite.models import PYTHIA_CONTEXT, PYTHIA_VOCAB_SIZE, gpt_neox_config, mini_config, pythia_config  # noqa: E402

OUTPUT_DIR = REPO / "data" / "benchmarks"
H100_BF16_PEAK_FLOPS = 800e12  # dense bf16 matmul ceiling quoted in the environment notes (used when not measured)
TWELVE_B_BLOCKS = 3  # the 12B shape is quantized on this many blocks and extrapolated to its 36 (stated as such)
THROUGHPUT_COLUMNS = (
    "model", "device", "dtype", "layers", "d_model", "vocab", "N", "total_parameters", "window", "batch_size",
    "eval_tokens", "eval_seconds", "tokens_per_second", "flops_per_token", "achieved_tflops", "fraction_of_peak",
    "eval_peak_memory_mb", "gptq_bits", "gptq_group_size", "calib_samples", "calib_length", "gptq_seconds",
    "gptq_peak_memory_mb", "gptq_blocks_measured", "gptq_seconds_all_blocks", "gptq_memory_all_blocks_mb",
    "peak_tflops_measured", "machine", "versions", "git_commit", "date",
)
REFERENCE_COLUMNS = (
    "model", "N", "D", "bits", "group_size", "act_order", "calib_samples", "calib_length", "eval_tokens",
    "loss_16", "qid_ours", "qid_ours_se", "qid_reference", "qid_reference_se", "difference", "difference_se",
    "within_se", "gptq_seconds_ours", "gptq_seconds_reference", "reference", "reference_versions", "note",
    "machine", "versions", "git_commit", "date",
)


# ----------------------------------------------------------------------------------------------- memory
def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)
    except OSError:
        pass


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------- throughput
def _model_configs(device: torch.device, quick: bool):
    """(name, config, window, batch, eval windows, calibration samples, stages) per benchmarked model.

    stages: which measurements a model gets ("eval", "gptq"). On a GPU: evaluation of Pythia-160M-, 1B- and
    2.8B-shaped models, GPTQ of the 1B shape, and GPTQ alone of the 12B shape (block by block, the whole
    model resident in bf16: the question is whether it fits in 80 GB).
    """
    both = ("eval", "gptq")
    configs = [
        ("mini-0.1m", mini_config("0.1m", vocab_size=4096, context=256), 256, 16, 32, 32, both),
        ("mini-1m", mini_config("1m", vocab_size=4096, context=256), 256, 16, 32, 32, both),
    ]
    if not quick:
        configs.append(("mini-3m", mini_config("3m", vocab_size=4096, context=256), 256, 16, 32, 32, both))
    if device.type == "cuda":
        configs += [
            ("pythia-160m-shape", pythia_config("160m"), PYTHIA_CONTEXT, 8, 64, 128, both),
            ("pythia-1b-shape", pythia_config("1b"), PYTHIA_CONTEXT, 8, 64, 128, both),
            ("pythia-2.8b-shape", pythia_config("2.8b"), PYTHIA_CONTEXT, 8, 64, 128, ("eval",)),
        ]
        if not quick:
            twelve = pythia_config("12b")
            twelve.num_hidden_layers = TWELVE_B_BLOCKS  # a few blocks; time and memory extrapolated to 36
            configs.append(("pythia-12b-shape", twelve, PYTHIA_CONTEXT, 4, 8, 128, ("gptq",)))
    return configs


def bf16_matmul_peak(device: torch.device, size: int = 8192, repeats: int = 20) -> float:
    """Measured dense bf16 matmul throughput (FLOP/s) on this device: the ceiling to quote fractions against."""
    if device.type != "cuda":
        return float("nan")
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def _build_model(config, device: torch.device, dtype: torch.dtype):
    """Random-weight model built directly on the device in its compute dtype (a 12B model never touches
    host memory in fp32, and a GPU build takes seconds instead of minutes)."""
    from transformers import GPTNeoXForCausalLM

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = GPTNeoXForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype).eval()


def benchmark_throughput(device: torch.device, quick: bool) -> list[dict]:
    dtype = runtime.compute_dtype(device)
    rows = []
    common = _provenance()
    peak = bf16_matmul_peak(device)
    ceiling = peak if peak == peak else H100_BF16_PEAK_FLOPS  # NaN on CPU
    print(json.dumps({"bf16_matmul_peak_tflops": round(peak / 1e12, 1) if peak == peak else None}), flush=True)
    for name, config, window, batch, n_windows, calib_samples, stages in _model_configs(device, quick):
        torch.manual_seed(0)
        model = _build_model(config, device, dtype)
        n_params = non_embedding_parameters(model)
        generator = torch.Generator().manual_seed(0)
        windows = torch.randint(0, config.vocab_size, (n_windows, window), generator=generator)
        calibration = torch.randint(0, config.vocab_size, (calib_samples, window), generator=generator)
        row = {
            "model": name, "device": runtime.device_description(device), "dtype": str(dtype).removeprefix("torch."),
            "layers": config.num_hidden_layers, "d_model": config.hidden_size, "vocab": config.vocab_size, "N": n_params,
            "total_parameters": total_parameters(model), "window": window, "batch_size": batch,
            "peak_tflops_measured": round(peak / 1e12, 1) if peak == peak else "", **common,
        }
        if "eval" in stages:
            evaluate.window_losses(model, windows[:batch], batch_size=batch)  # warm-up (kernels, allocator)
            _reset_peak(device)
            timings = []
            for _ in range(3):  # best of three: the CPU machines are shared, the minimum is the least disturbed
                _synchronize(device)
                started = time.perf_counter()
                evaluate.window_losses(model, windows, batch_size=batch)
                _synchronize(device)
                timings.append(time.perf_counter() - started)
            eval_seconds = min(timings)
            tokens = windows.numel()
            # Forward FLOPs per token: 2 per weight (blocks and output layer) plus attention scores and values.
            flops_per_token = 2 * (n_params + config.vocab_size * config.hidden_size) + 2 * config.num_hidden_layers * window * config.hidden_size
            achieved = flops_per_token * tokens / eval_seconds
            row.update({
                "eval_tokens": tokens, "eval_seconds": round(eval_seconds, 4), "tokens_per_second": round(tokens / eval_seconds, 1),
                "flops_per_token": flops_per_token, "achieved_tflops": round(achieved / 1e12, 4),
                "fraction_of_peak": round(achieved / ceiling, 4) if device.type == "cuda" else "",
                "eval_peak_memory_mb": round(_peak_mb(device), 1),
            })
        if "gptq" in stages:
            _reset_peak(device)
            _synchronize(device)
            started = time.perf_counter()
            quantize.quantize_model(model, "gptq", 4, 128, calibration, batch_size=batch)
            _synchronize(device)
            row.update({
                "gptq_bits": 4, "gptq_group_size": 128, "calib_samples": calib_samples, "calib_length": window,
                "gptq_seconds": round(time.perf_counter() - started, 3), "gptq_peak_memory_mb": round(_peak_mb(device), 1),
            })
            if name == "pythia-12b-shape":
                # Extrapolation, stated as such: time scales with the blocks; memory = the measured peak minus the
                # measured blocks' bf16 weights plus all 36 blocks' (the whole model stays resident).
                full = pythia_config("12b")
                per_block = 12 * full.hidden_size**2 * 2  # bf16 bytes of one block's matrices
                row.update({"gptq_blocks_measured": config.num_hidden_layers,
                            "gptq_seconds_all_blocks": round(row["gptq_seconds"] * full.num_hidden_layers
                                                             / config.num_hidden_layers, 1),
                            "gptq_memory_all_blocks_mb": round(row["gptq_peak_memory_mb"] + (full.num_hidden_layers
                                                               - config.num_hidden_layers) * per_block / 2**20, 1)})
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------------------------------ reference
def benchmark_reference(reference_python: Path, work: Path, bits=(2, 3, 4), eval_tokens: int = 32_768,
                        calib_samples: int = 32, training: dict | None = None) -> list[dict]:
    """Our GPTQ and llmcompressor's on the same trained model, calibration and windows (CPU, fp32)."""
    from qid.measure import textsource
    from qid.measure.checkpoints import load_checkpoint
    from qid.suite.train import train_small_model

    training = training or dict(steps=200, size="0.1m", batch_size=16, seq_len=64, max_lr=5e-3, seed=0)
    folder = train_small_model(work / "model", **training)
    model, tokenizer, info = load_checkpoint(folder)
    length = training["seq_len"]
    windows = evaluate.evaluation_windows(textsource.token_stream("corpus:eval", tokenizer), length, eval_tokens, seed=0)
    stream = textsource.token_stream("corpus:calibration", tokenizer, role="calibration")
    calibration = textsource.sample_calibration(stream, calib_samples, length, seed=0)
    torch.save(windows, work / "windows.pt")
    torch.save(calibration, work / "calibration.pt")
    losses_16 = evaluate.window_losses(model, windows, batch_size=16)
    snapshot = quantize.snapshot_weights(model)
    common = {"model": f"{training['size']} trained {training['steps']} steps (qid.suite.train)", "N": info.N, "D": info.D,
              "group_size": -1, "calib_samples": calib_samples, "calib_length": length,
              "eval_tokens": evaluate.predicted_tokens(windows), "loss_16": float(losses_16.mean()),
              "reference": "llmcompressor GPTQModifier", **_provenance()}
    rows = []
    for act_order in (False, True):
        ours = {}
        for b in bits:
            started = time.perf_counter()
            quantize.quantize_model(model, "gptq", b, -1, calibration, act_order=act_order)
            ours[b] = (evaluate.window_losses(model, windows, batch_size=16), time.perf_counter() - started)
            quantize.restore_weights(model, snapshot)
        reference, note, reference_versions = None, "", ""
        output = work / f"reference-actorder{int(act_order)}.pt"
        if not reference_python.is_file():
            note = f"reference not run: {reference_python} missing (create .venv-bench, see benchmarks/README.md)"
        else:
            command = [str(reference_python), str(REPO / "benchmarks" / "reference_gptq_llmcompressor.py"),
                       "--model", str(folder), "--calibration", str(work / "calibration.pt"),
                       "--windows", str(work / "windows.pt"), "--bits", *map(str, bits), "--group-size", "-1",
                       "--output", str(output)] + (["--act-order"] if act_order else [])
            completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if completed.returncode != 0:
                note = "reference failed: " + " ".join(completed.stderr.strip().splitlines()[-3:])[-400:]
            else:
                reference = torch.load(output)
                reference_versions = ";".join(f"{k}={v}" for k, v in reference["versions"].items())
                if not torch.allclose(reference["losses_16"], losses_16, rtol=1e-5, atol=1e-6):
                    note = "16-bit losses differ between the two environments; QiDs use each side's own 16-bit losses"
        for b in bits:
            ours_losses, ours_seconds = ours[b]
            mine = evaluate.paired_qid(losses_16, ours_losses)
            row = {**common, "bits": b, "act_order": act_order, "qid_ours": mine.qid, "qid_ours_se": mine.qid_se,
                   "gptq_seconds_ours": round(ours_seconds, 3), "reference_versions": reference_versions, "note": note}
            if reference is not None:
                theirs = evaluate.paired_qid(reference["losses_16"], reference["losses"][b])
                difference = evaluate.paired_qid(reference["losses"][b], ours_losses)  # ours − reference, paired
                row.update(qid_reference=theirs.qid, qid_reference_se=theirs.qid_se, difference=difference.qid,
                           difference_se=difference.qid_se,
                           within_se=abs(mine.qid - theirs.qid) <= max(mine.qid_se, theirs.qid_se),
                           gptq_seconds_reference=round(reference["seconds"][b], 3))
            rows.append({column: row.get(column, "") for column in REFERENCE_COLUMNS})
            print(json.dumps(rows[-1], default=str), flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ main
def _provenance() -> dict:
    return {"machine": provenance.machine_description(), "versions": provenance.package_versions_string(),
            "git_commit": provenance.git_commit(), "date": provenance.utc_now()}


def _write(path: Path, columns, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--output-dir", default=str(OUTPUT_DIR))
    parser.add_argument("--parts", nargs="+", default=["throughput", "reference"], choices=["throughput", "reference"])
    parser.add_argument("--reference-python", default=str(REPO / ".venv-bench" / "bin" / "python"),
                        help="python of the venv where llmcompressor is installed")
    parser.add_argument("--quick", action="store_true", help="fewer models (a smoke run)")
    args = parser.parse_args(argv)
    device = runtime.resolve_device(args.device)
    output = Path(args.output_dir)
    suffix = "" if device.type == "cpu" else "_cuda"
    if "throughput" in args.parts:
        _write(output / f"measure_throughput{suffix}.csv", THROUGHPUT_COLUMNS, benchmark_throughput(device, args.quick))
    if "reference" in args.parts:
        with tempfile.TemporaryDirectory(prefix="qid-bench-") as work:
            rows = benchmark_reference(Path(args.reference_python), Path(work))
        _write(output / "gptq_reference.csv", REFERENCE_COLUMNS, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
