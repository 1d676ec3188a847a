"""Uniform integer grids: validation of bits and group sizes, the grid of a group, round-to-nearest (RTN).

The primitives every quantizer of `qid.measure` builds on (`qid.measure.quantize` for RTN/GPTQ and the model-level
driver, `qid.measure.awq` for AWQ). Asymmetric by default: scale and integer zero point per output row and group
of ``group_size`` input columns; the grid always contains 0, as in GPTQ's reference code.
"""

from __future__ import annotations

import torch

MIN_BITS, MAX_BITS = 2, 16
BASELINE_BITS = 16  # "quantizing" at 16 bits keeps the model as it is
PER_CHANNEL = -1  # group_size for one group per output row
DEFAULT_GROUP_SIZE = 128


class QuantizationError(ValueError):
    """A quantization request that cannot be satisfied as given (bad method, bits, group size, inputs)."""


# ------------------------------------------------------------------------------------------ validation
def validate_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or int(bits) != bits or not MIN_BITS <= bits <= MAX_BITS:
        raise QuantizationError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS} ({BASELINE_BITS} = no quantization), got {bits!r}")
    return int(bits)


def validate_group_size(group_size) -> int:
    if group_size in (None, "channel", "per-channel", "per_channel"):
        return PER_CHANNEL
    if isinstance(group_size, bool) or not isinstance(group_size, (int, float)) or int(group_size) != group_size:
        raise QuantizationError(f"group_size must be a positive integer or -1 (per-channel), got {group_size!r}")
    group_size = int(group_size)
    if group_size != PER_CHANNEL and group_size < 1:
        raise QuantizationError(f"group_size must be a positive integer or -1 (per-channel), got {group_size!r}")
    return group_size


# ------------------------------------------------------------------------------------------- the grid
def grid_parameters(x: torch.Tensor, bits: int, symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point per row of `x` [rows, columns] for a uniform grid of 2^bits levels.

    Asymmetric: the grid spans [min(x, 0), max(x, 0)] with an integer zero point. Symmetric: it spans
    [−max|x|, max|x|] with the zero point in the middle.
    """
    maxq = 2**bits - 1
    x = x.float()
    xmin = x.min(dim=1).values.clamp(max=0)
    xmax = x.max(dim=1).values.clamp(min=0)
    if symmetric:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = -xmax
    flat = (xmin == 0) & (xmax == 0)
    xmin = torch.where(flat, -torch.ones_like(xmin), xmin)
    xmax = torch.where(flat, torch.ones_like(xmax), xmax)
    scale = (xmax - xmin) / maxq
    if symmetric:
        zero = torch.full_like(scale, (maxq + 1) / 2)
    else:
        zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def quantize_to_grid(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """Round x/scale + zero to an integer in [0, 2^bits − 1] and map back: the fake-quantized value (fp32)."""
    maxq = 2**bits - 1
    q = torch.clamp(torch.round(x.float() / scale) + zero, 0, maxq)
    return scale * (q - zero)


class IntegerGrid:
    """GPTQ's default grid: the uniform integer grid, fitted per row of a group (`grid_parameters`).

    `quantize.gptq_quantize` takes any object with these two methods; `qid.measure.blockformats.FormatGrid` is
    the floating-point one."""

    def __init__(self, bits: int, symmetric: bool = False):
        self.bits, self.symmetric = bits, symmetric

    def fit(self, group_columns: torch.Tensor):
        return grid_parameters(group_columns, self.bits, self.symmetric)

    def quantize(self, columns: torch.Tensor, parameters) -> torch.Tensor:
        scale, zero = parameters
        return quantize_to_grid(columns, scale, zero, self.bits)


def group_bounds(columns: int, group_size: int) -> list[tuple[int, int]]:
    if group_size == PER_CHANNEL or group_size >= columns:
        return [(0, columns)]
    return [(start, min(start + group_size, columns)) for start in range(0, columns, group_size)]


def rtn_quantize(weight: torch.Tensor, bits: int, group_size: int = DEFAULT_GROUP_SIZE, symmetric: bool = False) -> torch.Tensor:
    """Round-to-nearest fake quantization of a weight [out_features, in_features]; same dtype as the input."""
    bits, group_size = validate_bits(bits), validate_group_size(group_size)
    if bits == BASELINE_BITS:
        return weight.clone()
    w = weight.float()
    rows, columns = w.shape
    if group_size != PER_CHANNEL and group_size < columns and columns % group_size == 0:
        # all groups at once: one row per (output row, group)
        grouped = w.reshape(rows * (columns // group_size), group_size)
        scale, zero = grid_parameters(grouped, bits, symmetric)
        return quantize_to_grid(grouped, scale, zero, bits).reshape(rows, columns).to(weight.dtype)
    result = torch.empty_like(w)
    for start, stop in group_bounds(columns, group_size):
        scale, zero = grid_parameters(w[:, start:stop], bits, symmetric)
        result[:, start:stop] = quantize_to_grid(w[:, start:stop], scale, zero, bits)
    return result.to(weight.dtype)
