"""Seeded, resumable training of GPT-NeoX models on the book's corpus, saving Hugging Face checkpoints.

One run = one model size, one learning-rate schedule, one seed. It writes, under its output folder:

* ``step-NNNNNN/``: a Hugging Face checkpoint (config, safetensors weights, the tokenizer) plus
  ``qid_metadata.json`` (N, tokens seen, step, schedule, seed, lr, batch, sequence length, losses, ...;
  read by `qid.measure.checkpoints.load_checkpoint`) and ``training_state.pt`` (optimizer state, so the run
  resumes exactly from its last checkpoint);
* ``train_log.csv``: training loss every `log_every` steps and held-out loss at every checkpoint.

Determinism: the batch of step s is a pure function of (seed, s) — the train split is cut into windows of
`seq_len` tokens, shuffled per epoch by a generator seeded with (seed, epoch) — and the models have no
dropout, so on CPU (fp32) a run is bit-for-bit reproducible and a resumed run equals an uninterrupted one.
On CUDA the forward pass runs under bf16 autocast (`qid.common.runtime.autocast`) with fp32 master weights.

Schedules (`learning_rate`): linear warmup, then ``cosine`` to `min_lr_ratio`·max (Pythia), ``constant``,
or ``wsd`` (warmup-stable-decay: constant, then a linear decay to `min_lr_ratio`·max over the last
`decay_steps`). A WSD decay branch is a run with ``init_from`` set to a checkpoint of the constant run:
up to the branch point both schedules are identical, so it equals a WSD run annealed at that step.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from qid.suite import corpus

from qid.common import runtime
from qid.suite import qat
from qid.suite.models import build_model, mini_config, mini_shape

SCHEDULES = ("cosine", "constant", "wsd")
METADATA_FILE = "qid_metadata.json"
STATE_FILE = "training_state.pt"
LOG_FILE = "train_log.csv"
FAMILY = "mini-pythia"
# Fields of a checkpoint's metadata that describe the execution, not the result: an interrupted and resumed run
# writes other values here (and only here) than an uninterrupted one. Each metadata file lists them as `run_facts`.
RUN_FACTS = ("train_wall_s", "tokens_per_second", "saved_utc", "commit", "machine", "packages")
LOG_COLUMNS = ("step", "tokens", "lr", "train_loss", "eval_loss")


class TrainingError(RuntimeError):
    """A run that cannot start or resume as asked; the message names the folder or the setting."""


@dataclass
class TrainConfig:
    size: str = "0.1m"                 # a key of qid.suite.models.MINI_SHAPES
    steps: int = 200                   # optimizer steps of this run; the schedule ends here
    batch_size: int = 16               # sequences per optimizer step
    seq_len: int = 256                 # tokens per sequence (Pythia: 2048)
    max_lr: float = 2e-3               # peak learning rate
    min_lr_ratio: float = 0.1          # final lr / peak lr (Pythia: 0.1)
    warmup_steps: int = 20             # linear warmup from 0
    schedule: str = "cosine"           # cosine | constant | wsd
    decay_steps: int = 0               # wsd only: length of the final linear decay, in steps
    weight_decay: float = 0.01         # AdamW, on matrices only (not biases or LayerNorm); Pythia 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0             # global gradient-norm clip
    seed: int = 0                      # initialisation and data order
    checkpoint_steps: tuple[int, ...] = ()  # steps to save at; the last step is always saved
    eval_sequences: int = 32           # held-out sequences scored at each checkpoint
    log_every: int = 10                # steps per training-loss log row
    device: str = "cpu"                # auto | cpu | cuda
    init_from: str | None = None       # checkpoint folder to branch from (WSD decay); training starts at its step
    run: str = ""                      # run name recorded in metadata
    design: str = ""                   # suite design recorded in metadata (cosine / annealed / wsd)
    keep_training_state: str = "all"   # all | last: which checkpoints keep the optimizer state
    weight_bits: int = 16              # quantization-aware training (qid.suite.qat): forward-pass bits of the weights,
    activation_bits: int = 16          # ... of the block layers' inputs,
    kv_bits: int = 16                  # ... of the KV cache; 16 = not quantized (the plain trainer)
    corpus_dir: str = ""               # corpus edition's folder (qid.common.corpus_files); "" = the book's data/corpus
    extra: dict = field(default_factory=dict)  # free-form metadata copied into every checkpoint

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def precision(self) -> qat.TrainingPrecision:
        return qat.TrainingPrecision(self.weight_bits, self.activation_bits, self.kv_bits)

    def validate(self) -> None:
        mini_shape(self.size)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        for name in ("steps", "batch_size", "seq_len", "eval_sequences", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r}: must be a positive integer")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps}: must be in [0, steps={self.steps})")
        if self.schedule == "wsd" and not 0 < self.decay_steps <= self.steps - self.warmup_steps:
            raise ValueError(f"decay_steps={self.decay_steps}: wsd needs 0 < decay_steps ≤ steps − warmup_steps")
        if not (self.max_lr > 0 and 0 <= self.min_lr_ratio <= 1):
            raise ValueError(f"max_lr={self.max_lr}, min_lr_ratio={self.min_lr_ratio}: need max_lr > 0, 0 ≤ ratio ≤ 1")
        bad = [s for s in self.checkpoint_steps if not 1 <= s <= self.steps]
        if bad:
            raise ValueError(f"checkpoint_steps {bad} outside 1..steps={self.steps}")
        if self.keep_training_state not in ("all", "last"):
            raise ValueError(f"keep_training_state={self.keep_training_state!r}: use 'all' or 'last'")
        self.precision  # validates the bits (2-16)

    def identity(self) -> dict:
        """The settings that must match for a folder's checkpoints to be resumed by this config."""
        keys = ("size", "steps", "batch_size", "seq_len", "max_lr", "min_lr_ratio", "warmup_steps", "schedule",
                "decay_steps", "weight_decay", "grad_clip", "seed")
        identity = {key: getattr(self, key) for key in keys}
        if not self.precision.is_full:  # only then: plain runs keep the identity their checkpoints were saved with
            identity.update(weight_bits=self.weight_bits, activation_bits=self.activation_bits, kv_bits=self.kv_bits)
        if self.corpus_dir:  # likewise: only another edition enters the identity
            identity["corpus_dir"] = Path(self.corpus_dir).name
        return identity


