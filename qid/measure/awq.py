"""AWQ (Lin et al. 2023, arXiv 2306.00978) for one weight: the activation-aware scale search and the clipping search.

`qid.measure.quantize.quantize_model` applies it block by block with AutoAWQ's GPT-NeoX layer groups (see that
module's docstring for the method as a whole).
"""

from __future__ import annotations

import math

import torch

from qid.measure.intgrid import BASELINE_BITS, DEFAULT_GROUP_SIZE, group_bounds, rtn_quantize, validate_bits, validate_group_size

AWQ_GRID = 20  # α ∈ {0, 1/20, …, 19/20}
# Calibration rows of the two searches, as AutoAWQ takes them (its defaults, and this module's): the scale search
# uses every input row of the calibration set; the clip search every k-th row, k = max(1, rows // 512)
# (AutoAWQ's n_sample_token = 512). Both depend only on the calibration set, never on how it is batched.
AWQ_MAX_ROWS = None  # None: every row for the scale search; a number caps it at evenly spaced rows (memory)
AWQ_CLIP_TOKENS = 512
AWQ_CLIP_GRID = 20  # clip ratios 1 − i/20 ...
AWQ_CLIP_MAX_SHRINK = 0.5  # ... for i < 0.5·20: down to 55 % of the row's max |w| (Lin et al.'s auto_clip)
# AutoAWQ's GPT-NeoX groups: attention.dense is quantized unscaled; the fused query/key/value layer unclipped.
AWQ_UNSCALED_SUFFIXES = ("attention.dense", "self_attention.dense")
AWQ_UNCLIPPED_MARKERS = ("query", "key", "q_proj", "k_proj", "qkv", "Wqkv", "c_attn")



class InputSampler:
    """Per-channel mean |x| over all input rows of a Linear, and its input rows in calibration order.

    Every row is kept (AutoAWQ's rule for the scale search, `AWQ_MAX_ROWS` = None): the rows, and so the result,
    do not depend on the batch size the calibration set was run in. With `max_rows`, the rows at the evenly spaced
    positions ⌊i·rows/max_rows⌋ of the whole set are kept instead (still batch-independent; chosen at the end).
    Memory: 4 bytes × rows × input columns per Linear of one block while that block is quantized.
    """

    def __init__(self, columns: int, device, max_rows: int | None = AWQ_MAX_ROWS):
        self.absolute_sum = torch.zeros(columns, device=device, dtype=torch.float64)
        self.rows = 0
        self.max_rows = max_rows
        self.samples: list[torch.Tensor] = []

    def add(self, inputs: torch.Tensor) -> None:
        x = inputs.detach().reshape(-1, inputs.shape[-1]).float()
        self.absolute_sum += x.abs().sum(dim=0).double()
        self.rows += x.shape[0]
        self.samples.append(x.clone())

    def mean_absolute(self) -> torch.Tensor:
        return (self.absolute_sum / max(self.rows, 1)).float()

    def sample(self) -> torch.Tensor:
        rows = torch.cat(self.samples)
        if self.max_rows is not None and rows.shape[0] > self.max_rows:
            positions = torch.arange(self.max_rows, dtype=torch.int64) * rows.shape[0] // self.max_rows
            rows = rows[positions.to(rows.device)]
        return rows


def clip_rows(input_sample: torch.Tensor, tokens: int = AWQ_CLIP_TOKENS) -> torch.Tensor:
    """AutoAWQ's rows for the clip search: every k-th row, k = max(1, rows // tokens)."""
    return input_sample[:: max(1, input_sample.shape[0] // tokens)]


def awq_quantize(
    weight: torch.Tensor,
    mean_absolute_input: torch.Tensor,
    input_sample: torch.Tensor,
    bits: int,
    group_size: int = DEFAULT_GROUP_SIZE,
    symmetric: bool = False,
    grid: int = AWQ_GRID,
    scale: bool = True,
    clip: bool = True,
) -> tuple[torch.Tensor, float]:
    """AWQ for one weight; returns (Q(clip(W·s))/s in the input dtype, the chosen α; 0 when not scaled).

    s = m^α / √(max(m^α)·min(m^α)) with m the mean |input| per channel; α ∈ {0, 1/grid, …} minimising the
    output error on `input_sample` (every calibration row by default, as AutoAWQ; α = 0 is plain RTN, so the
    scale search never does worse than RTN). Then, with `clip`, each output row's clamp range is searched
    (`awq_clip`) on the scaled weight and AutoAWQ's clip rows of the inputs (`clip_rows`: about 512 of them).
    """
    bits, group_size = validate_bits(bits), validate_group_size(group_size)
    if bits == BASELINE_BITS:
        return weight.clone(), 0.0
    w = weight.detach().float()
    x = input_sample.float()
    reference = x @ w.T
    magnitude = mean_absolute_input.float().clamp(min=1e-8)
    best_error, best_alpha, best_scale = math.inf, 0.0, torch.ones_like(magnitude)
    for step in range(grid if scale else 1):
        alpha = step / grid
        s = magnitude.pow(alpha).clamp(min=1e-4)
        s = s / torch.sqrt(s.max() * s.min())
        candidate = rtn_quantize(w * s, bits, group_size, symmetric).float() / s
        error = float(((x @ candidate.T - reference) ** 2).mean())
        if error < best_error:
            best_error, best_alpha, best_scale = error, alpha, s
    scaled = w * best_scale
    if clip:
        scaled = awq_clip(scaled, clip_rows(x) / best_scale, bits, group_size, symmetric)
    return (rtn_quantize(scaled, bits, group_size, symmetric).float() / best_scale).to(weight.dtype), best_alpha


def awq_clip(weight: torch.Tensor, input_sample: torch.Tensor, bits: int, group_size: int = DEFAULT_GROUP_SIZE,
             symmetric: bool = False, grid: int = AWQ_CLIP_GRID, max_shrink: float = AWQ_CLIP_MAX_SHRINK) -> torch.Tensor:
    """AWQ's clipping search: per output row and input group, clamp the weights to ±max|w|·(1 − i/grid) for the
    i < max_shrink·grid that minimises the group's contribution to that row's output error on `input_sample`.
    Returns the clamped (not yet quantized) weight."""
    w = weight.float()
    x = input_sample.float()
    out_features, in_features = w.shape
    result = w.clone()
    for begin, end in group_bounds(in_features, group_size):
        part, xs = w[:, begin:end], x[:, begin:end]
        reference = xs @ part.T  # [rows of x, out_features]
        original_max = part.abs().amax(dim=1, keepdim=True).clamp(min=1e-8)
        best_error = torch.full((out_features,), math.inf)
        best = part
        for step in range(int(max_shrink * grid)):
            limit = original_max * (1 - step / grid)
            clamped = torch.maximum(torch.minimum(part, limit), -limit)
            quantized = rtn_quantize(clamped, bits, -1, symmetric).float()
            error = ((xs @ quantized.T - reference) ** 2).mean(dim=0)  # per output row
            better = error < best_error
            best_error = torch.where(better, error, best_error)
            best = torch.where(better[:, None], clamped, best)
        result[:, begin:end] = best
    return result
