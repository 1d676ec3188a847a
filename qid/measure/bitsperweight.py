"""Storage bits per weight of a quantized layer or model, scales and zero points included.

So that formats are compared at equal storage (issue 23), every method is charged what a deployment stores:

* integer ``rtn``/``gptq``/``awq`` at b bits, groups of g input columns: b bits per weight plus, per group, a
  16-bit (FP16) scale and a b-bit zero point — what GPTQ/AWQ checkpoints store (scales FP16, zeros packed
  at b bits). b + (16 + b)/g: 4.156 at g128, 3.148 at 3-bit g128. Symmetric grids store no zero: b + 16/g.
  AWQ's per-input-channel scale is folded into the preceding operation and costs nothing.
* ``bnb-nf4``/``bnb-fp4``: 4 bits plus bitsandbytes' FP32 absmax per block (64 by default): 4.5.
* ``fp8``/``fp8-e5m2``/``fp4``: the element bits plus a 16-bit scale per group (the fake quantizer keeps it in
  FP32; see `qid.blockformats`): 8 + 16/g, 4 + 16/g.
* ``mxfp4``: 4 + 8/32 = 4.25 (an E8M0 scale per 32 weights).
* ``nvfp4``: 4 + 8/16 = 4.5 (an E4M3 scale per 16 weights) plus one FP32 scale per tensor, 32/(rows·columns)
  bits per weight — counted when the layer shape is given, otherwise left out (4.5).
* ``gptq-<format>`` stores exactly what ``<format>`` stores. 16 bits: the unquantized baseline, 16.

Per-channel groups (group size -1) depend on the row length, so they need the layer's ``in_features``;
a model's value is the parameter-weighted mean over its quantized layers (`model_bits_per_weight`). Where a
row is not a multiple of the block, the last, shorter block still carries a whole scale (ceil(in/g) scales).
"""

from __future__ import annotations

import math

from qid.measure import quantize
from qid.measure.blockformats import scaled_format

INTEGER_METHODS = ("rtn", "gptq", "awq")
INTEGER_SCALE_BITS = 16  # FP16 scale per group (GPTQ/AWQ checkpoints)
BNB_ABSMAX_BITS = 32  # bitsandbytes keeps its per-block absmax in FP32 (without double quantization)
BNB_DEFAULT_BLOCK = 64


def _groups_per_row(group_size: int, in_features: int | None, method: str) -> float | None:
    """Scale groups per row, or groups per weight when the row length is unknown (then g must be fixed)."""
    if group_size == quantize.PER_CHANNEL:
        if in_features is None:
            raise quantize.QuantizationError(f"{method}: per-channel groups need in_features to count bits per weight")
        return 1.0
    if in_features is None:
        return None
    return math.ceil(in_features / group_size)


def bits_per_weight(method: str, bits: int, group_size=quantize.DEFAULT_GROUP_SIZE, *, symmetric: bool = False,
                    in_features: int | None = None, out_features: int | None = None) -> float:
    """Bits of storage per weight for one layer quantized with (method, bits, group size), scales included.

    `in_features` is needed for per-channel groups and makes partial last groups exact; `out_features` with
    it adds NVFP4's per-tensor FP32 scale."""
    method = quantize.validate_method(method)
    bits = quantize.validate_bits(bits)
    group_size = quantize.validate_group_size(group_size)
    quantize.check_combination(method, bits)
    if bits == quantize.BASELINE_BITS:
        return float(quantize.BASELINE_BITS)
    tensor_bits = 0
    if method in INTEGER_METHODS:
        element_bits, per_group_bits = bits, INTEGER_SCALE_BITS + (0 if symmetric else bits)
    elif method in quantize.BNB_METHODS:
        element_bits, per_group_bits = 4, BNB_ABSMAX_BITS
        group_size = BNB_DEFAULT_BLOCK if group_size == quantize.PER_CHANNEL else group_size
    else:
        fmt, _ = scaled_format(method)
        element_bits, per_group_bits = fmt.element.bits, fmt.scale_bits
        group_size = fmt.block_size if fmt.block_size is not None else group_size
        tensor_bits = fmt.tensor_scale_bits
    groups = _groups_per_row(group_size, in_features, method)
    if groups is None:  # row length unknown: every group full
        return element_bits + per_group_bits / group_size
    value = element_bits + groups * per_group_bits / in_features
    if tensor_bits and out_features:
        value += tensor_bits / (in_features * out_features)
    return value


def model_bits_per_weight(layer_shapes, method: str, bits: int, group_size=quantize.DEFAULT_GROUP_SIZE, *,
                          symmetric: bool = False) -> float:
    """Parameter-weighted bits per weight over the quantized layers, given their (out_features, in_features)
    (e.g. `[tuple(m.weight.shape) for m in quantize.quantizable_linears(model).values()]`)."""
    shapes = [(int(rows), int(columns)) for rows, columns in layer_shapes]
    if not shapes:
        raise quantize.QuantizationError("no quantized layers to count bits per weight over")
    total_bits = sum(rows * columns * bits_per_weight(method, bits, group_size, symmetric=symmetric,
                                                      in_features=columns, out_features=rows)
                     for rows, columns in shapes)
    return total_bits / sum(rows * columns for rows, columns in shapes)
