"""Evaluation windows, per-window losses, paired QiD with its standard error, and text sources."""

import math
import os

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from qid.measure import textsource
from qid.measure.evaluate import evaluation_windows, paired_qid, predicted_tokens, window_losses
from qid.suite.models import gpt_neox_config


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=97, context=32)).eval()


def test_windows_are_fixed_by_the_seed_non_overlapping_and_cover_the_request():
    stream = torch.arange(10_000)
    windows = evaluation_windows(stream, 32, 1000, seed=3)
    assert windows.shape == (math.ceil(1000 / 31), 32)
    assert predicted_tokens(windows) >= 1000
    assert torch.equal(windows, evaluation_windows(stream, 32, 1000, seed=3))
    assert not torch.equal(windows, evaluation_windows(stream, 32, 1000, seed=4))
    starts = windows[:, 0]
    assert torch.all(starts % 32 == 0) and torch.all(starts[1:] > starts[:-1])  # aligned, distinct, ordered
    assert torch.equal(windows, starts[:, None] + torch.arange(32))  # contiguous text


def test_too_many_eval_tokens_says_how_many_there_are():
    with pytest.raises(ValueError, match="only 3 "):
        evaluation_windows(torch.arange(100), 32, 1000, seed=0)
    with pytest.raises(ValueError, match="window length"):
        evaluation_windows(torch.arange(100), 1, 10, seed=0)
    with pytest.raises(ValueError, match="eval_tokens"):
        evaluation_windows(torch.arange(100), 8, 0, seed=0)


def test_window_losses_are_the_model_cross_entropy_and_do_not_depend_on_batching(tiny_model):
    windows = torch.randint(0, 97, (6, 32), generator=torch.Generator().manual_seed(1))
    losses = window_losses(tiny_model, windows, batch_size=4)
    assert losses.dtype == torch.float64 and losses.shape == (6,)
    with torch.no_grad():
        reference = [float(tiny_model(input_ids=w[None], labels=w[None]).loss) for w in windows]
    assert losses.tolist() == pytest.approx(reference, rel=1e-5)
    assert torch.allclose(losses, window_losses(tiny_model, windows, batch_size=1), rtol=1e-6, atol=1e-7)
    # an untrained model over 97 tokens is close to uniform
    assert abs(float(losses.mean()) - math.log(97)) < 0.3


def test_paired_qid_and_its_standard_error():
    result = paired_qid(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.1, 2.3, 3.2]), tokens_per_window=31)
    assert result.qid == pytest.approx(0.2)
    assert result.qid_se == pytest.approx(0.1 / math.sqrt(3))  # SD of (0.1, 0.3, 0.2) is 0.1
    assert (result.loss_16, result.loss_q) == (pytest.approx(2.0), pytest.approx(2.2))
    assert (result.windows, result.eval_tokens) == (3, 93)
    same = paired_qid(torch.tensor([1.0, 5.0]), torch.tensor([1.0, 5.0]))
    assert (same.qid, same.qid_se) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same windows"):
        paired_qid(torch.ones(3), torch.ones(4))


def test_pairing_removes_the_window_difficulty_from_the_error():
    generator = torch.Generator().manual_seed(0)
    difficulty = 3 + torch.randn(200, generator=generator, dtype=torch.float64)  # varies by ±1 nat
    shift = 0.01 + 0.001 * torch.randn(200, generator=generator, dtype=torch.float64)
    result = paired_qid(difficulty, difficulty + shift)
    unpaired_se = math.sqrt(2 * float(difficulty.var()) / 200)
    assert abs(result.qid - 0.01) < 3 * result.qid_se
    assert result.qid_se < unpaired_se / 50


# ------------------------------------------------------------------------------------------- text sources
def test_file_and_folder_sources(tmp_path):
    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second document")
    assert textsource.load_documents(tmp_path / "a.txt") == ["first document"]
    assert textsource.load_documents(str(tmp_path)) == ["first document", "second document"]
    with pytest.raises(textsource.TextSourceNotFoundError, match="no such file"):
        textsource.load_documents(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(textsource.TextSourceError, match="no .txt"):
        textsource.load_documents(tmp_path / "empty")


def test_corpus_sources_and_token_stream():
    from qid.suite.corpus import load_tokenizer

    tokenizer = load_tokenizer()
    documents = textsource.load_documents("corpus:eval")
    assert len(documents) > 10 and all(isinstance(d, str) and d for d in documents)
    stream = textsource.token_stream("corpus:eval", tokenizer)
    assert stream.dtype == torch.long and stream.numel() > 100_000
    assert int((stream == tokenizer.eos_token_id).sum()) == len(documents)  # one separator per document
    with pytest.raises(textsource.TextSourceError, match="unknown corpus split"):
        textsource.load_documents("corpus:test")


def test_calibration_sample_is_seeded():
    stream = torch.arange(5000)
    sample = textsource.sample_calibration(stream, 8, 64, seed=0)
    assert sample.shape == (8, 64)
    assert torch.equal(sample, sample[:, :1] + torch.arange(64))
    assert torch.equal(sample, textsource.sample_calibration(stream, 8, 64, seed=0))
    assert not torch.equal(sample, textsource.sample_calibration(stream, 8, 64, seed=1))
    with pytest.raises(ValueError, match="fewer than one sequence"):
        textsource.sample_calibration(torch.arange(10), 1, 64, seed=0)
    with pytest.raises(ValueError, match="calibration samples"):
        textsource.sample_calibration(stream, 0, 64, seed=0)


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="needs HF_HUB_OFFLINE=1 (no network wait)")
def test_named_datasets_offline_fail_with_a_clear_message():
    with pytest.raises(textsource.TextSourceError, match="corpus:eval"):
        textsource.load_documents("wikitext2", role="eval")
