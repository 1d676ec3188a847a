"""qid: quantization-induced degradation (QiD) of language models.

Measurement (quantize a checkpoint, evaluate paired losses), the book's own model suite, scaling-law fits
with lmfit, and projections, as used by the chapters of the reproducible book. The package is built in
wings, each one job, and imports flow one way (the test `tests/test_architecture.py` checks it):

    qid.cli, qid.chapters            the command line and the chapters' helpers: may import every wing
    qid.suite                        the book's model suite: may import qid.measure and qid.common
    qid.fitting                      the fitter: may import qid.laws and qid.common
    qid.measure                      quantizing and evaluating a checkpoint: qid.common only
    qid.laws                         the law registry and published numbers: qid.common only
    qid.common                       the ground floor (files, paths, provenance, devices): nothing of qid

The notebooks only import, call, plot and narrate.
"""

__version__ = "0.1.0"