# ------------------------------------------------------------------------------------------- schedules
def learning_rate(step: int, *, schedule: str, total_steps: int, warmup_steps: int, max_lr: float,
                  min_lr_ratio: float = 0.1, decay_steps: int = 0) -> float:
    """Learning rate of optimizer step `step` (1-based: the update that produces checkpoint `step`)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}: use one of {', '.join(SCHEDULES)}")
    min_lr = min_lr_ratio * max_lr
    if warmup_steps > 0 and step <= warmup_steps:
        return max_lr * step / warmup_steps
    if schedule == "constant":
        return max_lr
    if schedule == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    decay_start = total_steps - decay_steps
    if step <= decay_start:
        return max_lr
    progress = min(1.0, (step - decay_start) / max(1, decay_steps))
    return max_lr - (max_lr - min_lr) * progress


def config_learning_rate(config: TrainConfig, step: int) -> float:
    return learning_rate(step, schedule=config.schedule, total_steps=config.steps, warmup_steps=config.warmup_steps,
                         max_lr=config.max_lr, min_lr_ratio=config.min_lr_ratio, decay_steps=config.decay_steps)


# ------------------------------------------------------------------------------------------------ data
class BatchSampler:
    """Batch of step s = a pure function of (seed, s): per-epoch seeded permutations of seq_len windows."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int):
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.windows = (len(tokens) - 1) // seq_len
        if self.windows < batch_size:
            raise TrainingError(f"train split has {len(tokens)} tokens: fewer than one batch of {batch_size}×{seq_len}")
        self._permutations: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            self._permutations = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.windows)}
        return self._permutations[epoch]

    def epochs_at(self, step: int) -> float:
        return step * self.batch_size / self.windows

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets for optimizer step `step` (1-based), each batch_size × seq_len."""
        indices = range((step - 1) * self.batch_size, step * self.batch_size)
        starts = [int(self._permutation(i // self.windows)[i % self.windows]) * self.seq_len for i in indices]
        rows = torch.stack([self.tokens[start:start + self.seq_len + 1] for start in starts])
        return rows[:, :-1], rows[:, 1:]


def eval_windows(tokens: np.ndarray, sequences: int, seq_len: int) -> torch.Tensor:
    """`sequences` evenly spaced windows of seq_len + 1 tokens from a split (fixed, no randomness)."""
    available = (len(tokens) - 1) // seq_len
    chosen = np.linspace(0, available - 1, num=min(sequences, available)).astype(int)
    data = torch.from_numpy(tokens.astype(np.int64))
    return torch.stack([data[i * seq_len:i * seq_len + seq_len + 1] for i in chosen])


def causal_lm_loss(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=inputs).logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


@torch.no_grad()
def held_out_loss(model, windows: torch.Tensor, device: torch.device, batch_size: int = 16) -> float:
    """Mean next-token cross-entropy (nats/token) on fixed held-out windows."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        rows = windows[start:start + batch_size].to(device)
        with runtime.autocast(device):
            loss = causal_lm_loss(model, rows[:, :-1], rows[:, 1:])
        total += float(loss) * rows[:, 1:].numel()
        count += rows[:, 1:].numel()
    model.train(was_training)
    return total / count


