"""Measuring QiD of a checkpoint: load it, quantize its weights, evaluate paired 16-bit and quantized losses.

Checkpoints from a folder or the hub (`checkpoints`), text sources for evaluation and calibration
(`textsource`), quantizers (`intgrid` for the integer grids and RTN, `quantize` for GPTQ, bitsandbytes and the
model-level driver, `awq` for AWQ; `fpformats` and `blockformats` for the floating-point and micro-scaled
formats FP8, FP4, MXFP4, NVFP4; `bitsperweight` for the storage each costs, scales included), paired
evaluation with KL and top-1 (`evaluate`), the resumable sweep (`sweep_spec` describes it, `checkpoint_cells` measures one checkpoint's cells, `sweep` runs it) and its
results table (`results_table`), and the Ray runner for sweeps (`ray_sweep`).
It may import `qid.common` only: it knows nothing of how the book's own models were trained.
"""
