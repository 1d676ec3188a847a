"""Reference GPTQ with llmcompressor, run in the benchmark-only venv (.venv-bench), for bench_measure.py.

Not part of the package: llmcompressor pins transformers 5.17 and is installed only in .venv-bench
(`python -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 "llmcompressor==0.14.*"`).

Input (written by bench_measure.py): a model folder, a calibration tensor [samples, length] and evaluation
windows [windows, length] (torch .pt files). For each requested bit-width it quantizes a fresh copy of the
model with llmcompressor's GPTQModifier (weight-only int, asymmetric, per-channel or grouped, every Linear
but lm_head, the same dampening, block size and column order as ours: act-order off unless --act-order), evaluates the per-window losses with the book's
own `qid.measure.evaluate.window_losses` (so both sides are scored identically) and saves them to a .pt file.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--calibration", required=True, help=".pt LongTensor [samples, length]")
    parser.add_argument("--windows", required=True, help=".pt LongTensor [windows, length]")
    parser.add_argument("--bits", type=int, nargs="+", required=True)
    parser.add_argument("--group-size", type=int, default=-1, help="-1 = per-channel")
    parser.add_argument("--damp", type=float, default=0.01)
    parser.add_argument("--act-order", action="store_true", help="static act-order (llmcompressor's default; ours is off)")
    parser.add_argument("--output", required=True, help=".pt file: {bits: per-window losses} plus metadata")
    args = parser.parse_args()

    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier
    from transformers import AutoModelForCausalLM

    from qid.measure.evaluate import window_losses

    torch.manual_seed(0)
    calibration = torch.load(args.calibration)
    windows = torch.load(args.windows)
    dataset = Dataset.from_dict({"input_ids": calibration.tolist(), "attention_mask": torch.ones_like(calibration).tolist()})
    results = {"losses": {}, "seconds": {}, "versions": {
        name: importlib.metadata.version(name) for name in ("llmcompressor", "compressed-tensors", "transformers", "torch")}}
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    results["losses_16"] = window_losses(base, windows, batch_size=16)
    for bits in args.bits:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
        weights = {"num_bits": bits, "type": "int", "symmetric": False,
                   "strategy": "channel" if args.group_size == -1 else "group"}
        if args.group_size != -1:
            weights["group_size"] = args.group_size
        modifier = GPTQModifier(
            config_groups={"group_0": {"targets": ["Linear"], "weights": weights}},
            ignore=["lm_head"], block_size=128, dampening_frac=args.damp,
            # llmcompressor 0.14 defaults to static act-order; None gives the plain column order, as ours
            actorder="static" if args.act_order else None,
        )
        started = time.perf_counter()
        oneshot(model=model, dataset=dataset, recipe=[modifier], num_calibration_samples=calibration.shape[0],
                max_seq_length=calibration.shape[1], shuffle_calibration_samples=False, pipeline="sequential")
        results["seconds"][bits] = time.perf_counter() - started
        model.eval()
        results["losses"][bits] = window_losses(model, windows, batch_size=16)
        print(json.dumps({"bits": bits, "qid": float((results["losses"][bits] - results["losses_16"]).mean()),
                          "seconds": results["seconds"][bits]}), flush=True)
    torch.save(results, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
