"""The registry of scaling laws: each law a plain function with named parameters, registered once.

A law maps its variables (some of N = non-embedding parameters, D = training tokens, P = weight bits) and
named parameters to a predicted quantity (QiD in nats, or a loss in nats). Published parameter sets are
attached to the law as data, each with its source and how sure we are of it. lmfit wraps these functions
directly (`qid.fitting.fit`), so a parameter's name here is its name in every fit report and JSON file.

Readers may register their own law in a notebook with `register_law(Law(...))`.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

VARIABLE_NAMES = ("N", "D", "P", "lr", "step", "exponent_bits", "mantissa_bits", "block_size")
VARIABLE_DESCRIPTIONS = {
    "N": "non-embedding parameters",
    "D": "training tokens",
    "P": "weight bit width (bits)",
    # curve laws (qid.laws.curves): the loss along one run as a function of its learning-rate schedule
    "lr": "learning rate of every optimizer step 0..T-1 of one run",
    "step": "optimizer steps at which the loss is predicted",
    # floating-point formats (Sun et al. 2025): the element's exponent and mantissa bits, the scale's block length
    "exponent_bits": "exponent bits E of a floating-point element format",
    "mantissa_bits": "mantissa bits M of a floating-point element format",
    "block_size": "values sharing one scaling factor (block length B)",
}


# --- the law functions ----------------------------------------------------------------------------------
# Each docstring gives the equation and its source. numpy broadcasting lets every law take scalars or arrays.


def ouyang_unified(N, D, P, k, alpha, beta, gamma):
    """Unified QiD law of Ouyang et al. (2024), eq. for GPTQ on all Pythia checkpoints:

    QiD(N, D, P) = k · D^β / (N^α · P^γ)
    """
    return k * np.power(D, beta) / (np.power(N, alpha) * np.power(P, gamma))


def ouyang_per_bit(N, D, k, alpha, beta):
    """QiD law for one bit width (Ouyang et al. 2024, the unified law with P fixed):

    QiD(N, D) = k · D^β / N^α
    """
    return k * np.power(D, beta) / np.power(N, alpha)


CURVATURE_REFERENCE_TOKENS = 1e6  # D₀ of `curved_unified`: a reparametrization only (k becomes QiD at D₀), no fit changes


def curved_unified(N, D, P, k, alpha, beta, curvature, gamma):
    """The unified law with curvature in log D (this book: on its suite log QiD is concave in log D):

    QiD(N, D, P) = k · (D/D₀)^(β + c·ln(D/D₀)) / (N^α · P^γ),   D₀ = 10⁶ tokens,
    so the local exponent d ln QiD / d ln D = β + 2c·ln(D/D₀); c = 0 is the power law.
    """
    x = np.log(D / CURVATURE_REFERENCE_TOKENS)
    return k * np.exp((beta + curvature * x) * x) / (np.power(N, alpha) * np.power(P, gamma))


def pythia_loss16(N, D, N_c, D_c, alpha_N, alpha_D):
    """16-bit loss law Ouyang et al. (2024) fitted on Pythia (the Kaplan et al. 2020 L(N, D) form):

    Loss_16(N, D) = [ (N_c / N)^(α_N / α_D) + D_c / D ]^α_D
    """
    return np.power(np.power(N_c / N, alpha_N / alpha_D) + D_c / D, alpha_D)


def kumar_ptq(N, D, P, C_T, gamma_D, gamma_N, gamma_post):
    """Post-training-quantization degradation of Kumar et al. (2024), "Scaling Laws for Precision":

    δ_PTQ(N, D, P) = C_T · (D^γ_D / N^γ_N) · exp(−P / γ_post)
    """
    return C_T * np.power(D, gamma_D) / np.power(N, gamma_N) * np.exp(-P / gamma_post)


def chinchilla(N, D, A, B, E, alpha, beta):
    """Chinchilla approach-3 loss law (Hoffmann et al. 2022):

    L(N, D) = E + A / N^α + B / D^β
    """
    return E + A / np.power(N, alpha) + B / np.power(D, beta)


# --- the registry ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSet:
    """Named values for all of a law's parameters, with where they come from.

    status: 'published' (printed in the source), 'derived' (computed from published numbers) or 'fitted'
    (fitted by this book); `note` says anything a reader must know (e.g. a value whose label is garbled).
    """

    values: dict[str, float]
    source: str
    status: str = "published"
    note: str = ""


@dataclass
class Law:
    name: str
    function: Callable
    response: str  # the CSV column the law predicts: 'qid' or 'loss'
    formula: str  # plain-text equation, for the CLI
    latex: str  # the same equation in LaTeX, for the book
    source: str  # bibliography key / citation
    parameter_sets: dict[str, ParameterSet] = field(default_factory=dict)
    # Default bounds for fitting: {param: (min, max)}; None means unbounded on that side. Exponents of the QiD laws
    # are bounded symmetrically about zero, so that no bound hides the sign of an effect.
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def variables(self) -> tuple[str, ...]:
        """The law's inputs among N, D, P, in the order of the function signature."""
        names = inspect.signature(self.function).parameters
        return tuple(name for name in names if name in VARIABLE_NAMES)

    @property
    def parameters(self) -> tuple[str, ...]:
        names = inspect.signature(self.function).parameters
        return tuple(name for name in names if name not in VARIABLE_NAMES)

    def __call__(self, params: dict[str, float], **variables):
        """Evaluate the law: `law(params, N=..., D=..., P=...)`; extra variables the law does not use are ignored."""
        missing = [name for name in self.variables if name not in variables or variables[name] is None]
        if missing:
            raise ValueError(f"law {self.name} needs {', '.join(missing)} ({self.describe_variables(missing)})")
        missing_params = [name for name in self.parameters if name not in params]
        if missing_params:
            raise ValueError(f"law {self.name}: parameter set lacks {', '.join(missing_params)}")
        inputs = {name: np.asarray(variables[name], dtype=float) for name in self.variables}
        values = {name: float(params[name]) for name in self.parameters}
        return self.function(**inputs, **values)

    @staticmethod
    def describe_variables(names) -> str:
        return "; ".join(f"{name} = {VARIABLE_DESCRIPTIONS[name]}" for name in names)

    def parameter_set(self, name: str) -> ParameterSet:
        if name not in self.parameter_sets:
            known = ", ".join(self.parameter_sets) or "none"
            raise KeyError(f"law {self.name} has no parameter set {name!r}; known sets: {known} (or give a fit JSON path)")
        return self.parameter_sets[name]


