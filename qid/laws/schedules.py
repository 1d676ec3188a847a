"""Per-step learning-rate schedules and the schedule statistics that the curve laws are built from.

A schedule is a numpy array `lr` with one learning rate per optimizer step, indexed by the step number
(lr[0] is the rate of step 0). The builders reproduce the schedules of Luo et al. (2025) exactly as their
repository's loader does (github.com/thu-yao-01-luo/MultiPowerLaw, `src/lr_schedules.py` at commit
8da9f19): a linear warmup `np.linspace(0, peak, warmup)` over steps 0..warmup-1, then the schedule's own
shape. Exactness matters: the book reproduces Luo's published test metrics to the printed digits.

Statistics (all vectorised; a 72,000-step curve takes milliseconds, the Multi-Power term well under a second):
- `forward_area(lr)`: S1(t) = Σ_{τ≤t} η_τ, warmup included (Luo et al.; Tissue et al. call it the forward area).
- `annealing_area(lr, decay)`: S2(t) = Σ_{i≤t} m_i with m_i = λ·m_{i−1} + (η_{i−1} − η_i) (Tissue et al.
  2024, "annealing area with momentum"; λ = `decay`).
- `multipower_loss_drop(lr, steps, C, beta, gamma)`: Σ_{k=1..t} (η_{k−1} − η_k)·G(η_k^(−γ)·S_k(t)) with
  G(x) = 1 − (C·x + 1)^(−β) and S_k(t) = Σ_{τ=k..t} η_τ (Luo et al. 2025), without the prefactor B.
  Only steps where the rate changes contribute, so the sum runs over those (all of them for a cosine).
"""

from __future__ import annotations

import re

import numpy as np

# Luo et al.'s runs (PROVENANCE of data/reference/multipowerlaw): every run warms up over 2160 steps to a
# peak of 3e-4; decays end at 3e-5; the two-stage runs switch at step 8000 and stop at 16000.
LUO_WARMUP_STEPS = 2160
LUO_PEAK_LR = 3e-4
LUO_FINAL_LR = 3e-5
LUO_DECAY_START = 20_000  # WSD runs: constant until this step, then decay to LUO_FINAL_LR at step 24000
LUO_WSD_TOTAL = 24_000
LUO_TWO_STAGE_SWITCH = 8_000
LUO_TWO_STAGE_TOTAL = 16_000
LUO_TWO_STAGE_UNIT = 1e-5  # wsdcon_X runs at X·1e-5 after the switch
LUO_SCHEDULES = ("cosine_24000", "constant_24000", "wsdcon_9",  # Luo et al.'s training schedules
                 "cosine_72000", "constant_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3", "wsdcon_18")
LUO_TRAIN_SCHEDULES = ("cosine_24000", "constant_24000", "wsdcon_9")
LUO_TEST_SCHEDULES = tuple(name for name in LUO_SCHEDULES if name not in LUO_TRAIN_SCHEDULES)


# --- building schedules -----------------------------------------------------------------------------------


def _check_lengths(total: int, warmup: int, **later_steps: int) -> None:
    if not (isinstance(total, (int, np.integer)) and total >= 1):
        raise ValueError(f"total steps must be a positive integer, got {total!r}")
    if not 0 <= warmup <= total:
        raise ValueError(f"warmup ({warmup}) must lie between 0 and total steps ({total})")
    for name, step in later_steps.items():
        if not warmup <= step <= total:
            raise ValueError(f"{name} ({step}) must lie between the end of warmup ({warmup}) and total steps ({total})")


def _warmup(warmup: int, peak: float) -> np.ndarray:
    """Linear warmup over steps 0..warmup-1 from 0 to `peak` (as Luo et al.: np.linspace(0, peak, warmup))."""
    return np.linspace(0.0, peak, warmup)


