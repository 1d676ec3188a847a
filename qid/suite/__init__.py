"""The book's own model suite: a mini-Pythia family trained on CPU along a token ladder, and its measurement.

Corpus and tokenizer (`corpus`), n-gram baselines (`ngram`), model shapes and configs (`models`), training
one run (`train`), presets and the plan of runs (`plan`), training the plan (`run`, or `ray_training` on a
Ray cluster), the whole pipeline with its stage log (`pipeline`), the suite's QiD measurement
(`measurement`) and its tidy tables (`tables`), and a synthetic stand-in for tests (`synthetic`).
It may import `qid.measure` (to measure its checkpoints) and `qid.common`; never the laws, the fitter or
the chapters' helpers.
"""