LAWS: dict[str, Law] = {}


def register_law(law: Law) -> Law:
    """Add a law to the registry (replacing one of the same name: a notebook may redefine its own law)."""
    unknown_bounds = set(law.bounds) - set(law.parameters)
    if unknown_bounds:
        raise ValueError(f"law {law.name}: bounds given for unknown parameter(s) {sorted(unknown_bounds)}")
    for set_name, parameter_set in law.parameter_sets.items():
        if set(parameter_set.values) != set(law.parameters):
            raise ValueError(
                f"law {law.name}: parameter set {set_name!r} has {sorted(parameter_set.values)}, "
                f"expected {sorted(law.parameters)}"
            )
    LAWS[law.name] = law
    return law


def get_law(name: str) -> Law:
    if name not in LAWS:
        raise KeyError(f"unknown law {name!r}; registered laws: {', '.join(sorted(LAWS))}")
    return LAWS[name]


# Published constants, each once. Sources: ../shared/reference/papers.md and the papers cited in book/references.bib.
OUYANG_UNIFIED_PUBLISHED = {"k": 0.017, "alpha": 0.2261, "beta": 0.5251, "gamma": 5.4967}

register_law(
    Law(
        name="ouyang_unified",
        function=ouyang_unified,
        response="qid",
        formula="QiD = k * D^beta / (N^alpha * P^gamma)",
        latex=r"\mathrm{QiD}(N, D, P) = k\,\frac{D^{\beta}}{N^{\alpha}\,P^{\gamma}}",
        source="ouyang2024lowbit",
        parameter_sets={
            "published": ParameterSet(
                OUYANG_UNIFIED_PUBLISHED,
                source="Ouyang et al. 2024, unified law fitted on GPTQ-quantized Pythia checkpoints",
            ),
        },
        bounds={"k": (0, None), "alpha": (-3, 3), "beta": (-3, 3), "gamma": (-20, 20)},
    )
)