# ---------------------------------------------------------------------------------------- checkpoints
def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"step-{step:06d}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders (with metadata) of a run, by step."""
    folders = [p for p in Path(output_dir).glob("step-*") if (p / METADATA_FILE).is_file()]
    return sorted(folders, key=lambda p: int(p.name.split("-")[1]))


def read_metadata(folder: str | Path) -> dict:
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise TrainingError(f"{path}: missing; {folder} is not a checkpoint written by qid.suite.train")
    return json.loads(path.read_text())


def _optimizer(model, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.max_lr, betas=tuple(config.betas), eps=1e-8,
    )


def _save_checkpoint(output_dir: Path, step: int, model, tokenizer, optimizer, metadata: dict, log_rows: list[dict],
                     keep_state: bool) -> Path:
    target = checkpoint_dir(output_dir, step)
    temporary = output_dir / f".tmp-step-{step:06d}"
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(str(temporary))
    tokenizer.save_pretrained(str(temporary))
    if keep_state:
        torch.save({"optimizer": optimizer.state_dict(), "step": step, "log": log_rows,
                    "wall_s": metadata["train_wall_s"], "torch_rng": torch.get_rng_state()}, temporary / STATE_FILE)
    (temporary / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    temporary.rename(target)
    _write_log(output_dir, log_rows)
    return target


def _write_log(output_dir: Path, rows: list[dict]) -> None:
    path = output_dir / LOG_FILE
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in LOG_COLUMNS})
    temporary.replace(path)


def _resume_point(output_dir: Path, config: TrainConfig) -> Path | None:
    """The last checkpoint of this run that has an optimizer state; checks it belongs to the same config."""
    for folder in reversed(list_checkpoints(output_dir)):
        metadata = read_metadata(folder)
        saved = metadata.get("identity", {})
        mismatched = {k: (saved.get(k), v) for k, v in config.identity().items() if saved.get(k) != _jsonable(v)}
        if mismatched:
            details = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in mismatched.items())
            raise TrainingError(f"{output_dir} holds checkpoints of a different run ({details}); use another folder")
        if (folder / STATE_FILE).is_file():
            return folder
    return None


