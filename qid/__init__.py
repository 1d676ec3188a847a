"""qid: quantization-induced degradation (QiD) of language models.

Measurement (quantize a checkpoint, evaluate paired losses), scaling-law fits with lmfit, and projections,
as used by the chapters of the reproducible book. Each module does one job; the notebooks only import,
call, plot and narrate.
"""

__version__ = "0.1.0"
