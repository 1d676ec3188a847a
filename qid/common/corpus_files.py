"""Reading the book's committed corpus splits (`data/corpus/{split}.jsonl.gz`, or another edition's folder).

The corpus is built and documented by `qid.suite.corpus`; this ground-floor module only reads the committed
files, so that the measurement wing can take `corpus:eval` as a text source without importing the suite.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from qid.common.paths import DATA_DIR

CORPUS_DIR = DATA_DIR / "corpus"          # the book's corpus (edition 1): chapters 03-06
CORPUS_V2_DIR = DATA_DIR / "corpus_v2"    # issue 19's 10-source edition, its tokenizer in tokenizer/: chapter 07
SPLITS = ("train", "calibration", "eval")


class CorpusError(RuntimeError):
    """The corpus or tokenizer cannot be produced or found; the message says which file or command."""


def split_path(split: str, corpus_dir: str | Path | None = None) -> Path:
    """The committed file of one split: data/corpus/{split}.jsonl.gz (or `corpus_dir`/{split}.jsonl.gz)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return Path(corpus_dir or CORPUS_DIR) / f"{split}.jsonl.gz"


def load_split_documents(split: str, corpus_dir: str | Path | None = None) -> list[dict]:
    """The documents of a split, in file order: dicts with keys id, source, text."""
    path = split_path(split, corpus_dir)
    if not path.is_file():
        raise CorpusError(f"{path}: missing; regenerate the corpus with `python -m qid.suite.corpus`")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
