"""Floating-point element formats written from their specifications: OCP FP8 E4M3 and E5M2, FP4 E2M1, E8M0.

What each format is (sign bit, then exponent and mantissa fields; value (1 + m/2^M)·2^(e − bias) for a
normal code, (m/2^M)·2^(1 − bias) for a subnormal one, e = 0):

* **E4M3** (OCP 8-bit Floating Point Specification "OFP8" rev. 1.0; PyTorch's ``float8_e4m3fn``): bias 7, no
  infinities; only S.1111.111 is NaN, so the exponent field 1111 still holds normal numbers up to
  1.75·2^8 = 448. Smallest normal 2^−6, smallest subnormal 2^−9.
* **E5M2** (OFP8; ``float8_e5m2``): bias 15, IEEE-like: exponent field 11111 is ±Inf/NaN. Largest finite
  1.75·2^15 = 57344, smallest normal 2^−14, smallest subnormal 2^−16.
* **E2M1** (OCP Microscaling Formats v1.0 §5.3.3, the FP4 element of MXFP4 and NVFP4): bias 1, no Inf or
  NaN; the magnitudes are 0, 0.5 (subnormal), 1, 1.5, 2, 3, 4, 6.
* **E8M0** (OCP MX v1.0 §5.4.1, the shared scale of MX blocks): an 8-bit biased exponent, no sign, no
  mantissa: 2^(e − 127) for e = 0…254, 0xFF is NaN. `e8m0_floor_scale` computes the MX scale rule.

Conversion rules chosen here (the OFP8 spec offers a saturating and a non-saturating mode):
rounding is round-to-nearest-even onto the grid; conversion **saturates**: magnitudes beyond the largest
finite value, ±Inf included, become ± that value (the OFP8 saturating mode, and what torchao does by
clamping before PyTorch's cast; PyTorch's own cast is non-saturating and would give NaN/Inf). NaN stays NaN.
Weight quantizers never see non-finite values: `qid.blockformats` refuses them with one clear error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_F32_MANTISSA_BITS = 23
_F32_BIAS = 127
E8M0_BIAS = 127
E8M0_MIN_EXPONENT, E8M0_MAX_EXPONENT = -127, 127  # 0xFF (exponent 128) is NaN


@dataclass(frozen=True)
class FloatFormat:
    """A sign-exponent-mantissa format with subnormals. `max_finite` marks where the special codes begin:
    codes whose value would exceed it are Inf/NaN encodings (E5M2's top binade, E4M3's S.1111.111)."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    max_finite: float

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def min_normal_exponent(self) -> int:
        return 1 - self.bias

    @property
    def max_exponent(self) -> int:
        """Exponent of the largest finite value (emax_elem of the MX scale rule: 2 for E2M1, 8 for E4M3)."""
        return math.floor(math.log2(self.max_finite))

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.min_normal_exponent - self.mantissa_bits)


E4M3 = FloatFormat("e4m3", exponent_bits=4, mantissa_bits=3, bias=7, max_finite=448.0)
E5M2 = FloatFormat("e5m2", exponent_bits=5, mantissa_bits=2, bias=15, max_finite=57344.0)
E2M1 = FloatFormat("e2m1", exponent_bits=2, mantissa_bits=1, bias=1, max_finite=6.0)
ELEMENT_FORMATS = {fmt.name: fmt for fmt in (E4M3, E5M2, E2M1)}


def representable_magnitudes(fmt: FloatFormat) -> torch.Tensor:
    """Every finite non-negative value of `fmt`, ascending (float64), enumerated code by code from the
    specification's formula; the grid is these values and their negatives."""
    values = set()
    for exponent_field in range(2**fmt.exponent_bits):
        for mantissa_field in range(2**fmt.mantissa_bits):
            fraction = mantissa_field / 2**fmt.mantissa_bits
            if exponent_field == 0:
                value = fraction * 2.0 ** fmt.min_normal_exponent
            else:
                value = (1 + fraction) * 2.0 ** (exponent_field - fmt.bias)
            if value <= fmt.max_finite:  # above it: the Inf/NaN codes
                values.add(value)
    return torch.tensor(sorted(values), dtype=torch.float64)


def _exponent_of(magnitude: torch.Tensor) -> torch.Tensor:
    """floor(log2 m) of non-negative float32 values, read exactly from the exponent field (int32).

    Zero and float32 subnormals read as −127; NaN and Inf as 128. Exact where log2 in floating point is not."""
    bits = magnitude.contiguous().view(torch.int32)
    return ((bits >> _F32_MANTISSA_BITS) & 0xFF) - _F32_BIAS


def _power_of_two(exponent: torch.Tensor) -> torch.Tensor:
    """2^e as float32, built from the bits (exact) for integer e in [−126, 127]."""
    return ((exponent + _F32_BIAS) << _F32_MANTISSA_BITS).to(torch.int32).view(torch.float32)


def round_to_format(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Round every value of `x` to the nearest value of `fmt`, ties to even, saturating (float32 result).

    Within one binade [2^e, 2^(e+1)) the grid step is 2^(e − M); subnormals share the smallest normal
    binade's step 2^(emin − M). Dividing by a power of two is exact, so x/step is rounded to an integer by
    torch.round (which rounds halves to even: an even integer is an even mantissa) and multiplied back; a
    value rounding up to 2^(e+1) lands exactly on the next binade's first value, as the spec wants.
    """
    x = x.float()
    magnitude = x.abs().clamp(max=fmt.max_finite)  # saturation; NaN passes through clamp as NaN
    exponent = _exponent_of(magnitude).clamp(min=fmt.min_normal_exponent, max=fmt.max_exponent)
    step = _power_of_two(exponent - fmt.mantissa_bits)
    return torch.copysign(torch.round(magnitude / step) * step, x)


def e8m0_floor_scale(block_absmax: torch.Tensor, element: FloatFormat) -> torch.Tensor:
    """The shared MX scale X = 2^(floor(log2 absmax) − emax_elem) (OCP MX v1.0 §6.3), as float32.

    The exponent is clamped to E8M0's range [−127, 127]: a block whose absmax is 0 (or a float32 subnormal)
    gets the smallest scale 2^−127, which leaves its zeros zero. Because the rule floors, absmax/X lies in
    [2^emax, 2^(emax+1)), so the block's largest values may exceed the element's max (6 for E2M1: 6 < 8)
    and are then clamped to it — the spec's known saturation, kept as specified.
    """
    exponent = (_exponent_of(block_absmax.float()) - element.max_exponent).clamp(E8M0_MIN_EXPONENT, E8M0_MAX_EXPONENT)
    # 2^−127 is a float32 subnormal that the bit construction cannot build: halve 2^−126 instead (exact).
    scale = _power_of_two(exponent.clamp(min=-126))
    return torch.where(exponent < -126, scale * 0.5, scale)