def cosine(total: int, warmup: int, peak: float, final: float) -> np.ndarray:
    """Warmup, then η = final + (peak − final)·(1 + cos(π·(t − warmup)/(total − warmup)))/2 until `total`."""
    _check_lengths(total, warmup)
    steps = np.arange(warmup, total)
    phase = (steps - warmup) / max(total - warmup, 1)
    return np.concatenate([_warmup(warmup, peak), final + 0.5 * (peak - final) * (1 + np.cos(np.pi * phase))])


def constant(total: int, warmup: int, peak: float) -> np.ndarray:
    """Warmup, then the peak rate until `total`."""
    _check_lengths(total, warmup)
    return np.concatenate([_warmup(warmup, peak), np.full(total - warmup, float(peak))])


def warmup_stable_decay(total: int, warmup: int, decay_start: int, peak: float, final: float,
                        shape: str = "geometric") -> np.ndarray:
    """Warmup, the peak rate until `decay_start`, then a decay that would reach `final` at step `total`:
    geometric η = peak^((total − t)/d)·final^((t − decay_start)/d), or linear, with d = total − decay_start."""
    _check_lengths(total, warmup, decay_start=decay_start)
    steps = np.arange(decay_start, total)
    fraction = (steps - decay_start) / max(total - decay_start, 1)
    if shape == "geometric":
        decay = peak ** (1 - fraction) * final**fraction
    elif shape == "linear":
        decay = peak * (1 - fraction) + final * fraction
    else:
        raise ValueError(f"unknown decay shape {shape!r}; use 'geometric' or 'linear'")
    return np.concatenate([_warmup(warmup, peak), np.full(decay_start - warmup, float(peak)), decay])


def two_stage(total: int, warmup: int, switch: int, first: float, second: float) -> np.ndarray:
    """Warmup to `first`, `first` until `switch`, then `second` until `total` (a step decay)."""
    _check_lengths(total, warmup, switch=switch)
    return np.concatenate([_warmup(warmup, first), np.full(switch - warmup, float(first)),
                           np.full(total - switch, float(second))])


def luo_schedule(name: str) -> np.ndarray:
    """The per-step schedule of one of Luo et al.'s runs by its file name (without .csv), e.g. 'cosine_24000',
    'constant_72000', 'wsd_20000_24000', 'wsdld_20000_24000', 'wsdcon_9'."""
    warmup, peak, final = LUO_WARMUP_STEPS, LUO_PEAK_LR, LUO_FINAL_LR
    if match := re.fullmatch(r"cosine_(\d+)", name):
        return cosine(int(match[1]), warmup, peak, final)
    if match := re.fullmatch(r"constant_(\d+)", name):
        return constant(int(match[1]), warmup, peak)
    if match := re.fullmatch(r"(wsd|wsdld)_(\d+)_(\d+)", name):
        shape = "geometric" if match[1] == "wsd" else "linear"
        return warmup_stable_decay(int(match[3]), warmup, int(match[2]), peak, final, shape)
    if match := re.fullmatch(r"wsdcon_(\d+)", name):
        return two_stage(LUO_TWO_STAGE_TOTAL, warmup, LUO_TWO_STAGE_SWITCH, peak, int(match[1]) * LUO_TWO_STAGE_UNIT)
    raise ValueError(f"unknown schedule {name!r}; Luo et al.'s are {', '.join(LUO_SCHEDULES)}")


# --- statistics -------------------------------------------------------------------------------------------


def check_schedule(lr, steps=None) -> tuple[np.ndarray, np.ndarray | None]:
    """`lr` as a finite, non-negative float array and `steps` as integer indices into it (0 ≤ step < len(lr))."""
    lr = np.asarray(lr, dtype=float)
    if lr.ndim != 1 or len(lr) == 0:
        raise ValueError("a schedule is a non-empty 1-D array of per-step learning rates")
    if not np.all(np.isfinite(lr)) or np.any(lr < 0):
        raise ValueError("a schedule's learning rates must be finite and >= 0")
    if steps is None:
        return lr, None
    steps_float = np.asarray(steps, dtype=float)
    indices = steps_float.astype(np.int64)
    if np.any(indices != steps_float) or np.any(indices < 0) or np.any(indices >= len(lr)):
        raise ValueError(f"steps must be whole numbers between 0 and {len(lr) - 1} (the schedule's last step)")
    return lr, indices


