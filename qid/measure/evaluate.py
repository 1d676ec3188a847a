"""Evaluation: fixed context windows of held-out text, per-window losses, and paired QiD with a standard error.

QiD (ΔqLoss in Ouyang et al. 2024) is the loss of the weight-quantized model minus that of the 16-bit model
on the *same* text. We evaluate both models on the same fixed, seeded set of windows and take the mean of
the per-window differences; its standard error (sample SD of the differences / √windows) tells a reader
whether a measured QiD stands out from the noise of the window sample. Pairing matters: the windows' own
difficulty varies far more than the quantization effect, and it cancels in the differences.

Precision: bf16 autocast on CUDA (the paper's 16-bit baseline), fp32 on CPU (deterministic); the loss
itself is always computed from fp32 log-probabilities.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from qid.common.runtime import autocast


def evaluation_windows(stream: torch.Tensor, window_length: int, eval_tokens: int, seed: int) -> torch.Tensor:
    """A fixed, seeded, stratified set of non-overlapping windows covering at least `eval_tokens` predicted tokens.

    The stream is cut into consecutive windows of `window_length` tokens; each window predicts
    `window_length - 1` tokens (the first token has no context), so W = ⌈eval_tokens / (window_length − 1)⌉
    windows are needed. The grid of windows is divided into W equal strata of consecutive windows and one window
    is drawn from each with a seeded generator: the sample spreads over the whole split in proportion to each
    document's length (documents are contiguous in the stream), which a simple random sample only does on
    average. Returned in stream order as a LongTensor [W, window_length].
    """
    if not isinstance(window_length, int) or window_length < 2:
        raise ValueError(f"window length must be an integer ≥ 2 tokens, got {window_length!r}")
    if not isinstance(eval_tokens, int) or eval_tokens < 1:
        raise ValueError(f"eval_tokens must be an integer ≥ 1, got {eval_tokens!r}")
    available = stream.numel() // window_length
    wanted = math.ceil(eval_tokens / (window_length - 1))
    if wanted > available:
        raise ValueError(
            f"eval_tokens={eval_tokens} needs {wanted} windows of {window_length} tokens but the evaluation text "
            f"has only {available} ({stream.numel()} tokens); ask for at most {available * (window_length - 1)} eval tokens "
            "or use a shorter window"
        )
    generator = torch.Generator().manual_seed(int(seed))
    # stratum s covers [bounds[s], bounds[s+1]), bounds[s] = ⌊s·available/wanted⌋ in exact integer arithmetic
    # (float32 linspace put one boundary off by one in 32 of 3,210 size combinations)
    bounds = torch.arange(wanted + 1, dtype=torch.int64) * available // wanted
    widths = (bounds[1:] - bounds[:-1]).clamp(min=1)
    offsets = (torch.rand(wanted, generator=generator, dtype=torch.float64) * widths).floor().long()
    chosen = torch.minimum(bounds[:-1] + offsets, torch.tensor(available - 1))
    windows = stream[: available * window_length].view(available, window_length)
    return windows[chosen].clone()


def all_windows(stream: torch.Tensor, window_length: int) -> torch.Tensor:
    """Every non-overlapping window of the stream (the whole split), for checking a sample against the split."""
    available = stream.numel() // window_length
    return stream[: available * window_length].view(available, window_length).clone()


def predicted_tokens(windows: torch.Tensor) -> int:
    """Tokens whose loss is averaged: every token of every window but the first."""
    return int(windows.shape[0] * (windows.shape[1] - 1))


@torch.no_grad()
def window_losses(model, windows: torch.Tensor, batch_size: int = 8, progress: bool = False) -> torch.Tensor:
    """Mean token cross-entropy (nats) of each window: a float64 CPU tensor [windows].

    All windows have the same length, so the mean over windows is the mean token cross-entropy.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses = []
    batches = windows.split(batch_size)
    for batch in tqdm(batches, desc="evaluate", unit="batch", disable=not progress, leave=False):
        _, window_loss = _next_token_logits_and_losses(model, batch.to(device))
        losses.append(window_loss)
    model.train(was_training)
    return torch.cat(losses)


