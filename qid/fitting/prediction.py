"""Answers of `qid predict` and `qid tokens-for-qid` that a reader can trust: value with its unit, the bootstrap
interval when the parameters come from a fit JSON that carries one, and warnings when the query lies more than a
decade outside the data the fit saw. Fits that did not converge or hold non-finite values are refused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qid.laws import registry as law_registry
from qid.laws.registry import Law
from qid.laws.projection import tokens_to_reach_qid

UNITS = {"qid": "nats/token", "loss": "nats/token", "N": "parameters", "D": "tokens", "P": "bits"}
QUANTITY_NAMES = {"qid": "QiD", "loss": "loss", "D": "training tokens D"}
MIN_BITS, MAX_BITS = 2, 16  # the bit widths the laws were fitted to and the quantizers support
EXTRAPOLATION_DECADES = 1.0  # a query further than this outside the fitted range (log10 units) is warned about


@dataclass
class Answer:
    law: str
    params: str  # the parameter-set name or fit path the user gave
    inputs: dict
    quantity: str
    value: float
    unit: str
    interval: list[float] | None = None
    confidence: float | None = None
    interval_note: str = ""
    fit_range: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        content = asdict(self)
        if not math.isfinite(self.value):
            content["value"] = None  # JSON has no infinity; the warnings say why
        content[self.quantity] = content["value"]  # the key earlier versions printed, kept for scripts
        return content

    def as_text(self) -> str:
        name = QUANTITY_NAMES.get(self.quantity, self.quantity)
        line = f"{name} = {self.value:.6g} {self.unit}"
        if self.interval is not None:
            line += f"  ({self.confidence:.0%} bootstrap interval {self.interval[0]:.4g} to {self.interval[1]:.4g})"
        inputs = ", ".join(f"{key} = {value:.4g} {UNITS[key]}" for key, value in self.inputs.items()
                           if value is not None and key in UNITS)
        lines = [line, f"  law {self.law}, parameters {self.params}; {inputs}"]
        if self.interval is None and self.interval_note:
            lines.append(f"  {self.interval_note}")
        return "\n".join(lines)


def check_bits(law: Law, P: float | None) -> None:
    if "P" in law.variables and P is not None and not MIN_BITS <= P <= MAX_BITS:
        raise ValueError(f"--P must be a weight bit width from {MIN_BITS} to {MAX_BITS} bits, got {P:g}")


def resolve(law: Law, params: str):
    """(parameters, fit or None): a named parameter set, or a fit JSON checked for convergence and finiteness."""
    if params in law.parameter_sets or not (params.endswith(".json") or Path(params).exists()):
        return law_registry.resolve_parameters(law, params), None
    from qid.fitting.record import load_fit  # lmfit is imported only when a fit file is used

    fit = load_fit(params)
    if fit.law != law.name:
        raise ValueError(f"{params}: holds a fit of law {fit.law!r}, not {law.name!r}")
    if "converged" not in law_registry.read_fit_file(params):
        fit.converged = None  # a hand-written file: not known to have failed (warned about, not refused)
    elif not fit.converged:
        raise ValueError(f"{params}: the fit did not converge ({fit.message}); refusing to predict from it")
    bad = [name for name, value in fit.params.items() if not math.isfinite(value)]
    if bad:
        raise ValueError(f"{params}: parameter(s) {', '.join(bad)} are not finite; refusing to predict from it")
    outside = [f"{name} = {value:g} (allowed {low if low is not None else '-inf'} to {high if high is not None else 'inf'})"
               for name, value in fit.params.items() for low, high in [law.bounds.get(name, (None, None))]
               if (low is not None and value < low) or (high is not None and value > high)]
    if outside:  # e.g. a negative prefactor k: the law would print a negative QiD
        raise ValueError(f"{params}: {'; '.join(outside)} lies outside the law's bounds; refusing to predict from it")
    return dict(fit.params), fit


def fit_warnings(fit) -> list[str]:
    warnings = []
    if fit is not None and fit.converged is None:
        warnings.append("the fit file does not say whether its fit converged")
    if fit is not None and not fit.identified:  # written with `qid fit --accept-unidentified`
        reasons = "; ".join(fit.identification) or "no reason recorded"
        warnings.append(f"the fit's parameters are not identified by its data ({reasons}): the value is one of many "
                        "that fit equally well")
    return warnings


def fit_range(fit) -> dict | None:
    ranges = (fit.data or {}).get("ranges") if fit is not None else None
    return {name: [float(low), float(high)] for name, (low, high) in ranges.items()} if ranges else None


def range_warnings(fit, values: dict) -> list[str]:
    """One warning per variable that lies more than EXTRAPOLATION_DECADES outside the fitted data range."""
    if fit is None:
        return []
    ranges = fit_range(fit)
    if ranges is None:
        return ["the fit file does not record the range of its data; extrapolation cannot be checked"]
    warnings = []
    for name, value in values.items():
        if value is None or name not in ranges or not (value > 0 and math.isfinite(value)):
            continue
        low, high = ranges[name]
        below, above = math.log10(low / value), math.log10(value / high)
        if max(below, above) > EXTRAPOLATION_DECADES:
            side = f"{below:.1f} decades below" if below > above else f"{above:.1f} decades above"
            warnings.append(f"{name} = {value:.3g} {UNITS[name]} lies {side} the fitted data "
                            f"({low:.3g} to {high:.3g}): an extrapolation")
    return warnings


def _interval(fit, samples_of) -> tuple[list[float] | None, float | None, str]:
    if fit is None:
        return None, None, "no interval: a published point estimate (give a fit JSON with a bootstrap for one)"
    samples = fit.bootstrap_samples()
    if samples is None:
        return None, None, "no interval: the fit file carries no bootstrap samples"
    values = np.asarray(samples_of(fit), dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None, "no interval: no bootstrap replicate gives a finite value"
    tail = 100 * (1 - fit.confidence) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))], fit.confidence, ""


def predict(law: Law, params: str, inputs: dict) -> Answer:
    values, fit = resolve(law, params)
    check_bits(law, inputs.get("P"))
    value = float(law(values, **inputs))
    interval, confidence, note = _interval(fit, lambda f: f.bootstrap_predictions(**inputs))
    answer = Answer(law.name, params, inputs, law.response, value, UNITS.get(law.response, ""), interval, confidence,
                    note, fit_range(fit), fit_warnings(fit) + range_warnings(fit, inputs))
    if not math.isfinite(value):
        answer.warnings.append("the law gives a non-finite value here")
    return answer


LARGE_VOCABULARY = 256_000  # the largest vocabularies in use (Gemma's); a QiD above ln of it is past uniform guessing


def tokens_for_qid(law: Law, params: str, qid: float, N: float, P: float | None) -> Answer:
    values, fit = resolve(law, params)
    check_bits(law, P)
    tokens = tokens_to_reach_qid(law, values, qid, N=N, P=P)

    def replicate_tokens(fit):
        samples = fit.bootstrap_samples()
        names = list(samples)
        return [tokens_to_reach_qid(law, {name: samples[name][i] for name in names} | fit.fixed, qid, N=N, P=P)
                for i in range(len(samples[names[0]]))]

    interval, confidence, note = _interval(fit, replicate_tokens)
    answer = Answer(law.name, params, {"N": N, "P": P, "qid": qid}, "D", tokens, UNITS["D"], interval, confidence,
                    note, fit_range(fit), fit_warnings(fit) + range_warnings(fit, {"N": N, "D": tokens}))
    if math.isinf(tokens):
        answer.warnings.append(f"the law stays below QiD {qid:g} up to {1e20:g} tokens")
    if qid >= math.log(LARGE_VOCABULARY):
        answer.warnings.append(
            f"QiD {qid:g} nats/token is at least ln V for any vocabulary of up to {LARGE_VOCABULARY:,} tokens "
            f"(ln {LARGE_VOCABULARY:,} = {math.log(LARGE_VOCABULARY):.1f}): the quantized model would do worse than "
            "guessing uniformly, where the law means nothing")
    return answer