def forward_area(lr) -> np.ndarray:
    """S1(t) = Σ_{τ=0..t} η_τ for every step t (warmup included)."""
    lr, _ = check_schedule(lr)
    return np.cumsum(lr)


def rate_drops(lr) -> np.ndarray:
    """η_{k−1} − η_k for every step k (0 at k = 0): positive where the rate decays, negative in warmup."""
    lr, _ = check_schedule(lr)
    drops = np.zeros_like(lr)
    drops[1:] = lr[:-1] - lr[1:]
    return drops


def annealing_momentum(lr, decay: float, after_warmup: bool = False) -> np.ndarray:
    """m_i = λ·m_{i−1} + (η_{i−1} − η_i), m_0 = 0, for every step (a first-order recursive filter). With
    `after_warmup`, the drops before the rate first reaches its peak (the warmup's rises) count as 0."""
    if not 0 <= decay < 1:
        raise ValueError(f"the momentum decay factor must lie in [0, 1), got {decay}")
    drops = rate_drops(lr)
    if after_warmup:
        drops[: int(np.argmax(np.asarray(lr) >= np.max(lr))) + 1] = 0.0  # up to and including the step into the peak
    from scipy.signal import lfilter  # here, not at the top: scipy.signal takes seconds to import, and the CLI's
    # `qid laws` / `qid predict` load this module through the law registry without ever filtering a schedule

    return lfilter([1.0], [1.0, -decay], drops)


def annealing_area(lr, decay: float = 0.999, after_warmup: bool = False) -> np.ndarray:
    """S2(t) = Σ_{i≤t} m_i (Tissue et al. 2024) for every step t (`after_warmup`: see annealing_momentum)."""
    return np.cumsum(annealing_momentum(lr, decay, after_warmup))


def annealing_area_derivative(lr, decay: float) -> np.ndarray:
    """dS2(t)/dλ for every step: dm_i/dλ = m_{i−1} + λ·dm_{i−1}/dλ, the same filter applied to m shifted by one."""
    momentum = annealing_momentum(lr, decay)
    shifted = np.concatenate([[0.0], momentum[:-1]])
    from scipy.signal import lfilter  # imported where used: see above

    return np.cumsum(lfilter([1.0], [1.0, -decay], shifted))


