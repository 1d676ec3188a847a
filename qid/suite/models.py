"""GPT-NeoX (Pythia's architecture) configurations and models, by named size.

Pythia (Biderman et al. 2023) is GPT-NeoX: rotary position embeddings on 25 % of each head's dimensions,
parallel attention and MLP residual, untied input and output embeddings, a 4d GELU MLP, biases, and
LayerNorm. `pythia_config(name)` gives the published shapes (for benchmarks and the GPU campaign);
`mini_config(name, vocab_size)` gives the book's own mini-Pythia sizes, the same family thousands of times
smaller, with non-embedding parameters N = L·(12d² + 13d) + 2d from about 0.1M to about 3.4M (1.5 decades)
so a CPU can train them in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Pythia's shapes (layers, d_model, heads), from the Pythia paper's Table 1; vocabulary 50,304 (padded).
PYTHIA_SHAPES = {
    "14m": (6, 128, 4),
    "31m": (6, 256, 8),
    "70m": (6, 512, 8),
    "160m": (12, 768, 12),
    "410m": (24, 1024, 16),
    "1b": (16, 2048, 8),
    "1.4b": (24, 2048, 16),
    "2.8b": (32, 2560, 32),
    "6.9b": (32, 4096, 32),
    "12b": (36, 5120, 40),
}
PYTHIA_VOCAB_SIZE = 50_304
PYTHIA_CONTEXT = 2048

# The mini-Pythia sizes (layers, d_model, heads); the name is the rounded non-embedding parameter count.
# Head dimensions are multiples of 4 so that the 25 % rotary slice is an even number of dimensions.
MINI_SHAPES = {
    # The fixed-depth family of the suite (issue 19): 4 layers, head width 8 at every size; N = 4·(12d² + 13d) + 2d.
    "L4-13k": (4, 16, 2),     # N = 13,152
    "L4-29k": (4, 24, 3),     # N = 28,944
    "L4-51k": (4, 32, 4),     # N = 50,880
    "L4-79k": (4, 40, 5),     # N = 78,960
    "L4-113k": (4, 48, 6),    # N = 113,184
    "L4-200k": (4, 64, 8),    # N = 200,064
    "L4-312k": (4, 80, 10),   # N = 311,520
    "L4-448k": (4, 96, 12),   # N = 447,552
    "L4-793k": (4, 128, 16),  # N = 793,344
    "L4-1.8m": (4, 192, 24),  # N = 1,779,840 (GPU preset)
    "L4-3.1m": (4, 256, 32),  # N = 3,159,552 (GPU preset)
    # The CPU suite's sizes (vocabulary 1,024; context 128 keeps attention's share near Pythia's ctx/d ratio).
    "13k": (1, 32, 2),     # N = 12,768
    "25k": (2, 32, 2),     # N = 25,472
    "57k": (2, 48, 4),     # N = 56,640
    "150k": (3, 64, 4),    # N = 150,080
    "0.1m": (2, 64, 4),    # N = 100,096
    "0.3m": (3, 96, 4),    # N = 335,712
    "1m": (4, 144, 4),     # N = 1,003,104
    "3m": (6, 216, 6),     # N = 3,376,512
    "10m": (8, 320, 8),    # N = 9,864,320 (GPU preset)
    "30m": (12, 448, 8),   # N = 28,972,160
    "40m": (12, 512, 8),   # N = 37,828,608 (GPU preset: 11x the CPU suite's largest)
}


@dataclass(frozen=True)
class Shape:
    layers: int
    d_model: int
    heads: int

    @property
    def non_embedding_parameters(self) -> int:
        """N = L·(12d² + 13d) + 2d (blocks with biases, plus the final LayerNorm)."""
        return self.layers * (12 * self.d_model**2 + 13 * self.d_model) + 2 * self.d_model


def gpt_neox_config(layers: int, d_model: int, heads: int, vocab_size: int, context: int = PYTHIA_CONTEXT,
                    *, bos_token_id: int = 0, eos_token_id: int = 0):
    """A Pythia-style GPTNeoXConfig: rotary on 25 %, parallel residual, untied embeddings, 4d GELU MLP."""
    from transformers import GPTNeoXConfig

    if d_model % heads:
        raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
    if (d_model // heads) % 4:
        raise ValueError(f"head dimension {d_model // heads} must be a multiple of 4 (25 % rotary slice must be even)")
    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=d_model,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * d_model,
        hidden_act="gelu",
        max_position_embeddings=context,
        rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.25, "rope_type": "default"},
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        initializer_range=0.02,
        layer_norm_eps=1e-5,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        use_cache=False,
    )


def pythia_config(name: str):
    """The GPT-NeoX config of a published Pythia size ('70m', '160m', ..., '12b')."""
    key = name.lower().removeprefix("pythia-")
    if key not in PYTHIA_SHAPES:
        raise ValueError(f"unknown Pythia size {name!r}: use one of {', '.join(PYTHIA_SHAPES)}")
    return gpt_neox_config(*PYTHIA_SHAPES[key], vocab_size=PYTHIA_VOCAB_SIZE, context=PYTHIA_CONTEXT)


def mini_shape(name: str) -> Shape:
    if name not in MINI_SHAPES:
        raise ValueError(f"unknown mini-Pythia size {name!r}: use one of {', '.join(MINI_SHAPES)}")
    return Shape(*MINI_SHAPES[name])


def mini_config(name: str, vocab_size: int, context: int = 256):
    """The config of a mini-Pythia size ('0.1m', '0.3m', '1m', '3m', '10m', '30m') for a given vocabulary."""
    shape = mini_shape(name)
    return gpt_neox_config(shape.layers, shape.d_model, shape.heads, vocab_size=vocab_size, context=context)


def build_model(config, seed: int | None = None, device: str | torch.device = "cpu"):
    """A freshly initialised GPTNeoXForCausalLM in fp32 (weights are seeded when `seed` is given)."""
    from transformers import GPTNeoXForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config)
    return model.to(device=device, dtype=torch.float32)
