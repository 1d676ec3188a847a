"""One loaded checkpoint and the measurement of its cells: windows, calibration samples, 16-bit losses, one row per cell.

`CheckpointState` is shared by the serial sweep (`qid.measure.sweep`) and the Ray workers (`qid.measure.ray_sweep`):
both measure a cell with the same code, so their rows are identical.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from qid.common import runtime
from qid.measure import checkpoints as checkpoint_module
from qid.measure import bitsperweight, evaluate, quantize, textsource
from qid.measure.sweep_spec import Cell, SweepSpec



def append_window_losses(path, state: "CheckpointState", cell: Cell, settings: dict) -> None:
    """One JSON line per cell (and one per checkpoint for the 16-bit model) with its per-window losses, so a later
    analysis can bootstrap windows and compare checkpoints on identical windows. Written before the cell's row:
    a crash in between leaves a line without a row, which the reader drops (it keys lines by the cell)."""
    path = Path(path)
    lines = []
    if not getattr(state, "wrote_reference", False):
        lines.append({"checkpoint": state.info.checkpoint, "step": state.info.step, "method": "none", "bits": 16,
                      "calib_seed": None, "windows": [float(v) for v in state.losses_16]})
        state.wrote_reference = True
    lines.append({"checkpoint": state.info.checkpoint, "step": state.info.step, "method": cell.method,
                  "bits": cell.bits, "calib_seed": cell.calib_seed,
                  "windows": [float(v) for v in state.last_window_losses]})
    with open(path, "a", encoding="utf-8") as stream:
        for line in lines:
            stream.write(json.dumps(line) + "\n")
        stream.flush()
        os.fsync(stream.fileno())



class CheckpointState:
    """One loaded checkpoint: its windows, calibration samples, 16-bit losses (and log-probs) and weight snapshot."""

    def __init__(self, spec: SweepSpec, checkpoint, eval_window, calibration_length, device, dtype, log):
        started = time.perf_counter()
        self.spec = spec
        self.eval_window, self.calibration_length = eval_window, calibration_length
        self.model, self.tokenizer, self.info = checkpoint_module.load_checkpoint(checkpoint, device, dtype)
        runtime.seed_everything(spec.seed)
        stream = textsource.token_stream(spec.eval_source, self.tokenizer, role="eval")
        self.windows = evaluate.evaluation_windows(stream, eval_window, spec.eval_tokens, spec.seed)
        self._calibration: dict[int, torch.Tensor] = {}
        self.snapshot = quantize.snapshot_weights(self.model)
        # (out_features, in_features) of the quantized layers: what a cell's bits per weight is counted over
        self.layer_shapes = [tuple(module.weight.shape) for module in quantize.quantizable_linears(self.model).values()]
        # KL and top-1 agreement need the 16-bit next-token distributions; cached when they fit in memory, from the
        # same forward pass that gives the 16-bit losses.
        self.reference = None
        vocab = self.model.get_output_embeddings().weight.shape[0]
        if spec.kl and evaluate.reference_cache_bytes(self.windows, vocab) <= evaluate.REFERENCE_CACHE_BYTES:
            self.reference, self.losses_16 = evaluate.reference_log_probs(self.model, self.windows, spec.batch_size)
        else:
            self.losses_16 = evaluate.window_losses(self.model, self.windows, spec.batch_size)
        if spec.kl and self.reference is None:
            log(f"{self.info.checkpoint}: KL and top-1 agreement left out (the 16-bit log-probabilities would need "
                f"{evaluate.reference_cache_bytes(self.windows, vocab) / 2**30:.1f} GiB; evaluate fewer tokens)")
        self.setup_seconds = time.perf_counter() - started
        log(f"{self.info.checkpoint}: N={self.info.N:,} D={self.info.D} loss_16={float(self.losses_16.mean()):.4f} "
            f"on {self.windows.shape[0]} windows × {eval_window} tokens")

    def calibration(self, seed: int) -> torch.Tensor:
        """The calibration sample of one seed, drawn on first use (RTN-only sweeps never tokenize the calibration text)."""
        if seed not in self._calibration:
            stream = textsource.token_stream(self.spec.calibration_source, self.tokenizer, role="calibration")
            self._calibration[seed] = textsource.sample_calibration(
                stream, self.spec.calibration_samples, self.calibration_length, seed)
        return self._calibration[seed]

    def measure(self, cell: Cell, settings: dict) -> dict:
        """One cell's row; the quantized model's per-window losses are kept in `self.last_window_losses`."""
        started = time.perf_counter()
        quantize.restore_weights(self.model, self.snapshot)
        calibration = self.calibration(cell.calib_seed) if cell.method in quantize.CALIBRATED_METHODS else None
        runtime.seed_everything(self.spec.seed if cell.calib_seed is None else cell.calib_seed)
        kl = kl_se = top1 = float("nan")
        try:
            report = quantize.quantize_model(
                self.model, cell.method, cell.bits, cell.group_size, calibration,
                symmetric=self.spec.symmetric, act_order=self.spec.act_order, damp=self.spec.damp,
                batch_size=self.spec.batch_size,
            )
            if self.reference is not None:
                losses_q, divergences, agreements = evaluate.window_divergence(
                    self.model, self.windows, self.reference, self.spec.batch_size)
                kl = float(divergences.mean())
                kl_se = float(divergences.std(unbiased=True) / divergences.numel() ** 0.5)
                top1 = float(agreements.mean())
            else:
                losses_q = evaluate.window_losses(self.model, self.windows, self.spec.batch_size)
        finally:
            quantize.restore_weights(self.model, self.snapshot)
        self.last_window_losses = losses_q
        result = evaluate.paired_qid(self.losses_16, losses_q, tokens_per_window=self.eval_window - 1)
        return {
            "family": self.info.family, "checkpoint": self.info.checkpoint, "step": self.info.step,
            "N": self.info.N, "D": self.info.D, "method": cell.method, "bits": cell.bits,
            "group_size": cell.group_size,
            "bits_per_weight": bitsperweight.model_bits_per_weight(self.layer_shapes, cell.method, cell.bits,
                                                                   cell.group_size, symmetric=self.spec.symmetric),
            "loss_16": result.loss_16, "loss_q": result.loss_q,
            "qid": result.qid, "qid_se": result.qid_se, "kl": kl, "kl_se": kl_se, "top1_agree": top1,
            "eval_windows": result.windows, **settings, "calib_seed": cell.calib_seed,
            "seconds": round(time.perf_counter() - started, 3),
            "quantize_seconds": round(report.seconds, 3),
        }

    def close(self):
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
