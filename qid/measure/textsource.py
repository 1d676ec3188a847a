"""Text sources for calibration and evaluation: one interface for named datasets, the book's corpus and files.

A source is named by one string:

* ``corpus:eval``, ``corpus:calibration``, ``corpus:train`` — the book's offline corpus (`qid.suite.corpus`,
  committed under data/corpus/; split by document, so eval text is never trained or calibrated on);
* ``wikitext2`` (WikiText-2 raw, split ``test`` for evaluation, ``train`` for calibration, as in GPTQ
  practice) and ``refinedweb`` (Falcon RefinedWeb, the paper's main evaluation text) — fetched with
  `datasets` on a reader's machine; offline they fail with a clear message;
* a path: a text file, or a folder whose ``*.txt`` files (recursively, sorted) are the documents.

`load_documents` returns a list of document strings; `token_stream` tokenizes them into one stream with
the end-of-text token between documents; `sample_calibration` draws a fixed, seeded sample of N sequences
of length L from a stream.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from qid.measure.hub_requests import is_timeout, limit_hub_requests, timeout_message

# Named datasets: (datasets.load_dataset arguments, text field, split for "calibration", split for "eval").
NAMED_SOURCES = {
    "wikitext2": {"path": "wikitext", "name": "wikitext-2-raw-v1", "field": "text",
                  "splits": {"calibration": "train", "eval": "test", "train": "train", "test": "test"}},
    # RefinedWeb has one (train) split: calibration and eval documents are disjoint slices of a stream.
    "refinedweb": {"path": "tiiuae/falcon-refinedweb", "name": None, "field": "content",
                   "slices": {"calibration": (0, 2_000), "eval": (10_000, 12_000)}},
}
ALIASES = {"wikitext-2": "wikitext2", "wikitext": "wikitext2", "falcon-refinedweb": "refinedweb"}


# The most text one source may hold. Evaluation needs eval_tokens (65,536 by default) and calibration
# 128 × 2048 tokens; tokenizing a whole text file holds ~100 bytes of memory per byte of text at its peak
# (a 200 MB file grew past 23 GB), so a larger file is refused rather than read.
MAX_TEXT_BYTES = 32 * 2**20


class TextSourceError(ValueError):
    """A text source that cannot be read; the message names the source."""


class TextSourceNotFoundError(TextSourceError, FileNotFoundError):
    """A text file or folder that does not exist."""


def describe_sources() -> str:
    return "'corpus:eval', 'corpus:calibration', 'corpus:train', " + ", ".join(repr(n) for n in NAMED_SOURCES) + ", or a path to a .txt file or folder"


def _named_documents(name: str, role: str) -> list[str]:
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - datasets is a requirement
        raise TextSourceError(f"text source {name!r} needs the `datasets` package") from error
    entry = NAMED_SOURCES[name]
    limit_hub_requests()
    try:
        if "splits" in entry:
            split = entry["splits"].get(role, role)
            dataset = datasets.load_dataset(entry["path"], entry["name"], split=split)
            # WikiText is one line per record; articles are joined as in the GPTQ reference code.
            return ["\n\n".join(dataset[entry["field"]])]
        start, stop = entry["slices"].get(role, entry["slices"]["eval"])
        stream = datasets.load_dataset(entry["path"], split="train", streaming=True)
        documents = []
        for index, record in enumerate(stream):
            if index >= stop:
                break
            if index >= start:
                documents.append(record[entry["field"]])
        return documents
    except Exception as error:  # network, hub and cache errors come in many types
        if is_timeout(error):
            raise TextSourceError(timeout_message(f"text source {name!r} ({entry['path']})")) from error
        raise TextSourceError(
            f"text source {name!r} ({entry['path']}) could not be loaded with `datasets` "
            f"(offline machines have no hub access: use 'corpus:{role}' or a text file): {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from error


def load_documents(source: str | os.PathLike, role: str = "eval") -> list[str]:
    """The documents of a text source. `role` ('eval' or 'calibration') picks the split of named datasets."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source.strip():
        raise TextSourceError(f"text source {source!r}: expected {describe_sources()}")
    text = source.strip()
    if text.startswith("corpus:"):
        from qid.common import corpus_files as corpus

        split = text.split(":", 1)[1]
        if split not in corpus.SPLITS:
            raise TextSourceError(f"text source {text!r}: unknown corpus split {split!r}; use one of {', '.join(corpus.SPLITS)}")
        try:
            return [document["text"] for document in corpus.load_split_documents(split)]
        except corpus.CorpusError as error:
            raise TextSourceError(f"text source {text!r}: {error}") from error
    key = ALIASES.get(text.lower(), text.lower())
    if key in NAMED_SOURCES and not os.path.exists(text):
        return _named_documents(key, role)
    path = Path(os.path.expanduser(text))
    if path.is_file():
        _check_size(text, [path])
        return [path.read_text(encoding="utf-8", errors="replace")]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise TextSourceError(f"text source {text!r}: folder holds no .txt files")
        _check_size(text, files)
        return [p.read_text(encoding="utf-8", errors="replace") for p in files]
    raise TextSourceNotFoundError(f"text source {text!r}: no such file or folder (expected {describe_sources()})")


