"""The laws of post-training quantization (QiD) and the loss laws they sit beside, with their published constants.

Ouyang et al. 2024 (unified, per-bit, curved and separate laws), Pythia's 16-bit loss, Kumar et al. 2024's
post-training degradation δ_PTQ and Chinchilla's loss law. Each docstring gives the equation and its source;
every law is registered once (`qid.laws.law.register_law`) when this module is imported (`qid.laws.registry`
imports it).
"""

from __future__ import annotations

import math

import numpy as np

from qid.laws.law import Law, ParameterSet, register_law

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

# (function, plain formula, LaTeX, exponent bound) of each one-variable law
_SEPARATE_LAWS = (
    (ouyang_separate_D, "QiD = k * D^beta   (D alone)", r"\mathrm{QiD}(D) = k\,D^{\beta}", ("beta", 3)),
    (ouyang_separate_N, "QiD = k * N^(-alpha)   (N alone)", r"\mathrm{QiD}(N) = k\,N^{-\alpha}", ("alpha", 3)),
    (ouyang_separate_P, "QiD = k * P^(-gamma)   (P alone)", r"\mathrm{QiD}(P) = k\,P^{-\gamma}", ("gamma", 20)),
)
for function, formula, latex, (exponent, bound) in _SEPARATE_LAWS:
    register_law(Law(name=function.__name__, function=function, response="qid", formula=formula, latex=latex,
                     source="ouyang2024lowbit", bounds={"k": (0, None), exponent: (-bound, bound)}))
