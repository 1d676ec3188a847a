"""Fitting the laws to data with lmfit, with the error model and honest uncertainty.

The fit problem and its data (`problem`, `data`), the optimizer and its starts (`optimize`, `starts`), the
likelihood and the error model (`likelihood`, `errormodel`), bootstraps (`bootstrap`), the fit record and
its JSON (`record`), recovery checks on synthetic data (`recovery`), loss-curve fits (`curvefit`), fits of
printed tables (`printedtable`), predictions from a named parameter set or a fit file (`prediction`), and the
facade most callers use (`fit`).
It may import `qid.laws` and `qid.common`.
"""
