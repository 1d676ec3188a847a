"""The text report of a fit that never shows an undetermined parameter with an error of zero.

lmfit's report prints `+/- 0.00000000 (0.00%)` when its covariance is (near) singular — exactly when the data do
not determine a parameter. Such an error reads as "known exactly"; here it is left out and the report says why.
"""

from __future__ import annotations

import copy
import math


def _meaningless(error) -> bool:
    return error is None or not math.isfinite(error) or error <= 0


def fit_report_text(result) -> str:
    """`result.fit_report()`, with no standard error shown for an unidentified fit or where an error is 0 or not finite."""
    if result.lmfit_result is None:
        if result.identified and not any(_meaningless(e) for e in result.stderr.values() if e is not None):
            return result.fit_report()
        shown = copy.copy(result)
        shown.stderr = {name: (None if not result.identified or _meaningless(e) else e) for name, e in result.stderr.items()}
        text = shown.fit_report()
    else:
        import lmfit

        lmfit_result = copy.copy(result.lmfit_result)
        parameters = copy.deepcopy(lmfit_result.params)
        hidden = [name for name, parameter in parameters.items() if parameter.stderr is not None
                  and (not result.identified or _meaningless(parameter.stderr))]  # derived ones (k = exp(log_k)) too
        for name in hidden:
            parameters[name].stderr, parameters[name].correl = None, None
        if not hidden:
            return lmfit.fit_report(result.lmfit_result)
        lmfit_result.params = parameters
        text = lmfit.fit_report(lmfit_result)
    if not result.identified:
        text += "\n    (no standard errors shown: the data do not determine the parameters; reasons on stderr)"
    else:
        text += "\n    (a standard error of 0 or not finite is not shown: the covariance is singular there)"
    return text