def _jsonable(value):
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------------------------------------ train
def train(output_dir: str | Path, config: TrainConfig, progress: bool = True, stop_after: int | None = None) -> Path:
    """Train (or resume) one run; returns the folder of its final checkpoint.

    If the final checkpoint already exists, nothing is trained. If earlier checkpoints with optimizer
    state exist, training resumes from the last one and gives the same result as an uninterrupted run.
    stop_after: stop at this checkpoint step (one of `checkpoint_steps`) as if interrupted there, e.g. to
    re-create a run's first checkpoints exactly without training the rest.
    """
    from tqdm.auto import tqdm

    from qid.measure.checkpoints import non_embedding_parameters, total_parameters
    from qid.common.provenance import git_commit, machine_description, package_versions_string, utc_now

    config.validate()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if stop_after is not None and stop_after not in set(config.checkpoint_steps) | {config.steps}:
        raise ValueError(f"stop_after={stop_after}: not a checkpoint step of this run ({sorted(config.checkpoint_steps)})")
    final = checkpoint_dir(output_dir, stop_after or config.steps)
    if (final / METADATA_FILE).is_file():
        _resume_point(output_dir, config)  # still refuse a folder of another run
        return final

    device = runtime.resolve_device(config.device)
    corpus_dir = config.corpus_dir or None
    tokenizer = corpus.load_tokenizer(corpus.tokenizer_dir_of(corpus_dir))
    train_tokens = corpus.load_split_tokens("train", corpus_dir=corpus_dir)
    sampler = BatchSampler(train_tokens, config.batch_size, config.seq_len, config.seed)
    evaluation = eval_windows(corpus.load_split_tokens("eval", corpus_dir=corpus_dir), config.eval_sequences,
                              config.seq_len)

    start_step, log_rows, wall_s, branched_from = 0, [], 0.0, None
    resume = _resume_point(output_dir, config)
    source = resume or (Path(config.init_from) if config.init_from else None)
    if source is None:
        model = build_model(mini_config(config.size, vocab_size=len(tokenizer), context=config.seq_len),
                            seed=config.seed, device=device)
        optimizer = _optimizer(model, config)
    else:
        from transformers import GPTNeoXForCausalLM

        if not (source / STATE_FILE).is_file():
            raise TrainingError(f"{source}/{STATE_FILE}: missing; cannot continue training from {source}")
        # from_pretrained, not load_state_dict: transformers 5 renames keys on save (lm_head <-> embed_out).
        model = GPTNeoXForCausalLM.from_pretrained(str(source), dtype=torch.float32).to(device)
        expected = mini_config(config.size, vocab_size=len(tokenizer), context=config.seq_len)
        if (model.config.hidden_size, model.config.num_hidden_layers) != (expected.hidden_size, expected.num_hidden_layers):
            raise TrainingError(f"{source}: model shape does not match size={config.size!r}")
        optimizer = _optimizer(model, config)
        state = torch.load(source / STATE_FILE, map_location=device, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        if resume is not None:
            log_rows = [row for row in state["log"] if row["step"] <= start_step]
            wall_s = float(state["wall_s"])
            branched_from = read_metadata(resume).get("branched_from")
        else:
            if start_step >= config.steps:
                raise TrainingError(f"init_from={source} is at step {start_step} ≥ steps={config.steps}")
            log_rows = [row for row in state["log"] if row["step"] <= start_step]
            branched_from = str(source)

    qat.install(model, config.precision)  # the QAT hook: nothing is installed at 16/16/16
    n_parameters = non_embedding_parameters(model)
    base_metadata = {
        "family": FAMILY, "size": config.size, "N": n_parameters, "total_parameters": total_parameters(model),
        "vocab_size": len(tokenizer), "tokens_per_step": config.tokens_per_step,
        "batch_size": config.batch_size, "seq_len": config.seq_len, "schedule": config.schedule,
        "max_lr": config.max_lr, "min_lr": config.min_lr_ratio * config.max_lr, "warmup_steps": config.warmup_steps,
        "decay_steps": config.decay_steps, "total_steps": config.steps,
        "weight_decay": config.weight_decay, "betas": list(config.betas), "grad_clip": config.grad_clip,
        "seed": config.seed, "run": config.run or output_dir.name, "design": config.design,
        "device": str(device), "dtype": "bf16-autocast" if device.type == "cuda" else "fp32",
        "train_split_tokens": int(train_tokens.size), "corpus_sha256": corpus_fingerprint(corpus_dir),
        "identity": _jsonable(config.identity()), **config.precision.as_dict(), **config.extra,
    }

    checkpoints = set(config.checkpoint_steps) | {config.steps}
    model.train()
    window_losses: list[float] = []
    trained_tokens_timer = 0.0
    bar = tqdm(total=config.steps, initial=start_step, desc=f"{config.run or output_dir.name}", disable=not progress,
               mininterval=5, unit="step")
    last = None
    for step in range(start_step + 1, (stop_after or config.steps) + 1):
        began = time.perf_counter()
        lr = config_learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = sampler.batch(step)
        inputs, targets = inputs.to(device), targets.to(device)
        with runtime.autocast(device):
            loss = causal_lm_loss(model, inputs, targets)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise TrainingError(f"{output_dir}: loss is {loss_value} at step {step}; lower max_lr={config.max_lr}")
        elapsed = time.perf_counter() - began
        wall_s += elapsed
        trained_tokens_timer += elapsed
        window_losses.append(loss_value)
        bar.update(1)
        if step % config.log_every == 0 or step in checkpoints:
            log_rows.append({"step": step, "tokens": step * config.tokens_per_step, "lr": lr,
                             "train_loss": float(np.mean(window_losses)), "eval_loss": ""})
            window_losses = []
            bar.set_postfix(loss=f"{log_rows[-1]['train_loss']:.3f}", lr=f"{lr:.2e}",
                            tok_s=f"{(step - start_step) * config.tokens_per_step / max(trained_tokens_timer, 1e-9):.0f}")
        if step in checkpoints:
            eval_loss = held_out_loss(model, evaluation, device)
            log_rows[-1]["eval_loss"] = eval_loss
            metadata = {
                **base_metadata, "step": step, "tokens": step * config.tokens_per_step,
                "epochs": sampler.epochs_at(step), "lr": lr, "train_loss": log_rows[-1]["train_loss"],
                "eval_loss": eval_loss, "eval_tokens": int(evaluation[:, 1:].numel()),
                "branched_from": branched_from, "train_wall_s": wall_s,
                "tokens_per_second": (step - start_step) * config.tokens_per_step / max(trained_tokens_timer, 1e-9),
                "commit": git_commit(), "machine": machine_description(), "packages": package_versions_string(),
                "saved_utc": utc_now(), "run_facts": list(RUN_FACTS),
            }
            # every checkpoint is saved resumable; with "last", the previous one's optimizer state is dropped
            last = _save_checkpoint(output_dir, step, model, tokenizer, optimizer, metadata, log_rows, True)
            if config.keep_training_state == "last":
                for folder in list_checkpoints(output_dir):
                    if folder != last and (folder / STATE_FILE).is_file():
                        (folder / STATE_FILE).unlink()
    bar.close()
    return last if last is not None else final


def corpus_fingerprint(corpus_dir=None) -> str:
    """SHA-256 prefixes of the train split and of the tokenizer, as checkpoints record them."""
    from qid.common.provenance import file_sha256

    return (file_sha256(corpus.split_path("train", corpus_dir))[:16] + "/"
            + file_sha256(corpus.tokenizer_dir_of(corpus_dir) / "tokenizer.json")[:16])


def read_train_log(output_dir: str | Path):
    """A run's train_log.csv as a DataFrame (eval_loss NaN between checkpoints)."""
    import pandas as pd

    path = Path(output_dir) / LOG_FILE
    if not path.is_file():
        raise TrainingError(f"{path}: missing; run training first")
    return pd.read_csv(path)


def train_small_model(output_dir: str | Path, *, steps: int = 40, seed: int = 0, device: str = "cpu",
                      size: str = "0.1m", batch_size: int = 8, seq_len: int = 64, max_lr: float = 3e-3,
                      checkpoint_steps: tuple[int, ...] = (), progress: bool = False) -> Path:
    """A tiny GPT-NeoX trained on the committed corpus in seconds; returns its final HF checkpoint folder.

    For tests and quick chapter demos (defaults: 0.1M non-embedding parameters, 40 steps × 8 × 64 tokens).
    Deterministic on CPU: the same arguments give the same weights.
    """
    config = TrainConfig(size=size, steps=steps, batch_size=batch_size, seq_len=seq_len, max_lr=max_lr,
                         warmup_steps=max(1, steps // 10), schedule="cosine", seed=seed, device=device,
                         checkpoint_steps=tuple(checkpoint_steps), eval_sequences=8, log_every=max(1, steps // 10),
                         run=f"small-{size}-seed{seed}", design="small", keep_training_state="last")
    return train(output_dir, config, progress=progress)


def config_from_dict(values: dict) -> TrainConfig:
    """TrainConfig from a mapping (e.g. a YAML suite entry); unknown keys are an error naming them."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}; known: {', '.join(sorted(names))}")
    values = dict(values)
    if "checkpoint_steps" in values:
        values["checkpoint_steps"] = tuple(int(s) for s in values["checkpoint_steps"])
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return TrainConfig(**values)
