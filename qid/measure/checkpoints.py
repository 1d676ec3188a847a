"""Checkpoints to measure: a local Hugging Face model folder or a hub id at a revision, with its metadata.

Every checkpoint carries what the scaling laws need: N, the non-embedding parameter count (computed from
the loaded model, never typed), D, the training tokens (step × tokens-per-step, or the suite's own
metadata), the family and the step.

A checkpoint is named by one string:

* a local folder: ``runs/suite/model-3m/step-2000`` (anything that exists on disk, or that starts with
  ``/``, ``.`` or ``~``, is treated as a folder; a missing folder is an error, never a hub lookup);
* a hub id with an optional revision: ``EleutherAI/pythia-160m-deduped@step143000``.

or by a mapping (in a sweep YAML) with keys ``model`` and optionally ``revision``, ``family``, ``step``,
``tokens``, ``tokens_per_step``, ``name``.

Local folders written by the book's own training code carry a metadata JSON beside the weights (see
`METADATA_FILENAMES`); its keys ``family``, ``step``, ``tokens``/``training_tokens`` and
``tokens_per_step`` are used when present.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from qid.measure.hub_requests import is_timeout, limit_hub_requests, timeout_message

# Pythia: every checkpoint step is 1024 sequences × 2048 tokens (Biderman et al. 2023).
PYTHIA_TOKENS_PER_STEP = 2_097_152
# Tokens per optimizer step of the suites we know; a checkpoint of another family needs `tokens` or
# `tokens_per_step` in its spec or metadata file.
TOKENS_PER_STEP = {"pythia": PYTHIA_TOKENS_PER_STEP}
# Files in a local checkpoint folder that may hold the suite's metadata (first found wins).
METADATA_FILENAMES = ("qid_metadata.json", "metadata.json", "training_metadata.json")
# Files that hold a tokenizer's vocabulary (fast, BPE, SentencePiece and WordPiece). Without one,
# transformers silently builds a 2-token fallback tokenizer and every loss is wrong.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.txt")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_STEP_IN_NAME = re.compile(r"step[-_]?(\d+)")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as given; the message names the checkpoint."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A local model folder that does not exist or holds no model."""


@dataclass(frozen=True)
class CheckpointSpec:
    """What a user asked for; metadata not given here is filled in when the checkpoint is loaded."""

    model: str  # local folder or hub id
    revision: str | None = None  # hub revision (branch, tag or commit); None for local folders
    family: str | None = None
    step: int | None = None
    tokens: float | None = None  # D, training tokens seen by this checkpoint
    tokens_per_step: int | None = None
    name: str | None = None  # the label written to the `checkpoint` column

    @property
    def label(self) -> str:
        """The checkpoint's identity in result tables: `name` when given, else the resolved absolute folder (so
        'runs/x', './runs/x/', 'runs//x' and a symlink to it are one checkpoint), else 'id@revision' ('main'
        when no revision is given: the branch a hub download without revision gets)."""
        if self.name:
            return self.name
        if self.is_local:
            return str(Path(os.path.abspath(os.path.expanduser(self.model))).resolve())
        return f"{self.model}@{self.revision or 'main'}"

    @property
    def is_local(self) -> bool:
        return is_local_reference(self.model)


@dataclass
class CheckpointInfo:
    """A loaded checkpoint's metadata: what goes into every row measured on it."""

    checkpoint: str
    family: str
    step: int | None
    N: int  # non-embedding parameters
    D: float | None  # training tokens; None when unknown
    total_parameters: int
    context_length: int | None
    extra: dict = field(default_factory=dict)


def is_local_reference(model: str) -> bool:
    """A folder when it exists, or when it cannot be a hub id ('org/name')."""
    text = str(model)
    if os.path.exists(os.path.expanduser(text)):
        return True
    if text.startswith(("/", ".", "~")) or "\\" in text:
        return True
    return not _HUB_ID.match(text)


