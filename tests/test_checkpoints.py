"""Checkpoints: N counted from the model (checked against Pythia's shapes), D from steps or metadata, clear errors."""

import json
import os

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXForCausalLM

from qid.measure import checkpoints
from qid.measure.checkpoints import (
    PYTHIA_TOKENS_PER_STEP,
    CheckpointError,
    CheckpointNotFoundError,
    gpt_neox_non_embedding_formula,
    load_checkpoint,
    non_embedding_parameters,
    parse_checkpoint,
)
from qid.suite.corpus import load_tokenizer
from qid.suite.models import gpt_neox_config, pythia_config

# Non-embedding parameters of the Pythia suite (reference/papers.md, derived from the published shapes).
PYTHIA_N = {
    "70m": 18_915_328, "160m": 85_056_000, "410m": 302_311_424, "1b": 805_736_448,
    "1.4b": 1_208_602_624, "2.8b": 2_517_652_480, "6.9b": 6_444_163_072, "12b": 11_327_027_200,
}


@pytest.mark.parametrize("size", sorted(PYTHIA_N))
def test_non_embedding_count_matches_pythia_on_meta_models(size):
    config = pythia_config(size)
    with torch.device("meta"):
        model = GPTNeoXForCausalLM(config)
    counted = non_embedding_parameters(model)
    assert counted == PYTHIA_N[size]
    assert counted == gpt_neox_non_embedding_formula(config.num_hidden_layers, config.hidden_size)
    # the embeddings and the head are what was left out
    vocabulary_parameters = 2 * config.vocab_size * config.hidden_size
    assert checkpoints.total_parameters(model) - counted == vocabulary_parameters


def test_non_embedding_count_on_a_real_pythia_160m_shaped_model_with_tiny_vocabulary():
    config = pythia_config("160m")
    config.vocab_size = 64
    model = GPTNeoXForCausalLM(config)
    assert non_embedding_parameters(model) == 85_056_000


def test_tied_and_position_embeddings_are_excluded_once():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    assert model.lm_head.weight is model.transformer.wte.weight  # tied
    total = checkpoints.total_parameters(model)
    assert non_embedding_parameters(model) == total - 100 * 32 - 32 * 32


def test_hub_ids_with_revisions_give_pythia_steps_and_tokens():
    spec = parse_checkpoint("EleutherAI/pythia-160m-deduped@step143000")
    assert (spec.model, spec.revision, spec.is_local) == ("EleutherAI/pythia-160m-deduped", "step143000", False)
    family = checkpoints.infer_family(spec)
    step = checkpoints.infer_step(spec)
    assert (family, step) == ("pythia", 143000)
    assert checkpoints.infer_tokens(spec, family, step) == 143000 * 2_097_152 == 299_892_736_000
    assert PYTHIA_TOKENS_PER_STEP == 1024 * 2048


def test_mappings_and_paths_are_parsed():
    spec = parse_checkpoint({"model": "EleutherAI/pythia-1b-deduped", "revision": "step1000", "name": "p1b"})
    assert (spec.label, spec.revision) == ("p1b", "step1000")
    assert parse_checkpoint("./runs/model").is_local and parse_checkpoint("/abs/model").is_local
    assert parse_checkpoint("plainname").is_local  # not org/name: never sent to the hub
    with pytest.raises(CheckpointError, match="unknown key"):
        parse_checkpoint({"model": "a/b", "revsion": "x"})
    with pytest.raises(CheckpointError, match="needs a 'model'"):
        parse_checkpoint({"revision": "step1"})
    with pytest.raises(CheckpointError, match="empty"):
        parse_checkpoint("  ")


def _save_tiny(folder, metadata=None):
    tokenizer = load_tokenizer()
    model = GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=len(tokenizer), context=64))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    if metadata is not None:
        (folder / "qid_metadata.json").write_text(json.dumps(metadata))
    return model


def test_local_folder_metadata_from_the_suite_file(tmp_path):
    folder = tmp_path / "run" / "step-000120"
    _save_tiny(folder, {"family": "mini-pythia", "step": 120, "tokens": 120 * 4096})
    model, tokenizer, info = load_checkpoint(folder)
    assert info.N == gpt_neox_non_embedding_formula(2, 64) == non_embedding_parameters(model)
    assert (info.family, info.step, info.D, info.context_length) == ("mini-pythia", 120, 120 * 4096.0, 64)
    assert not model.training and next(model.parameters()).dtype == torch.float32


def test_local_folder_without_metadata_takes_the_step_from_its_name(tmp_path):
    folder = tmp_path / "step-000300"
    _save_tiny(folder)
    _, _, info = load_checkpoint(str(folder))
    assert info.step == 300
    assert info.family == "gpt_neox" and info.D is None  # unknown tokens per step: not invented
    _, _, info = load_checkpoint({"model": str(folder), "tokens_per_step": 1000, "family": "mine"})
    assert (info.family, info.D) == ("mine", 300_000.0)


def test_missing_or_empty_model_folders_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="config.json"):
        load_checkpoint(tmp_path / "empty")
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="needs HF_HUB_OFFLINE=1 (no network wait)")
def test_unreachable_hub_checkpoint_is_a_clear_error():
    with pytest.raises(CheckpointError, match="hub"):
        load_checkpoint("EleutherAI/pythia-14m-not-cached@step1")