def _per_bit_from_unified(bits: int) -> ParameterSet:
    """The unified law with P fixed: k_P = k / P^γ. Derived, not printed in the paper."""
    published = OUYANG_UNIFIED_PUBLISHED
    return ParameterSet(
        {"k": published["k"] / bits ** published["gamma"], "alpha": published["alpha"], "beta": published["beta"]},
        source=f"Ouyang et al. 2024 unified law at P = {bits}",
        status="derived",
    )


register_law(
    Law(
        name="ouyang_per_bit",
        function=ouyang_per_bit,
        response="qid",
        formula="QiD = k * D^beta / N^alpha   (one bit width)",
        latex=r"\mathrm{QiD}_P(N, D) = k_P\,\frac{D^{\beta_P}}{N^{\alpha_P}}",
        source="ouyang2024lowbit",
        parameter_sets={f"unified_P{bits}": _per_bit_from_unified(bits) for bits in (2, 3, 4)},
        bounds={"k": (0, None), "alpha": (-3, 3), "beta": (-3, 3)},
    )
)

register_law(
    Law(
        name="curved_unified",
        function=curved_unified,
        response="qid",
        formula="QiD = k * (D/1e6)^(beta + curvature*ln(D/1e6)) / (N^alpha * P^gamma)",
        latex=r"\mathrm{QiD}(N, D, P) = k\,\frac{(D/D_0)^{\beta + c\ln(D/D_0)}}{N^{\alpha}\,P^{\gamma}}",
        source="this book (chapter 5)",
        bounds={"k": (0, None), "alpha": (-3, 3), "beta": (-3, 3), "curvature": (-1, 1), "gamma": (-20, 20)},
    )
)

register_law(
    Law(
        name="pythia_loss16",
        function=pythia_loss16,
        response="loss",
        formula="Loss16 = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D",
        latex=r"L_{16}(N, D) = \left[\left(\frac{N_c}{N}\right)^{\alpha_N/\alpha_D} + \frac{D_c}{D}\right]^{\alpha_D}",
        source="ouyang2024lowbit",
        parameter_sets={
            "published": ParameterSet(
                {"N_c": 4.74e19, "D_c": 7.63e10, "alpha_N": 0.045, "alpha_D": 0.399},
                source="Ouyang et al. 2024, 16-bit loss law fitted on Pythia",
            ),
        },
        bounds={"N_c": (0, None), "D_c": (0, None), "alpha_N": (0, 2), "alpha_D": (0, 2)},
    )
)

