"""Device and precision choices shared by training, evaluation and quantization.

The book runs on a laptop CPU (fp32, deterministic) and on a reader's CUDA GPU (bf16 autocast). Every
module asks here instead of deciding on its own, so a chapter's `DEVICE` parameter means the same thing
everywhere.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(device: str | None = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU. An explicit 'cuda' without a GPU is an error, not a fallback."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available on this machine; use 'cpu' or 'auto'")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:i]'") from error


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (as the paper's 16-bit baseline), fp32 on CPU (bf16 matmuls on CPU are slow and inexact)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on CPU so CPU results stay fp32 and deterministic."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_description(device: torch.device) -> str:
    """'cpu', or 'cuda (<GPU name>)': what a result row records as its device."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def seed_everything(seed: int) -> None:
    """Fix every random generator the book uses (Python, NumPy, torch CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
