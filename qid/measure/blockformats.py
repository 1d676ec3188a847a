"""Scaled floating-point weight formats: FP8, FP4, MXFP4 and NVFP4 fake quantization (RTN and GPTQ).

Each format stores a weight [out_features, in_features] as elements of a small float format
(`qid.fpformats`) times a scale shared by a block of consecutive *input* columns of one output row (the
reduction dimension, as the MX spec and NVIDIA's kernels require). Quantize–dequantize of a block:

    q = round_to_format(w · inverse, element)   (round to nearest, ties to even, saturating)
    ŵ = q · scale

Methods (names for ``qid measure --methods``; ``gptq-<format>`` adds GPTQ's error feedback on the same grid):

* ``fp8`` — E4M3 elements, one scale per row and group of ``group_size`` input columns (-1: per row):
  scale = absmax/448 so the group's largest value maps to E4M3's largest. ``fp8-e5m2``: the same with E5M2
  (scale = absmax/57344). The scale is kept in float32 here and counted as 16 bits of storage
  (`qid.bitsperweight`): a 16-bit scale would move ŵ by < 2⁻¹¹ relative, far below E4M3's 2⁻⁴ step.
* ``fp4`` — E2M1 elements with the same per-group absmax scale (absmax/6).
* ``mxfp4`` — OCP Microscaling v1.0 MXFP4: blocks of 32 input columns, E2M1 elements, a shared E8M0
  power-of-two scale by the spec's rule X = 2^(floor(log2 absmax) − 2) (`fpformats.e8m0_floor_scale`).
  ``group_size`` is ignored: the block is the format's.
* ``nvfp4`` — NVIDIA NVFP4 (as NVIDIA describes it for Blackwell, and as TensorRT Model Optimizer and
  torchao implement it): blocks of 16 input columns, E2M1 elements, an E4M3 block scale and an FP32 scale
  per tensor, s_tensor = amax(W)/(448·6), so that the block scale (absmax_block/6)/s_tensor uses E4M3's
  whole range. The block scale is rounded to E4M3 (saturating at 448; E4M3 subnormals allowed, as NVIDIA's
  kernels do — torchao clamps it up to 2⁻⁶ instead, which differs only for blocks whose absmax is below
  amax(W)/28672); elements are w·((1/s_tensor)/block scale), the reciprocal form NVIDIA's and torchao's
  kernels use, and ŵ = q·(s_tensor·block scale).

Blocks are never refused for shape: when in_features is not a multiple of the block (or group), the last
block of each row is shorter — the same as zero-padding it, which is how MX/NVFP4 storage pads (zeros change
no absmax). A block (or tensor) whose absmax is 0 has scale 0 and dequantizes to exact zeros. A weight with a
NaN or Inf is refused with one `QuantizationError` (its scale would be meaningless).

GPTQ on a format: `FormatGrid` plugs the format into `qid.measure.quantize.gptq_quantize` (`gptq_grid` builds it;
`quantize.gptq_format_quantize` runs it); each block's scale is fitted
when GPTQ reaches the block's first column, on that block's error-updated weights (as GPTQ does for integer
groups); NVFP4's tensor scale is fixed beforehand from the original weight. Act-order is refused when blocks
are narrower than a row: it would make a block out of non-adjacent columns, which no format stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from qid.measure import intgrid
from qid.measure.fpformats import E2M1, E4M3, E5M2, FloatFormat, e8m0_floor_scale, round_to_format

ABSMAX, E8M0_FLOOR, NVFP4_TWO_LEVEL = "absmax", "e8m0-floor", "nvfp4-two-level"
MX_BLOCK_SIZE = 32  # OCP MX v1.0: k = 32 for every concrete MX format
NVFP4_BLOCK_SIZE = 16


@dataclass(frozen=True)
class ScaledFormat:
    """A weight format: element format, block length (None: the caller's group size), scale rule and the
    storage of one block scale and of the per-tensor scale (bits)."""

    method: str
    element: FloatFormat
    block_size: int | None
    scale_rule: str
    scale_bits: int
    tensor_scale_bits: int = 0


FORMATS = {
    "fp8": ScaledFormat("fp8", E4M3, None, ABSMAX, scale_bits=16),
    "fp8-e5m2": ScaledFormat("fp8-e5m2", E5M2, None, ABSMAX, scale_bits=16),
    "fp4": ScaledFormat("fp4", E2M1, None, ABSMAX, scale_bits=16),
    "mxfp4": ScaledFormat("mxfp4", E2M1, MX_BLOCK_SIZE, E8M0_FLOOR, scale_bits=8),
    "nvfp4": ScaledFormat("nvfp4", E2M1, NVFP4_BLOCK_SIZE, NVFP4_TWO_LEVEL, scale_bits=8, tensor_scale_bits=32),
}
GPTQ_PREFIX = "gptq-"
FORMAT_BITS = {name: fmt.element.bits for name, fmt in FORMATS.items()}  # each format exists at one bit width


def scaled_format(method: str) -> tuple[ScaledFormat, bool]:
    """The format of a method name and whether it uses GPTQ ('gptq-mxfp4' → (MXFP4, True))."""
    name = method.lower()
    with_gptq = name.startswith(GPTQ_PREFIX)
    base = name[len(GPTQ_PREFIX):] if with_gptq else name
    if base not in FORMATS:
        names = ", ".join(list(FORMATS) + [GPTQ_PREFIX + f for f in FORMATS])
        raise intgrid.QuantizationError(f"unknown floating-point format method {method!r}: use one of {names}")
    return FORMATS[base], with_gptq


def effective_group_size(method: str, group_size) -> int:
    """The block length the method really uses along the input dimension (-1: one block per row)."""
    fmt, _ = scaled_format(method)
    return fmt.block_size if fmt.block_size is not None else intgrid.validate_group_size(group_size)


def _block_length(fmt: ScaledFormat, group_size, columns: int) -> int:
    length = fmt.block_size if fmt.block_size is not None else intgrid.validate_group_size(group_size)
    return columns if length == intgrid.PER_CHANNEL else length


def _check_finite(weight: torch.Tensor, method: str) -> None:
    bad = int((~torch.isfinite(weight)).sum())
    if bad:
        raise intgrid.QuantizationError(f"{method}: the weight {tuple(weight.shape)} holds {bad} NaN/Inf value(s); "
                                         "a block scale cannot be computed from them")


def tensor_scale(weight: torch.Tensor, fmt: ScaledFormat) -> torch.Tensor | None:
    """NVFP4's FP32 per-tensor scale amax(W)/(448·6) (a 0-d tensor); None for single-level formats."""
    if fmt.scale_rule != NVFP4_TWO_LEVEL:
        return None
    return weight.detach().float().abs().amax() / (E4M3.max_finite * fmt.element.max_finite)


def block_scales(block_absmax: torch.Tensor, fmt: ScaledFormat, per_tensor: torch.Tensor | None = None):
    """(scale, inverse) for blocks with the given absmax: ŵ = round(w·inverse)·scale. Zero scale → inverse 0."""
    amax = block_absmax.float()
    if fmt.scale_rule == ABSMAX:
        scale = amax / fmt.element.max_finite
        inverse = torch.where(scale > 0, 1.0 / scale, torch.zeros_like(scale))
    elif fmt.scale_rule == E8M0_FLOOR:
        scale = e8m0_floor_scale(amax, fmt.element)
        inverse = 1.0 / scale  # a power of two: exact
    elif fmt.scale_rule == NVFP4_TWO_LEVEL:
        if per_tensor is None:
            raise intgrid.QuantizationError("nvfp4 needs its per-tensor scale (blockformats.tensor_scale)")
        if not per_tensor > 0:  # an all-zero tensor: every block is zero
            zero = torch.zeros_like(amax)
            return zero, zero
        block = round_to_format((amax / fmt.element.max_finite) / per_tensor, E4M3)  # the stored E4M3 scale
        scale = per_tensor * block
        inverse = torch.where(block > 0, (1.0 / per_tensor) / block, torch.zeros_like(block))
    else:
        raise intgrid.QuantizationError(f"unknown scale rule {fmt.scale_rule!r}")
    return scale, inverse


def quantize_blocks(values: torch.Tensor, scale: torch.Tensor, inverse: torch.Tensor, fmt: ScaledFormat) -> torch.Tensor:
    """Fake-quantize values [n, k] whose rows share (scale, inverse) [n, 1]."""
    return round_to_format(values.float() * inverse, fmt.element) * scale


def format_quantize(weight: torch.Tensor, method: str, group_size=intgrid.DEFAULT_GROUP_SIZE) -> torch.Tensor:
    """Round-to-nearest fake quantization of a weight [out_features, in_features] to a format; input dtype.

    `method` is a format name ('fp8', 'fp8-e5m2', 'fp4', 'mxfp4', 'nvfp4'); `group_size` is used by the
    absmax formats only (MXFP4/NVFP4 have fixed blocks)."""
    fmt, with_gptq = scaled_format(method)
    if with_gptq:
        raise intgrid.QuantizationError(f"{method} needs calibration: use quantize.gptq_format_quantize")
    if weight.ndim != 2:
        raise intgrid.QuantizationError(f"{method}: expected a 2-D weight [out, in], got shape {tuple(weight.shape)}")
    _check_finite(weight, method)
    w = weight.detach().float()
    rows, columns = w.shape
    length = _block_length(fmt, group_size, columns)
    padding = (-columns) % length
    blocks = F.pad(w, (0, padding)).reshape(-1, length)  # zero padding: changes no block's absmax
    scale, inverse = block_scales(blocks.abs().amax(dim=1, keepdim=True), fmt, tensor_scale(w, fmt))
    result = quantize_blocks(blocks, scale, inverse, fmt).reshape(rows, columns + padding)[:, :columns]
    return result.to(weight.dtype)


class FormatGrid:
    """A format's grid for `quantize.gptq_quantize`: `fit` a block's scale on its current (error-updated)
    columns [rows, k]; `quantize` columns [rows, j] with those per-row parameters."""

    def __init__(self, fmt: ScaledFormat, per_tensor: torch.Tensor | None = None):
        self.fmt, self.per_tensor = fmt, per_tensor

    def fit(self, group_columns: torch.Tensor):
        return block_scales(group_columns.abs().amax(dim=1, keepdim=True), self.fmt, self.per_tensor)

    def quantize(self, columns: torch.Tensor, parameters) -> torch.Tensor:
        scale, inverse = parameters
        return quantize_blocks(columns, scale, inverse, self.fmt)


def gptq_grid(weight: torch.Tensor, method: str, group_size=intgrid.DEFAULT_GROUP_SIZE, act_order: bool = False):
    """(FormatGrid, block length, element bits) for GPTQ of `weight` on a format ('gptq-<format>' or a bare
    name); the weight is checked (2-D, finite) and NVFP4's tensor scale fixed from it beforehand."""
    fmt, _ = scaled_format(method)
    if weight.ndim != 2:
        raise intgrid.QuantizationError(f"{method}: expected a 2-D weight [out, in], got shape {tuple(weight.shape)}")
    _check_finite(weight, method)
    columns = weight.shape[1]
    length = _block_length(fmt, group_size, columns)
    if act_order and length < columns:
        raise intgrid.QuantizationError(f"{method}: act-order would put non-adjacent columns in one {length}-column "
                                        "block, which the format cannot store; use it with per-channel fp8/fp4 only")
    return FormatGrid(fmt, tensor_scale(weight, fmt)), length, fmt.element.bits
