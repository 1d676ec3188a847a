"""Quantization-aware training (QAT): the forward pass in low precision, as in Kumar et al. 2024.

Kumar et al. ("Scaling Laws for Precision", arXiv 2411.04330) train with weights, activations and the KV cache
fake-quantized to P_w, P_a and P_kv integer bits in the forward pass, the backward pass in high precision with a
straight-through estimator (STE): the gradient of the rounding is taken to be the identity, so the full-precision
master weights keep learning from the quantized forward. This module does the same to the suite's GPT-NeoX models:

* weights: every `nn.Linear` inside the transformer blocks (the measurement package's `quantizable_linears`:
  never the embeddings or the output head), per output channel, with the measurement package's round-to-nearest
  grid (`qid.measure.intgrid.rtn_quantize`, asymmetric, group = one output row). So the training-precision model
  at P_w is exactly what `qid.measure.quantize.quantize_model(model, "rtn", P_w, group_size=-1)` makes of its
  master weights (tested), and its loss is measured with the measurement package unchanged;
* activations: the input of each of those layers, per token (one grid per row of features; our choice, the paper
  does not print its activation granularity);
* KV cache: the keys (after the rotary embedding, i.e. what a cache holds) and the values, per token and head.

16 bits means "off": nothing is installed for that tensor, so a 16/16/16 run *is* the plain trainer's run, bit for
bit. `install(model, precision)` returns a handle whose `remove()` restores the model exactly (instance-level
forwards removed, the attention implementation restored); the trainer removes it around every save so a checkpoint
is an ordinary Hugging Face model of the master weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from qid.measure.intgrid import BASELINE_BITS, PER_CHANNEL, grid_parameters, quantize_to_grid, rtn_quantize, validate_bits
from qid.measure.quantize import quantizable_linears

FULL_PRECISION = BASELINE_BITS  # 16 bits: that tensor is not quantized
KV_BITS_ATTRIBUTE = "qid_kv_bits"  # set on each attention module while the KV cache is fake-quantized
ATTENTION_PREFIX = "qid_kv_fake_quant_"  # registered attention implementation = prefix + the model's own


@dataclass(frozen=True)
class TrainingPrecision:
    """Integer bits of the weights, activations and KV cache in the forward pass (16 = not quantized)."""

    weights: int = FULL_PRECISION
    activations: int = FULL_PRECISION
    kv_cache: int = FULL_PRECISION

    def __post_init__(self):
        for name in ("weights", "activations", "kv_cache"):
            try:
                validate_bits(getattr(self, name))
            except ValueError as error:
                raise ValueError(f"training precision {name}: {error}") from None

    @property
    def is_full(self) -> bool:
        return (self.weights, self.activations, self.kv_cache) == (FULL_PRECISION,) * 3

    def as_dict(self) -> dict[str, int]:
        """The law's names: P_w, P_a, P_kv."""
        return {"P_w": int(self.weights), "P_a": int(self.activations), "P_kv": int(self.kv_cache)}


# ------------------------------------------------------------------------------------ fake quantizers (STE)
def straight_through(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """`quantized` in the forward pass, the identity's gradient in the backward pass (x + (q − x) detached)."""
    return x + (quantized - x).detach()


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel RTN of the measurement package, with the STE gradient."""
    return straight_through(weight, rtn_quantize(weight.detach(), bits, PER_CHANNEL))


def fake_quantize_rows(x: torch.Tensor, bits: int, row_width: int | None = None) -> torch.Tensor:
    """One asymmetric grid per row of `row_width` values (default: the last dimension), with the STE gradient."""
    width = row_width or x.shape[-1]
    rows = x.detach().reshape(-1, width)
    scale, zero = grid_parameters(rows, bits)
    quantized = quantize_to_grid(rows, scale, zero, bits).view_as(x).to(x.dtype)
    return straight_through(x, quantized)


# ------------------------------------------------------------------------------------------ installation
class InstalledPrecision:
    """What `install` changed on a model; `remove()` undoes it (idempotent)."""

    def __init__(self, model, precision: TrainingPrecision, linears: list, attention_modules: list,
                 original_attention: str | None):
        self.model, self.precision = model, precision
        self.linears, self.attention_modules, self.original_attention = linears, attention_modules, original_attention

    def remove(self) -> None:
        for module in self.linears:
            module.__dict__.pop("forward", None)
        for module in self.attention_modules:
            module.__dict__.pop(KV_BITS_ATTRIBUTE, None)
        if self.original_attention is not None:
            self.model.config._attn_implementation = self.original_attention
        self.linears, self.attention_modules, self.original_attention = [], [], None


def _quantized_linear_forward(module, precision: TrainingPrecision):
    def forward(x):
        if precision.activations < FULL_PRECISION:
            x = fake_quantize_rows(x, precision.activations)
        weight = module.weight
        if precision.weights < FULL_PRECISION:
            weight = fake_quantize_weight(weight, precision.weights)
        return F.linear(x, weight, module.bias)

    return forward


def _register_kv_attention(base: str) -> str:
    """Register (once) an attention implementation that fake-quantizes keys and values, then calls `base`."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface
    from transformers.models.gpt_neox.modeling_gpt_neox import eager_attention_forward

    name = ATTENTION_PREFIX + base
    if name in ALL_ATTENTION_FUNCTIONS:
        return name
    inner = eager_attention_forward if base == "eager" else ALL_ATTENTION_FUNCTIONS[base]

    def attention(module, query, key, value, attention_mask, **kwargs):
        bits = getattr(module, KV_BITS_ATTRIBUTE, FULL_PRECISION)
        if bits < FULL_PRECISION:  # keys and values: [batch, heads, tokens, head_dim]; one grid per token and head
            key, value = fake_quantize_rows(key, bits), fake_quantize_rows(value, bits)
        return inner(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(name, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


def install(model, precision: TrainingPrecision) -> InstalledPrecision:
    """Fake-quantize `model`'s forward pass at `precision`; nothing is touched for a tensor at 16 bits."""
    linears, attention_modules, original_attention = [], [], None
    if precision.weights < FULL_PRECISION or precision.activations < FULL_PRECISION:
        for module in quantizable_linears(model).values():
            module.forward = _quantized_linear_forward(module, precision)
            linears.append(module)
    if precision.kv_cache < FULL_PRECISION:
        original_attention = model.config._attn_implementation or "eager"
        name = _register_kv_attention(original_attention)
        attention_modules = [module for module in model.modules() if hasattr(module, "query_key_value")]
        if not attention_modules:
            raise ValueError(f"{type(model).__name__}: no GPT-NeoX attention modules (query_key_value) to quantize the KV cache of")
        for module in attention_modules:
            setattr(module, KV_BITS_ATTRIBUTE, int(precision.kv_cache))
        model.config._attn_implementation = name
    return InstalledPrecision(model, precision, linears, attention_modules, original_attention)
