"""The suite's measurement additions: stratified windows, KL and top-1 agreement, calibration seeds as cells,
AWQ's layer groups and clipping search, and the n-gram baselines."""

import json

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from qid.measure import evaluate, quantize, sweep

from qid.suite import ngram
from qid.suite.corpus import load_tokenizer
from qid.suite.models import gpt_neox_config
from qid.measure.sweep import SweepSpec, run_sweep


def test_stratified_windows_take_one_window_from_each_equal_stratum():
    stream = torch.arange(128 * 1000)
    windows = evaluate.evaluation_windows(stream, 128, 50 * 127, seed=1)
    index = windows[:, 0] // 128  # position of each window on the grid of 1,000
    assert len(index) == 50 and torch.all(index[1:] > index[:-1])
    assert torch.equal(index // 20, torch.arange(50))  # exactly one in each block of 20 grid windows
    assert not torch.equal(windows, evaluate.evaluation_windows(stream, 128, 50 * 127, seed=2))
    every = evaluate.evaluation_windows(stream, 128, 1000 * 127, seed=0)
    assert torch.equal(every, evaluate.all_windows(stream, 128))  # asking for all gives the whole split


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=97, context=32)).eval()


def test_kl_and_top1_are_zero_and_one_against_itself_and_losses_match_plain_evaluation(tiny_model):
    windows = torch.randint(0, 97, (12, 32), generator=torch.Generator().manual_seed(0))
    reference, losses_16 = evaluate.reference_log_probs(tiny_model, windows, batch_size=5)
    assert torch.equal(losses_16, evaluate.window_losses(tiny_model, windows, batch_size=5))
    losses, kl, top1 = evaluate.window_divergence(tiny_model, windows, reference, batch_size=5)
    assert torch.allclose(losses, evaluate.window_losses(tiny_model, windows, batch_size=5), rtol=1e-9, atol=1e-12)
    assert float(kl.abs().max()) < 1e-6 and bool(torch.all(top1 == 1.0))
    snapshot = quantize.snapshot_weights(tiny_model)
    quantize.quantize_model(tiny_model, "rtn", 2, group_size=-1)
    _, kl_q, top1_q = evaluate.window_divergence(tiny_model, windows, reference, batch_size=5)
    quantize.restore_weights(tiny_model, snapshot)
    assert float(kl_q.min()) > 0 and float(top1_q.mean()) < 1.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tokenizer = load_tokenizer()
    folder = tmp_path_factory.mktemp("model") / "step-000100"
    torch.manual_seed(0)
    GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=len(tokenizer), context=32)).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "qid_metadata.json").write_text(json.dumps({"family": "test", "step": 100, "tokens": 51_200}))
    return str(folder)


def test_calibration_seeds_are_separate_cells_with_their_own_rows_and_window_losses(checkpoint, tmp_path):
    spec = SweepSpec(checkpoints=[checkpoint], methods=["rtn", "gptq"], bits=[2], group_sizes=[-1], eval_tokens=310,
                     eval_window=32, calibration_samples=4, calibration_length=32, calibration_seeds=[0, 1, 2],
                     device="cpu", batch_size=8)
    windows_file = tmp_path / "windows.jsonl"
    summary = run_sweep(spec, tmp_path / "qid.csv", progress=False, window_losses=windows_file)
    assert summary["written"] == 1 + 3  # RTN has no calibration sample: one cell
    table = sweep.load_results(tmp_path / "qid.csv")
    gptq = table[table["method"] == "gptq"].sort_values("calib_seed")
    assert list(gptq["calib_seed"]) == [0, 1, 2]
    assert gptq["qid"].nunique() == 3  # different samples, different quantized models
    assert table["kl"].gt(0).all() and table["top1_agree"].between(0, 1).all()
    lines = [json.loads(line) for line in windows_file.read_text().splitlines()]
    assert [line["method"] for line in lines] == ["none", "rtn", "gptq", "gptq", "gptq"]
    assert all(len(line["windows"]) == 10 for line in lines)
    losses_16 = np.array(lines[0]["windows"])
    rtn = np.array(lines[1]["windows"])
    assert np.isclose((rtn - losses_16).mean(), table.loc[table["method"] == "rtn", "qid"].iloc[0], rtol=1e-9)
    # resuming with seed 0 only finds every cell done
    assert run_sweep(SweepSpec(**{**spec.__dict__, "calibration_seeds": [0]}), tmp_path / "qid.csv",
                     progress=False)["written"] == 0


def test_awq_clipping_never_worsens_the_output_error_and_unscaled_layers_keep_alpha_zero():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(24, 64, generator=generator)
    weight[:, 3] *= 8  # an outlier input channel
    inputs = torch.randn(256, 64, generator=generator) * torch.linspace(0.1, 3, 64)
    reference = inputs @ weight.T

    def error(w):
        return float(((inputs @ w.T - reference) ** 2).mean())

    plain = quantize.rtn_quantize(weight, 3, -1)
    clipped = quantize.rtn_quantize(quantize.awq_clip(weight, inputs, 3, -1), 3, -1)
    assert error(clipped) <= error(plain)
    unscaled, alpha = quantize.awq_quantize(weight, inputs.abs().mean(0), inputs, 3, -1, scale=False)
    assert alpha == 0.0 and error(unscaled) <= error(plain) + 1e-12
    scaled, _ = quantize.awq_quantize(weight, inputs.abs().mean(0), inputs, 3, -1)
    assert error(scaled) <= error(unscaled) + 1e-12


def test_awq_on_gpt_neox_leaves_attention_dense_unscaled(tiny_model):
    snapshot = quantize.snapshot_weights(tiny_model)
    calibration = torch.randint(0, 97, (4, 32), generator=torch.Generator().manual_seed(1))
    report = quantize.quantize_model(tiny_model, "awq", 3, group_size=-1, calibration=calibration)
    quantize.restore_weights(tiny_model, snapshot)
    dense = [value for key, value in report.details.items() if key.endswith("attention.dense.alpha")]
    assert dense and all(value == 0.0 for value in dense)
    assert any(key.endswith("query_key_value.alpha") for key in report.details)


def test_ngram_models_are_normalised_and_ordered_on_held_out_text():
    generator = np.random.default_rng(0)
    # a Markov chain with strong bigram structure over 20 symbols
    transition = generator.dirichlet(np.full(20, 0.2), size=20)
    tokens = [0]
    for _ in range(20_000):
        tokens.append(generator.choice(20, p=transition[tokens[-1]]))
    tokens = np.array(tokens)
    counts = ngram.NgramCounts(tokens[:15_000], 20)
    lambda2, lambda3 = ngram.tune_lambdas(counts, tokens[15_000:17_500])
    u, v, w = ngram._positions(tokens[17_500:])
    losses = {name: values.mean() for name, values in ngram.losses(counts, u, v, w, lambda2, lambda3).items()}
    assert losses["unigram"] > losses["bigram"] + 0.3 and losses["trigram"] <= losses["bigram"] + 0.02
    everything = np.arange(20)
    for name, values in ngram.losses(counts, np.full(20, 3), np.full(20, 5), everything, lambda2, lambda3).items():
        assert np.isclose(np.exp(-values).sum(), 1.0), name  # a distribution over the next token
