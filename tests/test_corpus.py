"""The committed corpus and tokenizer: splits disjoint by document and deterministic; tokenizer round-trips."""

import json

import numpy as np
import pytest

from qid.suite import corpus
from qid.common.provenance import file_sha256


def test_committed_splits_are_disjoint_by_document_and_cover_every_source():
    ids = {split: [document["id"] for document in corpus.load_split_documents(split)] for split in corpus.SPLITS}
    for split, members in ids.items():
        assert len(members) == len(set(members)), f"duplicate document ids in {split}"
    assert not set(ids["train"]) & set(ids["eval"])
    assert not set(ids["train"]) & set(ids["calibration"])
    assert not set(ids["eval"]) & set(ids["calibration"])
    for split in corpus.SPLITS:
        sources = {document["source"] for document in corpus.load_split_documents(split)}
        assert sources == set(corpus.SOURCES), split


def test_committed_files_match_their_manifest():
    manifest = json.loads((corpus.CORPUS_DIR / "manifest.json").read_text())
    for split in corpus.SPLITS:
        assert file_sha256(corpus.split_path(split)) == manifest["splits"][split]["sha256"]
        assert len(corpus.load_split_documents(split)) == manifest["splits"][split]["documents"]


def test_split_rule_is_deterministic_stratified_and_order_free():
    documents = [{"id": f"{source}/{i}", "source": source, "text": f"text {i}"}
                 for source in ("a", "b") for i in range(100)]
    first = corpus.split_documents(documents)
    second = corpus.split_documents(list(reversed(documents)))
    for split in corpus.SPLITS:
        assert {d["id"] for d in first[split]} == {d["id"] for d in second[split]}
    assert sum(d["source"] == "a" for d in first["eval"]) == 5
    assert sum(d["source"] == "b" for d in first["calibration"]) == 5
    assert len(first["train"]) == 180


def test_committed_split_is_what_the_rule_gives():
    documents = [d for split in corpus.SPLITS for d in corpus.load_split_documents(split)]
    resplit = corpus.split_documents(documents)
    for split in corpus.SPLITS:
        assert [d["id"] for d in resplit[split]] == [d["id"] for d in corpus.load_split_documents(split)]


def test_tokenizer_loads_with_from_pretrained_and_round_trips():
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    for loader in (AutoTokenizer, PreTrainedTokenizerFast):
        tokenizer = loader.from_pretrained(str(corpus.TOKENIZER_DIR))
        assert len(tokenizer) == corpus.DEFAULT_VOCAB_SIZE
        assert tokenizer.eos_token == corpus.END_OF_TEXT and tokenizer.eos_token_id == 0
        text = "Fellow-Citizens of the Senate — café, 1790!\n\nCall me Ishmael."
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert max(ids) < len(tokenizer)


def test_split_tokens_are_cached_and_end_with_end_of_text():
    tokens = corpus.load_split_tokens("calibration")
    assert tokens.dtype == np.uint16 and tokens.size > 100_000
    assert tokens[-1] == 0
    assert (tokens == 0).sum() == len(corpus.load_split_documents("calibration"))
    np.testing.assert_array_equal(tokens, corpus.load_split_tokens("calibration"))


def test_tokenizer_training_is_deterministic(tmp_path):
    first = corpus.train_tokenizer(400, tmp_path / "a", split="calibration")
    second = corpus.train_tokenizer(400, tmp_path / "b", split="calibration")
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    assert len(corpus.load_tokenizer(first)) == 400


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split"):
        corpus.split_path("validation")
    with pytest.raises(ValueError, match="vocab_size"):
        corpus.train_tokenizer(10)
