"""Weight-only post-training quantization, fake-quantized back to the compute dtype.

Four methods, all applied to the `nn.Linear` layers *inside the transformer blocks* only; the token
embeddings and the output head (`lm_head` in transformers 5) stay in 16-bit, as in GPTQ practice and in the
Pythia GPTQ checkpoints of Ouyang et al. 2024:

* ``rtn`` — round-to-nearest on a uniform grid (asymmetric by default: scale and integer zero point per
  output row and group of ``group_size`` input columns; the grid always contains 0, as in GPTQ's reference
  code and llmcompressor's min-max observer).
* ``gptq`` — Frantar et al. 2022 (arXiv 2210.17323): Hessian H = 2XXᵀ of each layer's calibration inputs,
  dampening (``damp`` × mean diagonal), Cholesky factor of H⁻¹, column-by-column quantization with the
  error fed back into the not-yet-quantized columns (lazy batch updates of ``block_size`` columns), optional
  act-order (columns by decreasing diag(H)). Block by block: each transformer block sees the outputs of the
  already-quantized blocks before it, so only one block's activations are held at a time (``true_sequential``
  also orders the layers inside a block).
* ``awq`` — activation-aware weight quantization (Lin et al. 2023, arXiv 2306.00978), with AutoAWQ's layer
  groups for GPT-NeoX: the layers that share an input and can absorb 1/s into the operation before them —
  ``attention.query_key_value`` (after input_layernorm), ``mlp.dense_h_to_4h`` (after
  post_attention_layernorm), ``mlp.dense_4h_to_h`` (after the activation) — get a per-input-channel scale
  s = mean|x|^α (normalised), α ∈ {0, 1/20, …, 19/20} chosen to minimise the group's output error
  ‖WX − Q(W·s)(X/s)‖² on calibration inputs; ``attention.dense`` is not scaled (its input cannot absorb it in
  a fused-QKV model, as AutoAWQ notes). Then the clipping search: per output row (and group), the clamp range
  max|w|·(1 − i/20), i = 0…9, that minimises that row's output error, for every layer but the query/key
  projection (AutoAWQ leaves q/k unclipped). Each block's statistics come from the 16-bit outputs of the block
  before it, as in AutoAWQ. Calibration rows follow AutoAWQ's rule (`qid.measure.awq.InputSampler`): the scale
  search uses every input row of the calibration set, the clip search every k-th row (k = rows // 512), so the
  result does not depend on ``batch_size``. Real AWQ folds 1/s into the preceding operation; here it stays in the
  (fake-quantized, full-precision) weight, which computes the same function.
* ``bnb`` (= ``bnb-nf4``), ``bnb-fp4`` — bitsandbytes' 4-bit NF4/FP4 block quantization (absmax per block of
  ``group_size``), quantized and dequantized with bitsandbytes itself where that library runs; elsewhere
  `QuantizerUnavailable` says why and a sweep skips the cell.

Bits: any integer 2–16; 16 means "keep the 16-bit model" (the baseline; nothing is changed). Group size:
a positive integer (128 by default), or -1 for one group per output row (per-channel).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from qid.common.runtime import autocast
# AWQ and the integer grids live in their own modules; their public names are re-exported here for callers.
from qid.measure.awq import (AWQ_CLIP_GRID, AWQ_CLIP_MAX_SHRINK, AWQ_GRID, AWQ_MAX_ROWS,  # noqa: F401
                             AWQ_UNCLIPPED_MARKERS, AWQ_UNSCALED_SUFFIXES, InputSampler, awq_clip, awq_quantize)
from qid.measure.intgrid import (BASELINE_BITS, DEFAULT_GROUP_SIZE, MAX_BITS, MIN_BITS, PER_CHANNEL,  # noqa: F401
                                 QuantizationError, grid_parameters, group_bounds, quantize_to_grid, rtn_quantize,
                                 validate_bits, validate_group_size)

METHODS = ("rtn", "gptq", "awq", "bnb", "bnb-nf4", "bnb-fp4")
CALIBRATED_METHODS = ("gptq", "awq")
BNB_METHODS = ("bnb", "bnb-nf4", "bnb-fp4")
DEFAULT_DAMP = 0.01  # GPTQ dampening, fraction of the mean Hessian diagonal (the reference code's 1 %)
DEFAULT_BLOCK_SIZE = 128  # GPTQ lazy-batch width (columns)


class QuantizerUnavailable(RuntimeError):
    """The method's library does not run on this machine (e.g. bitsandbytes); the cell is skipped."""


# ------------------------------------------------------------------------------------------ validation
def validate_method(method) -> str:
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise QuantizationError(f"unknown quantization method {method!r}: use one of {', '.join(METHODS)}")
    return method.lower()


