"""Laws of training: Sun et al. 2025's floating-point training law, the loss-curve laws of a learning-rate schedule
(Tissue et al.'s annealing law and Luo et al.'s Multi-Power Law, computed in `qid.laws.curves`), and Kumar et al.
2024's laws of training in low precision, with their published constants. Registered when imported
(`qid.laws.registry` imports this module).
"""

from __future__ import annotations

import numpy as np

from qid.laws.curves import LUO_BOUNDS, LUO_PUBLISHED, TISSUE_BOUNDS, luo_multipower, tissue_annealing
from qid.laws.law import Law, ParameterSet, register_law
from qid.laws.quantization_laws import chinchilla

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