class MultiPowerTerms:
    """The Multi-Power loss-drop sum at fixed measured steps, with S_k(t) precomputed once, so that the sum and
    its derivatives in (C, β, γ) cost a few vectorised passes per evaluation (what a fit needs).

    The measured steps are sorted and cut into blocks of `BLOCK_ROWS` consecutive steps; a block holds the
    matrix S_k(t) for its steps t and every step k with a rate change up to the block's last step (entries
    with k > t are 0, where G(0) = 0, so they add nothing). Memory: 8 bytes per entry (about Σ_t of the
    number of rate changes before t); `multipower_loss_drop` evaluates long curves block by block instead.
    """

    BLOCK_ROWS = 16
    MAX_KEPT_TERMS = 2**26  # 512 MiB of precomputed S_k(t): more is refused (a fit evaluates the sum hundreds of times)

    def __init__(self, lr, steps, keep: bool = True):
        lr, steps = check_schedule(lr, steps)
        cumulative = np.concatenate([[0.0], np.cumsum(lr)])  # cumulative[t + 1] = S1(t)
        drops = rate_drops(lr)
        self.changing = np.flatnonzero(drops != 0)  # only these k contribute
        if keep:  # count the terms before allocating them: a long curve measured at every step needs ~T²/2
            terms = int(np.searchsorted(self.changing, steps, side="right").sum())
            if terms > self.MAX_KEPT_TERMS:
                raise ValueError(
                    f"the Multi-Power term sums {terms:.3g} (measured step, rate change) pairs "
                    f"({len(steps):,} measured steps × up to {len(self.changing):,} rate changes), more than the "
                    f"{self.MAX_KEPT_TERMS:.3g} a fit may hold ({self.MAX_KEPT_TERMS * 8 // 2**20} MiB): keep the loss at "
                    "fewer steps (e.g. every 100th), or fit a shorter run")
        self.drop = drops[self.changing]
        with np.errstate(divide="ignore"):
            self.log_rate = np.log(lr[self.changing])
        self.weighted_log_rate = self.drop * self.log_rate
        self.n_points = len(steps)
        order = np.argsort(steps, kind="stable")
        self.blocks = []
        for begin in range(0, len(order), self.BLOCK_ROWS):
            rows = order[begin : begin + self.BLOCK_ROWS]
            columns = int(np.searchsorted(self.changing, steps[rows].max(), side="right"))
            self.blocks.append((rows, columns, cumulative, steps[rows]) if not keep else
                               (rows, columns, self._area(cumulative, steps[rows], columns), None))
        self.keep = keep

    def _area(self, cumulative, row_steps, columns):
        """S_k(t) = Σ_{τ=k..t} η_τ for the block's steps t (rows) and rate-change steps k (columns); 0 for k > t."""
        area = cumulative[row_steps + 1][:, None] - cumulative[self.changing[:columns]][None, :]
        return np.maximum(area, 0.0, out=area)

    def _block_area(self, block):
        rows, columns, stored, row_steps = block
        return stored if self.keep else self._area(stored, row_steps, columns)

    def __len__(self) -> int:
        """Number of (t, k) terms summed."""
        return sum(len(rows) * columns for rows, columns, _, _ in self.blocks)

    def value(self, C: float, beta: float, gamma: float) -> np.ndarray:
        """Σ_k (η_{k−1} − η_k)·G(η_k^(−γ) S_k(t)) at every measured step."""
        rate_power = np.exp(-gamma * self.log_rate)
        out = np.zeros(self.n_points)
        for block in self.blocks:
            rows, columns = block[0], block[1]
            work = self._block_area(block) * (C * rate_power[:columns])  # C·x, then in place (no temporaries)
            np.log1p(work, out=work)
            work *= -beta
            np.expm1(work, out=work)  # −G(x), G(x) = 1 − (1 + C·x)^(−β)
            out[rows] = -(work @ self.drop[:columns])
        return out

    def value_and_gradient(self, C: float, beta: float, gamma: float):
        """(loss drop (n,), d/d(C, β, γ) (3, n)), in place on one work array per block (memory bound)."""
        rate_power = np.exp(-gamma * self.log_rate)
        value, gradient = np.zeros(self.n_points), np.zeros((3, self.n_points))
        for block in self.blocks:
            rows, columns = block[0], block[1]
            drop = self.drop[:columns]
            scaled = self._block_area(block) * (C * rate_power[:columns])  # w = C·x
            log_u = np.log1p(scaled)  # log u, u = 1 + C·x
            np.divide(scaled, 1.0 + scaled, out=scaled)  # C·x/u
            power = np.exp(-beta * log_u)  # u^(−β)
            value[rows] = drop.sum() - power @ drop  # Σ drop·G, G = 1 − u^(−β)
            log_u *= power
            gradient[1, rows] = log_u @ drop  # d/dβ: u^(−β)·log u
            power *= scaled  # u^(−β)·C·x/u
            gradient[0, rows] = beta / C * (power @ drop)  # d/dC: β u^(−β−1) x
            gradient[2, rows] = -beta * (power @ self.weighted_log_rate[:columns])  # d/dγ: dx/dγ = −x·log η_k
        return value, gradient


def multipower_loss_drop(lr, steps, C: float, beta: float, gamma: float) -> np.ndarray:
    """Σ_{k=1..t} (η_{k−1} − η_k)·G(η_k^(−γ)·S_k(t)), G(x) = 1 − (C·x + 1)^(−β), at every step t in `steps`
    (Luo et al. 2025's loss-drop term without its prefactor B), block by block (memory stays small)."""
    return MultiPowerTerms(lr, steps, keep=False).value(C, beta, gamma)