def _next_token_logits_and_losses(model, batch: torch.Tensor):
    """fp32 next-token logits [batch, length − 1, vocab] and each window's mean cross-entropy (float64, CPU)."""
    with autocast(batch.device):
        logits = model(input_ids=batch, use_cache=False).logits
    logits = logits[:, :-1].float()
    targets = batch[:, 1:]
    token_losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return logits, token_losses.view(targets.shape).double().mean(dim=1).cpu()


# Reference log-probabilities larger than this are not cached (KL and top-1 agreement are then left out).
REFERENCE_CACHE_BYTES = 1 << 30


def reference_cache_bytes(windows: torch.Tensor, vocab_size: int) -> int:
    return int(windows.shape[0] * (windows.shape[1] - 1) * vocab_size * 4)


@torch.no_grad()
def reference_log_probs(model, windows: torch.Tensor, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The 16-bit model's next-token log-probabilities on every window (float32 CPU [windows, length − 1, vocab])
    and, from the same forward pass, its per-window losses exactly as `window_losses` computes them."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks, losses = [], []
    for batch in windows.split(batch_size):
        logits, window_loss = _next_token_logits_and_losses(model, batch.to(device))
        chunks.append(F.log_softmax(logits, dim=-1).cpu())
        losses.append(window_loss)
    model.train(was_training)
    return torch.cat(chunks), torch.cat(losses)


@torch.no_grad()
def window_divergence(model, windows: torch.Tensor, reference: torch.Tensor, batch_size: int = 8):
    """Per window: mean token cross-entropy (nats), mean KL(p_16 ‖ p_q) (nats per token) and top-1 agreement
    (fraction of tokens where both models' most likely next token is the same). float64 CPU tensors [windows].

    `reference` is `reference_log_probs` of the 16-bit model on the same windows. The cross-entropy is computed
    exactly as `window_losses` does, so QiD from these losses equals the plain evaluation's."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses, divergences, agreements = [], [], []
    for start in range(0, windows.shape[0], batch_size):
        batch = windows[start:start + batch_size].to(device)
        logits, window_loss = _next_token_logits_and_losses(model, batch)
        losses.append(window_loss)
        log_q = F.log_softmax(logits, dim=-1).cpu()
        log_p = reference[start:start + batch.shape[0]]
        kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)  # [batch, length − 1]
        divergences.append(kl.double().mean(dim=1))
        agreements.append((log_p.argmax(dim=-1) == log_q.argmax(dim=-1)).double().mean(dim=1))
    model.train(was_training)
    return torch.cat(losses), torch.cat(divergences), torch.cat(agreements)


@dataclass
class PairedQid:
    """Paired comparison of two models on the same windows (losses in nats per token)."""

    loss_16: float
    loss_q: float
    qid: float  # mean over windows of (loss_q − loss_16)
    qid_se: float  # standard error of that mean: SD of the per-window differences / √windows
    windows: int
    eval_tokens: int  # predicted tokens the losses average over

    def as_dict(self) -> dict:
        return asdict(self)


def paired_qid(losses_16: torch.Tensor, losses_q: torch.Tensor, tokens_per_window: int | None = None) -> PairedQid:
    """QiD and its standard error from per-window losses of the 16-bit and the quantized model."""
    losses_16 = torch.as_tensor(losses_16, dtype=torch.float64).flatten()
    losses_q = torch.as_tensor(losses_q, dtype=torch.float64).flatten()
    if losses_16.shape != losses_q.shape:
        raise ValueError(f"paired QiD needs the same windows: got {losses_16.numel()} and {losses_q.numel()} losses")
    if losses_16.numel() == 0:
        raise ValueError("paired QiD needs at least one window")
    differences = losses_q - losses_16
    n = differences.numel()
    standard_error = float(differences.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return PairedQid(
        loss_16=float(losses_16.mean()),
        loss_q=float(losses_q.mean()),
        qid=float(differences.mean()),
        qid_se=standard_error,
        windows=n,
        eval_tokens=n * tokens_per_window if tokens_per_window else n,
    )
