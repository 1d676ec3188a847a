"""The exponent/mantissa split Sun et al.'s floating-point law prefers at a given bit budget.

In Sun et al.'s law (`qid.laws.registry.sun_fp_training`) the format enters only through the precision penalty
log2(B) / (γ · (E + 0.5)^δ · (M + 0.5)^ν). At a fixed budget of P bits per element (1 sign bit, E exponent bits,
M = P − 1 − E mantissa bits) the penalty is smallest where (E + 0.5)^δ · (M + 0.5)^ν is largest; N, D and the
block size B scale every split alike, so the ranking depends on P, δ and ν only. With the published δ = 3.19
and ν = 2.95 this gives E2M1 at 4 bits, E4M3 at 8 and E8M7 at 16, the layouts the paper names.
"""

from __future__ import annotations

import pandas as pd

from qid.laws.registry import SUN_FP_PUBLISHED

SIGN_BITS = 1
MIN_EXPONENT_BITS = 1  # a floating-point element has at least one exponent bit (E0 is an integer format)


def split_ranking(total_bits: int, params: dict | None = None) -> pd.DataFrame:
    """Every split E/M of `total_bits` (sign included) with its precision penalty relative to the best one,
    best first: columns format ('E2M1'), exponent_bits, mantissa_bits, relative_penalty (1 = the best)."""
    if isinstance(total_bits, bool) or int(total_bits) != total_bits or total_bits < SIGN_BITS + MIN_EXPONENT_BITS:
        raise ValueError(f"total_bits must be an integer of at least {SIGN_BITS + MIN_EXPONENT_BITS}, got {total_bits!r}")
    params = SUN_FP_PUBLISHED if params is None else params
    rows = []
    for exponent_bits in range(MIN_EXPONENT_BITS, int(total_bits) - SIGN_BITS + 1):
        mantissa_bits = int(total_bits) - SIGN_BITS - exponent_bits
        capacity = (exponent_bits + 0.5) ** params["delta"] * (mantissa_bits + 0.5) ** params["nu"]
        rows.append({"format": f"E{exponent_bits}M{mantissa_bits}", "exponent_bits": exponent_bits,
                     "mantissa_bits": mantissa_bits, "capacity": capacity})
    table = pd.DataFrame(rows).sort_values("capacity", ascending=False).reset_index(drop=True)
    table["relative_penalty"] = table["capacity"].iloc[0] / table["capacity"]
    return table.drop(columns="capacity")


def preferred_split(total_bits: int, params: dict | None = None) -> tuple[int, int]:
    """(exponent bits, mantissa bits) that Sun et al.'s law prefers at `total_bits` bits (sign included)."""
    best = split_ranking(total_bits, params).iloc[0]
    return int(best["exponent_bits"]), int(best["mantissa_bits"])