register_law(
    Law(
        name="kumar_ptq",
        function=kumar_ptq,
        response="qid",
        formula="delta_PTQ = C_T * D^gamma_D / N^gamma_N * exp(-P / gamma_post)",
        latex=r"\delta_{\mathrm{PTQ}}(N, D, P) = C_T\,\frac{D^{\gamma_D}}{N^{\gamma_N}}\,e^{-P/\gamma_{\mathrm{post}}}",
        source="kumar2024precision",
        parameter_sets={
            "published": ParameterSet(
                {"C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907},
                source="Kumar et al. 2024, PTQ degradation fit on OLMo-style models (30M-220M, 1.5B-26B tokens)",
                note="gamma_post's label is garbled in the source; its value is treated as uncertain. Reading 1 of 2: "
                     "the fitted offset b = 1.1277 printed next to gamma_post (Appendix K) left out",
            ),
            "published_with_offset": ParameterSet(
                {"C_T": 0.0598 * math.exp(1.1277), "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907},
                source="Kumar et al. 2024, as 'published' with the fitted offset b = 1.1277 (Appendix K) read as a "
                       "factor e^b on the prefactor: C_T = 0.0598 * e^1.1277",
                status="derived",
                note="Reading 2 of 2: the source does not say where b enters; this reading multiplies delta_PTQ by "
                     "e^b = 3.09. An open choice",
            ),
        },
        bounds={"C_T": (0, None), "gamma_D": (-3, 3), "gamma_N": (-3, 3), "gamma_post": (1e-3, 50)},
    )
)

register_law(
    Law(
        name="chinchilla",
        function=chinchilla,
        response="loss",
        formula="L = E + A / N^alpha + B / D^beta",
        latex=r"L(N, D) = E + \frac{A}{N^{\alpha}} + \frac{B}{D^{\beta}}",
        source="hoffmann2022chinchilla",
        parameter_sets={
            "published": ParameterSet(
                {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28},
                source="Hoffmann et al. 2022, approach 3",
            ),
            "epoch_refit": ParameterSet(
                {"A": 482.01, "B": 2085.43, "E": 1.817, "alpha": 0.3478, "beta": 0.3658},
                source="Besiroglu et al. 2024 (Epoch AI), refit on 240 points extracted from Hoffmann et al. Figure 4",
            ),
            "kumar_base": ParameterSet(
                {"A": 4.299e3, "B": 1.806e4, "E": 2.7648, "alpha": 0.4965, "beta": 0.4965},
                source="Kumar et al. 2024, base loss law (alpha = beta tied) on OLMo-style models, Dolma v1.7",
            ),
        },
        bounds={"A": (0, None), "B": (0, None), "E": (0, None), "alpha": (0, 3), "beta": (0, 3)},
    )
)


# --- Ouyang et al.'s separate laws (one factor at a time) -------------------------------------------------
# The paper fits QiD against one variable at a time, each with a free prefactor. It prints the exponents
# (below) but not the prefactors, so these laws carry no parameter set: a complete published set does not
# exist. Fit the prefactor with the exponent fixed, e.g. fit_law(law, data, fixed=OUYANG_SEPARATE_EXPONENTS[name]).


def ouyang_separate_D(D, k, beta):
    """QiD against training tokens alone (Ouyang et al. 2024): QiD(D) = k · D^β.

    Published exponent β = 0.5316; the prefactor k is not published.
    """
    return k * np.power(D, beta)


def ouyang_separate_N(N, k, alpha):
    """QiD against model size alone (Ouyang et al. 2024): QiD(N) = k · N^(−α).

    Published exponent α = 0.2276; the prefactor k is not published.
    """
    return k / np.power(N, alpha)


def ouyang_separate_P(P, k, gamma):
    """QiD against bit width alone (Ouyang et al. 2024): QiD(P) = k · P^(−γ).

    Published exponent γ = 5.4812; the prefactor k is not published.
    """
    return k / np.power(P, gamma)


# The published exponents only (prefactors open), keyed by law name.
OUYANG_SEPARATE_EXPONENTS = {
    "ouyang_separate_D": {"beta": 0.5316},
    "ouyang_separate_N": {"alpha": 0.2276},
    "ouyang_separate_P": {"gamma": 5.4812},
}

register_law(
    Law(
        name="ouyang_separate_D",
        function=ouyang_separate_D,
        response="qid",
        formula="QiD = k * D^beta   (D alone)",
        latex=r"\mathrm{QiD}(D) = k\,D^{\beta}",
        source="ouyang2024lowbit",
        bounds={"k": (0, None), "beta": (-3, 3)},
    )
)

register_law(
    Law(
        name="ouyang_separate_N",
        function=ouyang_separate_N,
        response="qid",
        formula="QiD = k * N^(-alpha)   (N alone)",
        latex=r"\mathrm{QiD}(N) = k\,N^{-\alpha}",
        source="ouyang2024lowbit",
        bounds={"k": (0, None), "alpha": (-3, 3)},
    )
)

register_law(
    Law(
        name="ouyang_separate_P",
        function=ouyang_separate_P,
        response="qid",
        formula="QiD = k * P^(-gamma)   (P alone)",
        latex=r"\mathrm{QiD}(P) = k\,P^{-\gamma}",
        source="ouyang2024lowbit",
        bounds={"k": (0, None), "gamma": (-20, 20)},
    )
)


# --- Sun et al. 2025: floating-point quantization training ---------------------------------------------------
# A law of the loss of models *trained* in a floating-point format (weights and activations quantized during
# training), not of post-training quantization: the book sets its preferred exponent/mantissa split
# (qid.laws.fpsplit) beside the formats' measured QiD, but it does not predict QiD.


def sun_fp_training(N, D, exponent_bits, mantissa_bits, block_size, n, alpha, d, beta, epsilon, gamma, delta, nu):
    """Loss of floating-point quantization training, Sun et al. (2025), "Scaling Laws for Floating-Point
    Quantization Training" (arXiv 2501.02423):

    L(N, D, E, M, B) = n/N^α + d/D^β + ε + (D^β / N^α) · log2(B) / (γ · (E + 0.5)^δ · (M + 0.5)^ν)

    with E exponent bits, M mantissa bits and B the block size of the scaling factor. The last term is the
    precision penalty; like Ouyang et al.'s QiD it grows as D^β / N^α.
    """
    penalty = np.log2(block_size) / (gamma * np.power(exponent_bits + 0.5, delta) * np.power(mantissa_bits + 0.5, nu))
    return n / np.power(N, alpha) + d / np.power(D, beta) + epsilon + np.power(D, beta) / np.power(N, alpha) * penalty


SUN_FP_PUBLISHED = {"n": 69.2343, "alpha": 0.2368, "d": 68973.0621, "beta": 0.5162, "epsilon": 1.9061,
                    "gamma": 11334.5197, "delta": 3.1926, "nu": 2.9543}

register_law(
    Law(
        name="sun_fp_training",
        function=sun_fp_training,
        response="loss",
        formula="L = n/N^alpha + d/D^beta + epsilon + D^beta/N^alpha * log2(B) / (gamma * (E+0.5)^delta * (M+0.5)^nu)",
        latex=r"L(N, D, E, M, B) = \frac{n}{N^{\alpha}} + \frac{d}{D^{\beta}} + \epsilon + \frac{D^{\beta}}{N^{\alpha}}"
              r"\,\frac{\log_2 B}{\gamma\,(E + 0.5)^{\delta}\,(M + 0.5)^{\nu}}",
        source="sun2025fpquant",
        parameter_sets={
            "published": ParameterSet(
                SUN_FP_PUBLISHED,
                source="Sun et al. 2025 (arXiv 2501.02423), the fitted constants of their unified law",
                note="a law of training in a floating-point format, not of post-training quantization",
            ),
        },
        bounds={"n": (0, None), "alpha": (0, 3), "d": (0, None), "beta": (0, 3), "epsilon": (0, None),
                "gamma": (0, None), "delta": (0, 20), "nu": (0, 20)},
    )
)


# --- loss-curve laws (functions of a learning-rate schedule; qid.laws.curves, qid.laws.schedules) ----------------

from qid.laws.curves import LUO_BOUNDS, LUO_PUBLISHED, TISSUE_BOUNDS, luo_multipower, tissue_annealing  # noqa: E402

register_law(
    Law(
        name="tissue_annealing",
        function=tissue_annealing,
        response="loss",
        formula="L(t) = L0 + A * S1(t)^(-alpha) - C * S2(t); S2 = sum of m_i, m_i = decay * m_(i-1) + (lr_(i-1) - lr_i)",
        latex=r"L(t) = L_0 + A\,S_1(t)^{-\alpha} - C\,S_2(t),\quad S_2(t) = \sum_{i \le t} m_i,\ m_i = \lambda m_{i-1} + (\eta_{i-1} - \eta_i)",
        source="tissue2024annealing",
        bounds=TISSUE_BOUNDS,
    )
)

register_law(
    Law(
        name="luo_multipower",
        function=luo_multipower,
        response="loss",
        formula="L(t) = L0 + A * S1(t)^(-alpha) - B * sum_k (lr_(k-1) - lr_k) * (1 - (C * lr_k^(-gamma) * S_k(t) + 1)^(-beta))",
        latex=r"L(t) = L_0 + A\,S_1(t)^{-\alpha} - B \sum_{k=1}^{t} (\eta_{k-1} - \eta_k)\left[1 - \left(C\,\eta_k^{-\gamma} S_k(t) + 1\right)^{-\beta}\right]",
        source="luo2025multipower",
        parameter_sets={
            f"published_{size}": ParameterSet(
                values, source=f"Luo et al. 2025, {size} model, fitted on cosine_24000, constant_24000 and wsdcon_9"
            )
            for size, values in LUO_PUBLISHED.items()
        },
        bounds=LUO_BOUNDS,
    )
)


# --- Kumar et al. 2024: training in low precision (issue 24) ------------------------------------------------
# Laws of the training-precision grid (qid.suite.qat_grid; chapter 07). Their variables: the training precisions of the
# weights, activations and KV cache (P_w, P_a, P_kv) and the precision of a post-training quantization (P_post).

VARIABLE_NAMES = VARIABLE_NAMES + ("P_w", "P_a", "P_kv", "P_post")
VARIABLE_DESCRIPTIONS.update({
    "P_w": "training precision of the weights (bits; 16 = not quantized)",
    "P_a": "training precision of the activations (bits; 16 = not quantized)",
    "P_kv": "training precision of the KV cache (bits; 16 = not quantized)",
    "P_post": "bits of the post-training (weight) quantization (16 = none)",
})
KUMAR_BASE_PUBLISHED = {"A": 4.299e3, "B": 1.806e4, "E": 2.7648, "alpha": 0.4965, "beta": 0.4965}
KUMAR_PRECISION_GAMMAS = {"gamma_w": 2.6745, "gamma_a": 2.2102, "gamma_kv": 0.9578}
KUMAR_PTQ_PUBLISHED = {"C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907}


def kumar_effective_parameters(N, D, P_w, P_a, P_kv, A, B, E, alpha, beta, gamma_w, gamma_a, gamma_kv):
    """Loss of a model trained in low precision (Kumar et al. 2024, "Scaling Laws for Precision", section 4):

    L = A · N_eff^(−α) + B · D^(−β) + E,   N_eff = N · (1 − e^(−P_w/γ_w)) · (1 − e^(−P_a/γ_a)) · (1 − e^(−P_kv/γ_kv))
    """
    effective = N * (1 - np.exp(-P_w / gamma_w)) * (1 - np.exp(-P_a / gamma_a)) * (1 - np.exp(-P_kv / gamma_kv))
    return A * np.power(effective, -alpha) + B * np.power(D, -beta) + E


def kumar_precision(N, D, P_w, P_post, A, B, E, alpha, beta, gamma_w, C_T, gamma_D, gamma_N, gamma_post, C_w):
    """Kumar et al. 2024's combined form for weights trained at P_w and post-training quantized to P_post:

    L = A · N_eff^(−α) + B · D^(−β) + E + δ_PTQ,   N_eff = N · (1 − e^(−P_w/γ_w)),
    δ_PTQ = C_T · (D^γ_D / N_eff^γ_N) · e^(−P_post/γ_post) · (1 − e^(−C_w · max(P_w − P_post, 0)))

    Activations and KV cache at 16 bits (PTQ is weight-only here). The last factor makes a model trained at lower
    precision more robust to PTQ and gives no degradation when P_post ≥ P_w; the paper's unified law has such a
    factor, but neither its exact form nor a value of C_w is in any source we could read: this factor is the book's
    reading (an open choice; with C_w large it is 1 and δ_PTQ is the PTQ law `kumar_ptq` evaluated at N_eff).
    """
    effective = N * (1 - np.exp(-P_w / gamma_w))
    robustness = 1 - np.exp(-C_w * np.maximum(np.asarray(P_w, dtype=float) - np.asarray(P_post, dtype=float), 0.0))
    degradation = C_T * np.power(D, gamma_D) / np.power(effective, gamma_N) * np.exp(-P_post / gamma_post) * robustness
    return A * np.power(effective, -alpha) + B * np.power(D, -beta) + E + degradation


register_law(
    Law(
        name="kumar_base",
        function=chinchilla,  # the same form as Chinchilla's (one function: one analytic gradient)
        response="loss",
        formula="L = A * N^(-alpha) + B * D^(-beta) + E",
        latex=r"L(N, D) = A\,N^{-\alpha} + B\,D^{-\beta} + E",
        source="kumar2024precision",
        parameter_sets={
            "published": ParameterSet(
                KUMAR_BASE_PUBLISHED,
                source="Kumar et al. 2024, base loss law (alpha = beta tied) on OLMo-style models (30M-220M), Dolma v1.7",
            ),
        },
        bounds={"A": (0, None), "B": (0, None), "E": (0, None), "alpha": (0, 3), "beta": (0, 3)},
    )
)

register_law(
    Law(
        name="kumar_effective_parameters",
        function=kumar_effective_parameters,
        response="loss",
        formula="L = A * N_eff^(-alpha) + B * D^(-beta) + E;  N_eff = N * prod_x (1 - exp(-P_x / gamma_x)), x in w, a, kv",
        latex=r"L = A\,N_{\mathrm{eff}}^{-\alpha} + B\,D^{-\beta} + E,\quad "
              r"N_{\mathrm{eff}} = N \prod_{x \in \{w, a, kv\}} \left(1 - e^{-P_x/\gamma_x}\right)",
        source="kumar2024precision",
        parameter_sets={
            "published": ParameterSet(
                {**KUMAR_BASE_PUBLISHED, **KUMAR_PRECISION_GAMMAS},
                source="Kumar et al. 2024: gamma_w, gamma_a, gamma_kv of the effective parameter count; A, B, E, "
                       "alpha, beta of their base law",
                note="the paper prints the gammas and the base law separately; whether A, B, E were refitted with the "
                     "gammas is not stated (open)",
            ),
        },
        bounds={"A": (0, None), "B": (0, None), "E": (0, None), "alpha": (0, 3), "beta": (0, 3),
                "gamma_w": (0.05, 50), "gamma_a": (0.05, 50), "gamma_kv": (0.05, 50)},
    )
)

register_law(
    Law(
        name="kumar_precision",
        function=kumar_precision,
        response="loss",
        formula="L = A * N_eff^(-alpha) + B * D^(-beta) + E + C_T * D^gamma_D / N_eff^gamma_N * exp(-P_post / gamma_post)"
                " * (1 - exp(-C_w * max(P_w - P_post, 0)));  N_eff = N * (1 - exp(-P_w / gamma_w))",
        latex=r"L = A\,N_{\mathrm{eff}}^{-\alpha} + B\,D^{-\beta} + E + C_T\,\frac{D^{\gamma_D}}{N_{\mathrm{eff}}^{\gamma_N}}"
              r"\,e^{-P_{\mathrm{post}}/\gamma_{\mathrm{post}}}\left(1 - e^{-C_w \max(P_w - P_{\mathrm{post}}, 0)}\right)",
        source="kumar2024precision",
        parameter_sets={
            "published_no_robustness": ParameterSet(
                {**KUMAR_BASE_PUBLISHED, "gamma_w": KUMAR_PRECISION_GAMMAS["gamma_w"], **KUMAR_PTQ_PUBLISHED, "C_w": 50.0},
                source="Kumar et al. 2024: base law, gamma_w and the PTQ law's constants (C_T, gamma_D, gamma_N, "
                       "gamma_post; its 'published' reading, without the offset b)",
                status="derived",
                note="C_w is not published in any source we could read: C_w = 50 makes the robustness factor 1 for "
                     "P_w > P_post (no extra robustness from low-precision training): an open choice, not a fit",
            ),
        },
        bounds={"A": (0, None), "B": (0, None), "E": (0, None), "alpha": (0, 3), "beta": (0, 3),
                "gamma_w": (0.05, 50), "C_T": (0, None), "gamma_D": (-3, 3), "gamma_N": (-3, 3),
                "gamma_post": (1e-3, 50), "C_w": (1e-3, 100)},
    )
)


# --- parameter sets from fits ---------------------------------------------------------------------------


def read_fit_file(path: str | Path) -> dict:
    """The content of a fit JSON written by the book (`{"law": ..., "params": {...}, ...}`), checked for those keys."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such fit file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(content, dict) or "law" not in content or "params" not in content:
        raise ValueError(f"{path}: not a fit file (needs keys 'law' and 'params')")
    return content


def load_fit_parameters(path: str | Path, law_name: str | None = None) -> tuple[str, dict[str, float]]:
    """Read a fit JSON written by the book and return (law, params).

    If `law_name` is given, the file must hold a fit of that law.
    """
    content = read_fit_file(path)
    if law_name is not None and content["law"] != law_name:
        raise ValueError(f"{path}: holds a fit of law {content['law']!r}, not {law_name!r}")
    law = get_law(content["law"])
    params = {name: float(value) for name, value in content["params"].items()}
    missing = set(law.parameters) - set(params)
    if missing:
        raise ValueError(f"{path}: parameters {sorted(missing)} of law {law.name} are missing")
    return law.name, params


def resolve_parameters(law: Law, params: str) -> dict[str, float]:
    """`params` is a parameter-set name attached to the law, or the path of a fit JSON of that law."""
    if params in law.parameter_sets:
        return dict(law.parameter_sets[params].values)
    if params.endswith(".json") or Path(params).exists():
        return load_fit_parameters(params, law.name)[1]
    law.parameter_set(params)  # raises KeyError listing the known sets
    raise AssertionError("unreachable")
