"""The answer on the first screen: does low-bit quantization favour undertrained models at the book's scale, and
how far can a reader trust that? A short block at the top of the findings (`qid.chapters.findings` includes it),
generated like the rest: every number is a value glued by an executed chapter, every verdict follows from an
interval and says no more than it. Where a value is not glued in this build, its line is the findings' visible
placeholder naming the chapter to run.

The verdict reads the exponent of training tokens β: the paper's claim is that QiD grows with training (β > 0).
"Yes" needs β's whole interval above zero, "no" its whole interval below; anything else is "not resolved".
Whether larger models lose less (α > 0) is judged the same way on the size-level interval of α, which is the
honest one with four model sizes (chapter 05).

Glued names read: chapter 05_fits_on_our_data's, listed in `GLUED` below (one table, so that a value renamed
by the chapter is a one-line change here).
"""

from __future__ import annotations

from qid.chapters.glued import Missing, placeholder_text, value_getter
from qid.chapters.formatting import format_count, format_number, format_value_interval

FITS = "05_fits_on_our_data"
# what the answer says -> the name chapter 05 glues it under
GLUED = {
    "beta": "unified_beta",  # β of the unified law on the suite, with _low and _high (95 % bootstrap interval)
    "gamma": "unified_gamma",  # γ, with _low and _high
    "alpha_sizes": "alpha_slope",  # α from the per-size prefactors (t interval on n − 2 dof), with _low and _high
    "points": "fit_n_points",  # QiD measurements fitted
    "sizes": "fit_n_sizes",  # model sizes among them
    "holdout_law": "best_law_holdout",  # the law that predicts the common hold-out best
    "holdout_rms_se": "holdout_best_rms_se",  # its RMS error on the hold-out, in total standard errors
    "residual_largest_d": "unified_residual_largest_d_se",  # mean standardized residual at the largest D (total SE)
    "scale_gap_N": "scale_gap_N_factor",  # Pythia's largest N over the suite's largest N
}
HOLDOUT_WITHIN_SE = 2.0  # an RMS hold-out error (in standard errors) up to this counts as predicting within the noise


def _published() -> dict:
    from qid.laws.registry import get_law

    return get_law("ouyang_unified").parameter_sets["published"].values


def _estimate(get, key: str) -> tuple[float, float, float]:
    name = GLUED[key]
    return float(get(FITS, name)), float(get(FITS, name + "_low")), float(get(FITS, name + "_high"))


def sign_verdict(low: float, high: float) -> str:
    """'positive', 'negative' or 'unresolved': what an interval says about the sign of its quantity."""
    if low > 0:
        return "positive"
    if high < 0:
        return "negative"
    return "unresolved"


def _against_published(value: tuple[float, float, float], published: float, symbol: str, note: str = "") -> str:
    estimate, low, high = value
    inside = low <= published <= high
    return (f"{symbol} = {format_value_interval(estimate, low, high)}{note} against the published "
            f"{format_number(published, digits=4)} ({'inside' if inside else 'outside'} our interval)")


def _verdict(get) -> str:
    beta = _estimate(get, "beta")
    sign = sign_verdict(beta[1], beta[2])
    headline = {"positive": "**Yes, at our scale: models trained on more tokens lose more to low-bit quantization.**",
                "negative": "**No, at our scale: models trained on more tokens lose less to low-bit quantization.**",
                "unresolved": "**Not resolved at our scale: the data cannot tell whether more training means more "
                              "QiD.**"}[sign]
    reason = {"positive": "β's whole interval is above zero", "negative": "β's whole interval is below zero",
              "unresolved": "β's interval reaches zero"}[sign]
    return (f"{headline} The unified law fitted to {format_count(get(FITS, GLUED['points']))} QiD measurements of the "
            f"book's suite gives β = {format_value_interval(*beta)} (95 % bootstrap interval): {reason}.")


def _exponents(get) -> str:
    published = _published()
    alpha = _estimate(get, "alpha_sizes")
    size_sign = sign_verdict(alpha[1], alpha[2])
    sizes = format_count(get(FITS, GLUED["sizes"]))
    size_clause = {"positive": f"larger models lose less (α > 0 over {sizes} sizes)",
                   "negative": f"larger models lose more (α < 0 over {sizes} sizes)",
                   "unresolved": f"with {sizes} model sizes the data do not say whether larger models lose less"}[size_sign]
    return (f"Against Ouyang et al.: {_against_published(_estimate(get, 'beta'), published['beta'], 'β')}; "
            f"{_against_published(alpha, published['alpha'], 'α', f' (from the {sizes} sizes, 95 % t interval)')}; "
            f"{_against_published(_estimate(get, 'gamma'), published['gamma'], 'γ')}. So {size_clause}.")


def _holdout(get) -> str:
    law = get(FITS, GLUED["holdout_law"])
    rms = float(get(FITS, GLUED["holdout_rms_se"]))
    within = rms <= HOLDOUT_WITHIN_SE
    return (f"Refitted without the largest model and each size's longest training, the best law (`{law}`) misses "
            f"the held-out measurements by {format_number(rms, digits=2)} standard errors (RMS): "
            + ("within the noise." if within else
               "more than the noise, so **extrapolating even one step beyond the data is not reliable**."))


def _residuals(get) -> str:
    mean = float(get(FITS, GLUED["residual_largest_d"]))
    return (f"At the largest training-token count the unified law's residuals average {format_number(mean, digits=2)} "
            "standard errors" + (": the law bends away from the data where the paper's claim matters most."
                                 if abs(mean) > 2 else ", within the noise."))


def _scale(get) -> str:
    return (f"Scale: Pythia's largest model is **{format_count(get(FITS, GLUED['scale_gap_N']))}×** the suite's largest; "
            "every statement above is about the suite's small models and holds at Pythia's scale only if the laws "
            "extrapolate that far, which this book cannot test.")


PARTS = [_verdict, _exponents, _holdout, _residuals, _scale]


def answer_lines(values: dict[str, dict]) -> list[str]:
    """The block as Markdown lines: a heading, one paragraph per part (a placeholder where a value is missing)."""
    get = value_getter(values)
    lines = ["## The answer, and how far to trust it", "",
             "*The question of Ouyang et al. (2024): does low-bit quantization favour undertrained models?*", ""]
    for part in PARTS:
        try:
            text = part(get)
        except Missing as missing:
            text = placeholder_text(missing, values)
        lines += [f"- {text}"]
    return lines + [""]