def parse_checkpoint(item) -> CheckpointSpec:
    """A `CheckpointSpec` from a string ('folder' or 'org/name@revision'), a mapping, or a spec."""
    if isinstance(item, CheckpointSpec):
        return item
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
    if isinstance(item, str):
        text = item.strip()
        if not text:
            raise CheckpointError("checkpoint: an empty string is not a model folder or hub id")
        head, _, revision = text.rpartition("@")
        if head and not os.path.exists(os.path.expanduser(text)) and _HUB_ID.match(head):
            return CheckpointSpec(model=head, revision=revision or None)
        return CheckpointSpec(model=text)
    if isinstance(item, dict):
        known = {"model", "revision", "family", "step", "tokens", "tokens_per_step", "name"}
        unknown = sorted(set(item) - known)
        if unknown:
            raise CheckpointError(f"checkpoint {item!r}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        if "model" not in item or not str(item["model"]).strip():
            raise CheckpointError(f"checkpoint {item!r}: needs a 'model' (local folder or hub id)")
        spec = parse_checkpoint(str(item["model"]))
        values = {key: item[key] for key in known - {"model"} if item.get(key) is not None}
        for key, kind in (("step", int), ("tokens_per_step", int), ("tokens", float)):
            if key in values:
                try:
                    if isinstance(values[key], bool):
                        raise ValueError
                    values[key] = kind(values[key])
                except (TypeError, ValueError):
                    raise CheckpointError(f"checkpoint {str(item['model'])[:100]!r}: {key} must be a number, "
                                          f"got {str(values[key])[:40]!r}") from None
        if "revision" in values:
            values["revision"] = str(values["revision"])
        return replace(spec, **values)
    raise CheckpointError(f"checkpoint {item!r}: expected a folder path, 'org/name@revision' or a mapping")


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the token embeddings, position embeddings and the output head (Kaplan et al. 2020).

    Counts every parameter of `model` once (tied weights once) except those of `nn.Embedding` modules and
    of the output embedding (`lm_head`, or whatever `get_output_embeddings()` returns). For GPT-NeoX this
    is L·(12d² + 13d) + 2d: the blocks plus the final layer norm. Works on meta-device models.
    """
    excluded: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            excluded.update(id(parameter) for parameter in module.parameters())
    get_output = getattr(model, "get_output_embeddings", None)
    head = get_output() if callable(get_output) else None
    if head is not None:
        excluded.update(id(parameter) for parameter in head.parameters())
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if id(parameter) in seen or id(parameter) in excluded:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
    return total


def total_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in {id(p): p for p in model.parameters()}.values())


def gpt_neox_non_embedding_formula(layers: int, d_model: int) -> int:
    """N = L·(12d² + 13d) + 2d for GPT-NeoX (Pythia) with the standard 4d MLP and biases."""
    return layers * (12 * d_model**2 + 13 * d_model) + 2 * d_model


def _read_local_metadata(folder: Path) -> dict:
    for filename in METADATA_FILENAMES:
        path = folder / filename
        if path.is_file():
            try:
                metadata = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise CheckpointError(f"{path}: not valid JSON ({error})") from error
            if not isinstance(metadata, dict):
                raise CheckpointError(f"{path}: expected a JSON object of metadata, got a {type(metadata).__name__}")
            return metadata
    return {}


def infer_family(spec: CheckpointSpec, config=None, metadata: dict | None = None) -> str:
    metadata = metadata or {}
    if spec.family:
        return spec.family
    if metadata.get("family"):
        return str(metadata["family"])
    if "pythia" in spec.model.lower():
        return "pythia"
    model_type = getattr(config, "model_type", None)
    return str(model_type) if model_type else "unknown"


def infer_step(spec: CheckpointSpec, metadata: dict | None = None) -> int | None:
    metadata = metadata or {}
    if spec.step is not None:
        return int(spec.step)
    if metadata.get("step") is not None:
        return int(metadata["step"])
    for text in (spec.revision, Path(spec.model).name if spec.is_local else None):
        if text:
            match = _STEP_IN_NAME.search(text)
            if match:
                return int(match.group(1))
    return None


def infer_tokens(spec: CheckpointSpec, family: str, step: int | None, metadata: dict | None = None) -> float | None:
    """D from the spec, else the suite's metadata, else step × tokens-per-step of the family."""
    metadata = metadata or {}
    if spec.tokens is not None:
        return float(spec.tokens)
    for key in ("tokens", "training_tokens", "tokens_seen", "D"):
        if metadata.get(key) is not None:
            return float(metadata[key])
    per_step = spec.tokens_per_step or metadata.get("tokens_per_step") or TOKENS_PER_STEP.get(family.lower())
    if per_step is not None and step is not None:
        return float(step) * float(per_step)
    return None


def _context_length(config) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def local_model_folder(spec: CheckpointSpec) -> Path:
    """The folder of a local checkpoint, checked to be a Hugging Face model folder (it exists and holds config.json)."""
    folder = Path(os.path.expanduser(spec.model))
    if not folder.is_dir():
        what = "is a file, not a model folder" if folder.exists() else "does not exist"
        raise CheckpointNotFoundError(f"checkpoint {spec.label}: model folder {folder} {what}")
    if not (folder / "config.json").is_file():
        raise CheckpointNotFoundError(f"checkpoint {spec.label}: {folder} holds no config.json (not a Hugging Face model folder)")
    return folder


def load_checkpoint(item, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Load a checkpoint's model and tokenizer; return (model, tokenizer, CheckpointInfo).

    The model is put in eval mode on `device` in `dtype`. A local folder must exist and hold a model; a hub
    id is fetched with `from_pretrained(id, revision=...)` (offline, this needs the files in the local
    Hugging Face cache, and the error says so).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = parse_checkpoint(item)
    metadata: dict = {}
    if spec.is_local:
        folder = local_model_folder(spec)
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise CheckpointError(
                f"checkpoint {spec.label}: {folder} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                "save it beside the weights with tokenizer.save_pretrained(folder)")
        metadata = _read_local_metadata(folder)
        source, kwargs = str(folder), {}
    else:
        source, kwargs = spec.model, ({"revision": spec.revision} if spec.revision else {})
        limit_hub_requests()
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as error:  # corrupt or truncated weights raise safetensors', torch's or pickle's own types
        if not spec.is_local and is_timeout(error):
            raise CheckpointError(timeout_message(f"checkpoint {spec.label}")) from error
        where = "local folder" if spec.is_local else "Hugging Face hub (offline here? it needs the files in the local cache)"
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {spec.label}: could not load from the {where}: {detail}") from error
    embedding_rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) < embedding_rows / 2:
        # a fallback tokenizer (or the wrong one) would give a meaningless loss, not an error
        raise CheckpointError(f"checkpoint {spec.label}: its tokenizer has {len(tokenizer)} tokens but the model "
                              f"embeds {embedding_rows}: the tokenizer files are missing or belong to another model")
    model.to(device)
    model.eval()
    family = infer_family(spec, model.config, metadata)
    step = infer_step(spec, metadata)
    info = CheckpointInfo(
        checkpoint=spec.label,
        family=family,
        step=step,
        N=non_embedding_parameters(model),
        D=infer_tokens(spec, family, step, metadata),
        total_parameters=total_parameters(model),
        context_length=_context_length(model.config),
        extra={key: value for key, value in metadata.items() if isinstance(value, (int, float, str))},
    )
    return model, tokenizer, info


def context_length(item) -> int | None:
    """The checkpoint's context length from its config alone (no weights loaded); None when unknown."""
    from transformers import AutoConfig

    spec = parse_checkpoint(item)
    if spec.is_local:
        folder = local_model_folder(spec)
        source, kwargs = str(folder), {}
    else:
        source, kwargs = spec.model, ({"revision": spec.revision} if spec.revision else {})
        limit_hub_requests()
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except Exception as error:
        if not spec.is_local and is_timeout(error):
            raise CheckpointError(timeout_message(f"checkpoint {spec.label}")) from error
        if not isinstance(error, (OSError, ValueError)):
            raise
        where = "local folder" if spec.is_local else "Hugging Face hub (offline here? it needs the files in the local cache)"
        raise CheckpointError(f"checkpoint {spec.label}: could not read its config from the {where}: {str(error).splitlines()[0]}") from error
    return _context_length(config)