def _check_size(source: str, files: list[Path]) -> None:
    size = sum(path.stat().st_size for path in files)
    if size > MAX_TEXT_BYTES:
        raise TextSourceError(
            f"text source {source!r}: {size / 2**20:.0f} MiB of text, more than the {MAX_TEXT_BYTES // 2**20} MiB a "
            "source may hold (evaluation and calibration need far less): give an excerpt, e.g. `head -c 16M FILE`")


_STREAM_CACHE: dict[tuple, torch.Tensor] = {}


def _tokenizer_key(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return hashlib.sha256(backend.to_str().encode()).hexdigest()
    return f"{type(tokenizer).__name__}:{getattr(tokenizer, 'name_or_path', '')}:{len(tokenizer)}"


def _source_key(source) -> tuple:
    text = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    path = Path(os.path.expanduser(text))
    if path.is_file():
        stat = path.stat()
        return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return (text,)


def token_stream(source, tokenizer, role: str = "eval") -> torch.Tensor:
    """All documents of `source` tokenized with `tokenizer`, joined by its end-of-text token: a 1-D LongTensor.

    Cached in memory per (source, tokenizer), so a sweep over many checkpoints tokenizes once.
    """
    key = (_source_key(source), role, _tokenizer_key(tokenizer))
    if key in _STREAM_CACHE:
        return _STREAM_CACHE[key]
    documents = load_documents(source, role)
    separator = tokenizer.eos_token_id
    parts: list[torch.Tensor] = []
    for document in documents:
        for piece in line_chunks(document):
            ids = tokenizer(piece, add_special_tokens=False, verbose=False)["input_ids"]
            parts.append(torch.tensor(ids, dtype=torch.long))
        if separator is not None:
            parts.append(torch.tensor([separator], dtype=torch.long))
    stream = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    if not stream.numel():
        raise TextSourceError(f"text source {source!r}: no tokens (empty text)")
    _STREAM_CACHE[key] = stream
    return stream


# Tokenizing one string holds ~200 bytes per character at its peak (a 32 MiB file took 6-7 GB); a document longer
# than this is tokenized in pieces cut before a space that joins two words ("word| word"), where byte-level BPE
# tokenizers (GPT-2's, GPT-NeoX's, the book's) split anyway, so the stream is unchanged (tested).
TOKENIZE_CHUNK_CHARS = 1 << 20
_WORD_BREAK = re.compile(r"(?<=[^\s]) (?=[^\W\d_])")  # a single space after a non-space, before a letter


def line_chunks(text: str, size: int | None = None):
    """`text` in pieces of about `size` characters (TOKENIZE_CHUNK_CHARS), each cut before a space between a
    non-space character and a letter; text without such a place stays whole."""
    size = size or TOKENIZE_CHUNK_CHARS
    start = 0
    while len(text) - start > size:
        match = _WORD_BREAK.search(text, start + size)
        if match is None:
            break
        yield text[start : match.start()]
        start = match.start()
    yield text[start:]


def sample_calibration(stream: torch.Tensor, n_samples: int, length: int, seed: int) -> torch.Tensor:
    """A fixed, seeded sample of `n_samples` sequences of `length` tokens at random offsets of `stream`.

    Returns a LongTensor [n_samples, length]. The same (stream, n, length, seed) always gives the same sample.
    """
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"calibration samples must be an integer ≥ 1, got {n_samples!r}")
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"calibration length must be an integer ≥ 2, got {length!r}")
    if stream.numel() <= length:
        raise ValueError(f"calibration text has {stream.numel()} tokens, fewer than one sequence of {length}")
    generator = torch.Generator().manual_seed(int(seed))
    starts = torch.randint(0, stream.numel() - length, (n_samples,), generator=generator)
    return torch.stack([stream[start : start + length] for start in starts.tolist()])