def check_combination(method: str, bits: int) -> None:
    """Combinations a method does not support (bitsandbytes' NF4/FP4 exist only at 4 bits)."""
    if method in BNB_METHODS and bits not in (4, BASELINE_BITS):
        raise QuantizationError(f"method {method!r} (bitsandbytes NF4/FP4) quantizes to 4 bits only, got bits={bits}")


# ------------------------------------------------------------------------------------------------ GPTQ
def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    group_size: int = DEFAULT_GROUP_SIZE,
    symmetric: bool = False,
    damp: float = DEFAULT_DAMP,
    act_order: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """GPTQ of one weight [out, in] given the Hessian H = 2·XXᵀ/n of its inputs [in, in]; returns Ŵ (input dtype).

    Follows the reference implementation (IST-DASLab/gptq): dead inputs (zero diagonal) are zeroed, H is
    damped by `damp`·mean(diag H) (multiplied by 10 and retried if the Cholesky factorisation still fails),
    columns are quantized one by one with the scaled error (w − q)/[H⁻¹]ᵢᵢ subtracted from the remaining
    columns, `block_size` columns at a time. With groups, each group's grid is fitted when quantization
    reaches its first column, on the error-updated weights of that group. With act-order the columns are
    visited by decreasing diag(H) and the groups follow that order.
    """
    bits, group_size = validate_bits(bits), validate_group_size(group_size)
    if bits == BASELINE_BITS:
        return weight.clone()
    W = weight.detach().float().clone()
    H = hessian.detach().float().clone().to(W.device)
    columns = W.shape[1]
    if H.shape != (columns, columns):
        raise QuantizationError(f"Hessian shape {tuple(H.shape)} does not match weight columns {columns}")
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    permutation = None
    if act_order:
        permutation = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, permutation], H[permutation][:, permutation]
    H_inverse_upper = _damped_inverse_cholesky(H, damp)

    Q = torch.zeros_like(W)
    group = columns if group_size == PER_CHANNEL else group_size
    scale = zero = None
    for start in range(0, columns, block_size):
        stop = min(start + block_size, columns)
        W_block = W[:, start:stop].clone()
        Q_block = torch.zeros_like(W_block)
        errors = torch.zeros_like(W_block)
        H_inv_block = H_inverse_upper[start:stop, start:stop]
        for i in range(stop - start):
            column = start + i
            if column % group == 0:
                # The group's current (error-updated) columns: those in this block from W_block, the rest from W.
                group_stop = min(column + group, columns)
                within = W_block[:, i : min(group_stop, stop) - start]
                beyond = W[:, stop:group_stop] if group_stop > stop else W[:, :0]
                scale, zero = grid_parameters(torch.cat([within, beyond], dim=1), bits, symmetric)
            w = W_block[:, i]
            q = quantize_to_grid(w.unsqueeze(1), scale, zero, bits).squeeze(1)
            Q_block[:, i] = q
            error = (w - q) / H_inv_block[i, i]
            W_block[:, i:] -= error.unsqueeze(1) @ H_inv_block[i, i:].unsqueeze(0)
            errors[:, i] = error
        Q[:, start:stop] = Q_block
        W[:, stop:] -= errors @ H_inverse_upper[start:stop, stop:]
    if permutation is not None:
        Q = Q[:, torch.argsort(permutation)]
    return Q.to(weight.dtype)


