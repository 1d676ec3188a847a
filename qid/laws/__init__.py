"""The scaling laws as data: the law registry, loss-curve laws and schedules, projections, published tables.

Each law is a plain function with named parameters, bounds and published parameter sets: the `Law` type and the
registry in `law`, the laws of post-training quantization in `quantization_laws`, the laws of training (floating-point
training, loss curves, low-precision training) in `training_laws`, all loaded by `registry`, the one to import;
loss-curve laws over learning-rate schedules (`curves`, `schedules`); projections of QiD and the data
size where it reaches a level (`projection`); Sun et al.'s exponent/mantissa ranking (`fpsplit`); published reference data (`chinchilla`, `reference`: Ouyang
et al.'s Table 1 and the scale gap to Pythia).
It may import `qid.common` only: laws do not know how they are fitted.
"""