def _damped_inverse_cholesky(H: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + λI)⁻¹ with λ = damp·mean(diag H); λ grows ×10 until H is positive definite."""
    if not damp > 0:
        raise QuantizationError(f"GPTQ dampening must be > 0, got {damp!r}")
    mean_diagonal = torch.diag(H).mean()
    identity = torch.eye(H.shape[0], device=H.device, dtype=H.dtype)
    for attempt in range(6):
        damped = H + (damp * 10**attempt) * mean_diagonal * identity
        lower, info = torch.linalg.cholesky_ex(damped)
        if info == 0:
            inverse = torch.cholesky_inverse(lower)
            upper, info = torch.linalg.cholesky_ex(inverse, upper=True)
            if info == 0:
                return upper
    raise QuantizationError("GPTQ: the damped Hessian is not positive definite even with 10^5 × the dampening")


class HessianAccumulator:
    """Running H = 2/n · Σ xxᵀ over the n input rows a Linear layer sees (fp32)."""

    def __init__(self, columns: int, device):
        self.hessian = torch.zeros(columns, columns, device=device, dtype=torch.float32)
        self.rows = 0

    def add(self, inputs: torch.Tensor) -> None:
        x = inputs.detach().reshape(-1, inputs.shape[-1]).float()
        n = x.shape[0]
        self.hessian *= self.rows / (self.rows + n)
        self.rows += n
        x = x * math.sqrt(2 / self.rows)
        self.hessian += x.T @ x


# ------------------------------------------------------------------------------------------ bitsandbytes
def bnb_quantize(weight: torch.Tensor, group_size: int = 64, quant_type: str = "nf4") -> torch.Tensor:
    """NF4/FP4 quantize-dequantize through bitsandbytes (absmax per block of `group_size` values)."""
    try:
        import bitsandbytes.functional as bnb_functional
    except Exception as error:  # ImportError, or a library that fails to load on this platform
        raise QuantizerUnavailable(f"bitsandbytes is not usable here ({type(error).__name__}: {error}); bnb cells are skipped") from error
    block = 64 if group_size == PER_CHANNEL else group_size
    if block not in (32, 64, 128, 256, 512, 1024, 2048, 4096):
        raise QuantizationError(f"bitsandbytes block size (group_size) must be a power of two from 32 to 4096, got {group_size}")
    try:
        data = weight.detach().contiguous()
        if data.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            data = data.float()
        packed, state = bnb_functional.quantize_4bit(data, blocksize=block, quant_type=quant_type)
        restored = bnb_functional.dequantize_4bit(packed, state)
    except Exception as error:
        raise QuantizerUnavailable(f"bitsandbytes {quant_type} does not run on {weight.device.type} here ({type(error).__name__}: {error}); bnb cells are skipped") from error
    return restored.to(weight.dtype).view_as(weight)


# --------------------------------------------------------------------------------------- the model walk
def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks (model.gpt_neox.layers, model.model.layers, model.transformer.h, …)."""
    for path in ("gpt_neox.layers", "model.layers", "model.decoder.layers", "transformer.h", "transformer.layers"):
        module = model
        for attribute in path.split("."):
            module = getattr(module, attribute, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            return module
    expected = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == expected:
            return module
    raise QuantizationError(f"cannot find the transformer blocks of {type(model).__name__}")


def quantizable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every nn.Linear inside the transformer blocks, by full module name (never embeddings or lm_head)."""
    layers = decoder_layers(model)
    inside = {id(module) for module in layers.modules()}
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and id(module) in inside
    }


def snapshot_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the weights `quantize_model` may change, to restore the 16-bit model after a cell."""
    return {name: module.weight.detach().clone() for name, module in quantizable_linears(model).items()}


def restore_weights(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    linears = quantizable_linears(model)
    with torch.no_grad():
        for name, weight in snapshot.items():
            linears[name].weight.copy_(weight)


class _StopForward(Exception):
    pass


def _capture_block_inputs(model, layers, calibration: torch.Tensor, batch_size: int):
    """Run the embeddings on each calibration batch and keep the first block's (hidden_states, kwargs)."""
    device = next(model.parameters()).device
    captured = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        kwargs = dict(kwargs)
        kwargs.pop("hidden_states", None)
        captured.append([hidden, kwargs, args[1:]])
        raise _StopForward

    handle = layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in calibration.split(batch_size):
            try:
                with autocast(device):
                    model(input_ids=batch.to(device), use_cache=False)
            except _StopForward:
                pass
    finally:
        handle.remove()
    return captured


def _run_block(layer, captured) -> None:
    device = next(layer.parameters()).device
    for entry in captured:
        hidden, kwargs, extra_args = entry
        with autocast(device):
            output = layer(hidden, *extra_args, **kwargs)
        entry[0] = output[0] if isinstance(output, (tuple, list)) else output


@dataclass
class QuantizationReport:
    method: str
    bits: int
    group_size: int
    layers_quantized: int
    seconds: float
    calibration_samples: int
    details: dict


@torch.no_grad()
def quantize_model(
    model: nn.Module,
    method: str,
    bits: int,
    group_size: int = DEFAULT_GROUP_SIZE,
    calibration: torch.Tensor | None = None,
    *,
    symmetric: bool = False,
    act_order: bool = False,
    damp: float = DEFAULT_DAMP,
    batch_size: int = 8,
    true_sequential: bool = False,
    progress: bool = False,
) -> QuantizationReport:
    """Fake-quantize the Linear weights of `model`'s transformer blocks in place; returns a report.

    calibration: LongTensor [samples, length] of token ids (`qid.measure.textsource.sample_calibration`); required
    for 'gptq' and 'awq', ignored by 'rtn' and 'bnb'. Embeddings and the output head are never touched.
    At `bits` = 16 nothing changes (the 16-bit model is the baseline).
    """
    method, bits, group_size = validate_method(method), validate_bits(bits), validate_group_size(group_size)
    check_combination(method, bits)
    started = time.perf_counter()
    linears = quantizable_linears(model)
    calibration_samples = 0 if calibration is None else int(calibration.shape[0])
    details: dict = {}
    if bits == BASELINE_BITS:
        return QuantizationReport(method, bits, group_size, 0, 0.0, calibration_samples, details)
    if method in CALIBRATED_METHODS:
        if calibration is None or calibration.ndim != 2 or calibration.shape[0] < 1:
            raise QuantizationError(f"method {method!r} needs calibration token ids [samples, length], got {None if calibration is None else tuple(calibration.shape)}")
        details = _quantize_blockwise(model, method, bits, group_size, calibration, symmetric, act_order, damp, batch_size,
                                      progress, true_sequential)
    else:
        for name, module in tqdm(linears.items(), desc=method, unit="layer", disable=not progress, leave=False):
            if method == "rtn":
                new_weight = rtn_quantize(module.weight, bits, group_size, symmetric)
            else:
                quant_type = "fp4" if method == "bnb-fp4" else "nf4"
                new_weight = bnb_quantize(module.weight, group_size, quant_type)
            module.weight.copy_(new_weight)
    return QuantizationReport(method, bits, group_size, len(linears), time.perf_counter() - started, calibration_samples, details)


def _quantize_blockwise(model, method, bits, group_size, calibration, symmetric, act_order, damp, batch_size, progress,
                        true_sequential=False) -> dict:
    """GPTQ or AWQ block by block: statistics of each block's inputs come from the already-quantized blocks.

    By default (as in the GPTQ paper's code for OPT/BLOOM and in llmcompressor's sequential pipeline) all of a
    block's layers use the statistics of one pass through the block as it was before any of its layers was
    quantized. With `true_sequential` (the GPTQ code's option for LLaMA) the Linear layers inside a block are
    quantized one after another in execution order, each one's statistics taken with the layers before it
    already quantized (one extra pass through the block per layer).
    """
    layers = decoder_layers(model)
    was_training = model.training
    model.eval()
    captured = _capture_block_inputs(model, layers, calibration, batch_size)
    details: dict = {}
    for index, layer in enumerate(tqdm(layers, desc=method, unit="block", disable=not progress, leave=False)):
        linears = {name: module for name, module in layer.named_modules() if isinstance(module, nn.Linear)}
        order: list[str] = []
        statistics = _block_statistics(method, layer, linears, captured, order)
        if method == "awq" and not true_sequential:
            _run_block(layer, captured)  # AutoAWQ: the next block's inputs are this block's 16-bit outputs
        groups = [[name] for name in order] if true_sequential else [list(order)]
        for position, group in enumerate(groups):
            if position > 0:  # earlier layers of this block are quantized now: fresh statistics for this group
                statistics = _block_statistics(method, layer, {name: linears[name] for name in group}, captured)
            for name in group:
                module = linears[name]
                if method == "gptq":
                    new_weight = gptq_quantize(module.weight, statistics[name].hessian, bits, group_size, symmetric, damp, act_order)
                else:
                    new_weight, alpha = awq_quantize(
                        module.weight, statistics[name].mean_absolute(), statistics[name].sample(), bits, group_size,
                        symmetric, scale=not name.endswith(AWQ_UNSCALED_SUFFIXES),
                        clip=not any(marker in name for marker in AWQ_UNCLIPPED_MARKERS))
                    details[f"{index}.{name}.alpha"] = alpha
                module.weight.copy_(new_weight)
            del statistics
        if method == "gptq" or true_sequential:
            _run_block(layer, captured)  # GPTQ: the quantized block's outputs feed the next block
    model.train(was_training)
    return details


def _block_statistics(method, layer, linears: dict, captured, order: list | None = None) -> dict:
    """Run the block on the captured inputs and accumulate each listed Linear's input statistics.

    `order`, when given, receives the Linear names in the order they first run (their execution order).
    """
    device = next(layer.parameters()).device
    if method == "gptq":
        statistics = {name: HessianAccumulator(module.in_features, device) for name, module in linears.items()}
    else:
        statistics = {name: InputSampler(module.in_features, device) for name, module in linears.items()}

    def hook(name):
        def record(_module, inputs, _output):
            if order is not None and name not in order:
                order.append(name)
            statistics[name].add(inputs[0])
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in linears.items()]
    try:
        _run_block(layer, [list(entry) for entry in captured])  # statistics only; outputs discarded
    finally:
        for handle in handles:
            handle.remove()
    return statistics
