"""Quantizers: RTN's grid, GPTQ's error feedback, AWQ's scaling, what gets quantized, and QiD on a trained model."""

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from qid.measure import quantize
from qid.measure.evaluate import evaluation_windows, paired_qid, window_losses
from qid.suite.models import gpt_neox_config
from qid.measure.quantize import (
    HessianAccumulator,
    QuantizationError,
    QuantizerUnavailable,
    awq_quantize,
    gptq_quantize,
    quantizable_linears,
    quantize_model,
    rtn_quantize,
)


def _grid_weight(rows, columns, bits, group_size, generator):
    """Weights that lie exactly on an asymmetric grid: (q − z)·s with every group using levels 0 and 2^b − 1."""
    maxq = 2**bits - 1
    group = columns if group_size == -1 else group_size
    q = torch.randint(0, maxq + 1, (rows, columns), generator=generator)
    q[:, ::group] = 0
    q[:, 1::group] = maxq
    groups = columns // group
    scale = 2.0 ** torch.randint(-8, -2, (rows, groups), generator=generator).float()  # exact in binary
    zero = torch.randint(0, maxq + 1, (rows, groups), generator=generator).float()
    return ((q.float() - zero.repeat_interleave(group, 1)) * scale.repeat_interleave(group, 1))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("group_size", [-1, 16])
def test_rtn_maps_representable_weights_to_themselves(bits, group_size):
    weight = _grid_weight(12, 64, bits, group_size, torch.Generator().manual_seed(bits))
    assert torch.equal(rtn_quantize(weight, bits, group_size), weight)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_rtn_uses_at_most_two_to_the_bits_levels_per_group(bits):
    weight = torch.randn(16, 96, generator=torch.Generator().manual_seed(0))
    quantized = rtn_quantize(weight, bits, group_size=32)
    for row in range(16):
        for start in range(0, 96, 32):
            levels = quantized[row, start : start + 32].unique().numel()
            assert 2 <= levels <= 2**bits
    errors = [float((rtn_quantize(weight, b, 32) - weight).pow(2).mean()) for b in (2, 3, 4, 8)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-4
    assert float((rtn_quantize(weight, 2, 16) - weight).pow(2).mean()) < errors[0]  # smaller groups, finer grids


def _correlated_inputs(samples, features, generator):
    """Inputs whose features are strongly correlated (a few latent factors), as activations are."""
    latent = torch.randn(samples, 8, generator=generator)
    mixing = torch.randn(8, features, generator=generator)
    return latent @ mixing + 0.1 * torch.randn(samples, features, generator=generator)


@pytest.mark.parametrize("bits,group_size,act_order", [(2, -1, False), (3, -1, False), (4, 32, False), (3, 32, True)])
def test_gptq_reconstructs_the_layer_output_better_than_rtn(bits, group_size, act_order):
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(48, 64, generator=generator)
    inputs = _correlated_inputs(2048, 64, generator)
    accumulator = HessianAccumulator(64, "cpu")
    for chunk in inputs.split(500):  # accumulated in pieces, as from calibration batches
        accumulator.add(chunk)
    assert torch.allclose(accumulator.hessian, 2 * inputs.T @ inputs / 2048, rtol=1e-4, atol=1e-3)
    reference = inputs @ weight.T
    rtn_error = float((inputs @ rtn_quantize(weight, bits, group_size).T - reference).norm())
    gptq_weight = gptq_quantize(weight, accumulator.hessian, bits, group_size, act_order=act_order)
    gptq_error = float((inputs @ gptq_weight.T - reference).norm())
    assert gptq_error < 0.7 * rtn_error
    # still a grid of at most 2^b levels per row (per-channel)
    if group_size == -1:
        assert max(gptq_weight[row].unique().numel() for row in range(48)) <= 2**bits


def test_gptq_with_uncorrelated_inputs_is_rtn():
    """With a diagonal Hessian there is nothing to compensate: GPTQ must reduce exactly to RTN."""
    weight = torch.randn(8, 64, generator=torch.Generator().manual_seed(2))
    hessian = torch.diag(torch.rand(64, generator=torch.Generator().manual_seed(3)) + 0.5)
    for group_size in (-1, 16):
        assert torch.equal(gptq_quantize(weight, hessian, 3, group_size), rtn_quantize(weight, 3, group_size))


def test_awq_protects_salient_input_channels():
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(32, 64, generator=generator)
    scale = torch.ones(64)
    scale[:4] = 30.0  # a few input channels carry large activations
    calibration = torch.randn(1024, 64, generator=generator) * scale
    held_out = torch.randn(1024, 64, generator=generator) * scale
    mean_absolute = calibration.abs().mean(0)
    awq_weight, alpha = awq_quantize(weight, mean_absolute, calibration, bits=3, group_size=-1)
    reference = held_out @ weight.T
    rtn_error = float((held_out @ rtn_quantize(weight, 3, -1).T - reference).norm())
    awq_error = float((held_out @ awq_weight.T - reference).norm())
    assert alpha > 0 and awq_error < 0.8 * rtn_error


# ------------------------------------------------------------------------------------------------ models
@pytest.fixture()
def random_model():
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=128, context=32)).eval()


def test_only_the_linear_layers_of_the_blocks_are_quantized(random_model):
    names = set(quantizable_linears(random_model))
    assert names and all(name.startswith("gpt_neox.layers.") for name in names)
    assert len(names) == 2 * 4  # query_key_value, dense, dense_h_to_4h, dense_4h_to_h per block
    before = {name: p.detach().clone() for name, p in random_model.named_parameters()}
    calibration = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    for method in ("rtn", "gptq", "awq"):
        quantize_model(random_model, method, 2, group_size=32, calibration=calibration)
        for name, parameter in random_model.named_parameters():
            changed = not torch.equal(parameter, before[name])
            inside = name.removesuffix(".weight") in names and name.endswith(".weight")
            assert changed == inside, f"{method}: {name} changed={changed}"
        quantize.restore_weights(random_model, {n: before[n + ".weight"] for n in names})
    assert "lm_head" not in " ".join(names) and "embed_in" not in " ".join(names)


def test_sixteen_bits_leaves_the_model_unchanged(random_model):
    before = [p.detach().clone() for p in random_model.parameters()]
    for method in ("rtn", "gptq", "awq", "bnb"):
        report = quantize_model(random_model, method, 16, calibration=torch.zeros(2, 8, dtype=torch.long))
        assert report.layers_quantized == 0
    assert all(torch.equal(a, b) for a, b in zip(before, random_model.parameters()))


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="fp6", bits=4), "unknown quantization method"),
    (dict(method="rtn", bits=1), "bits must be an integer from 2 to 16"),
    (dict(method="rtn", bits=17), "bits must be an integer from 2 to 16"),
    (dict(method="rtn", bits=2.5), "bits must be an integer"),
    (dict(method="rtn", bits=4, group_size=0), "group_size"),
    (dict(method="gptq", bits=4), "needs calibration"),
    (dict(method="bnb", bits=3), "4 bits only"),
])
def test_bad_requests_are_one_clear_error(random_model, kwargs, message):
    with pytest.raises(QuantizationError, match=message):
        quantize_model(random_model, **kwargs)


def test_bitsandbytes_runs_or_says_why(random_model):
    before = random_model.gpt_neox.layers[0].mlp.dense_h_to_4h.weight.detach().clone()
    try:
        import bitsandbytes  # noqa: F401
    except Exception:
        with pytest.raises(QuantizerUnavailable, match="bitsandbytes"):
            quantize_model(random_model, "bnb", 4, group_size=64)
    else:
        quantize_model(random_model, "bnb", 4, group_size=64)
        after = random_model.gpt_neox.layers[0].mlp.dense_h_to_4h.weight
        assert not torch.equal(before, after) and after.unique().numel() <= 16 * after.numel() // 64


# --------------------------------------------------------------------------------------- trained model
TRAINING = dict(steps=200, size="0.1m", batch_size=16, seq_len=64, max_lr=5e-3, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 0.1M-parameter GPT-NeoX trained on the corpus by qid.suite.train, with windows and a calibration sample."""
    from qid.measure import textsource
    from qid.measure.checkpoints import load_checkpoint
    from qid.suite.train import train_small_model

    folder = train_small_model(tmp_path_factory.mktemp("trained"), **TRAINING)
    model, tokenizer, _ = load_checkpoint(folder)
    # 32k predicted tokens: at 0.1M parameters the 3- and 4-bit QiDs differ by ~2e-4 nats, which 8k tokens
    # cannot order reliably (measured: RTN 3 vs 4 bits came out tied at 8k tokens, ordered at 16k and 32k).
    windows = evaluation_windows(textsource.token_stream("corpus:eval", tokenizer), 64, 32_768, seed=0)
    stream = textsource.token_stream("corpus:calibration", tokenizer, role="calibration")
    calibration = textsource.sample_calibration(stream, 32, 64, seed=0)
    return model, windows, calibration


def test_qid_grows_as_bits_fall_and_gptq_beats_rtn_at_low_bits(trained):
    model, windows, calibration = trained
    snapshot = quantize.snapshot_weights(model)
    losses_16 = window_losses(model, windows, batch_size=32)
    qid = {}
    for method in ("rtn", "gptq"):
        for bits in (2, 3, 4, 8):
            quantize_model(model, method, bits, group_size=-1, calibration=calibration)
            qid[method, bits] = paired_qid(losses_16, window_losses(model, windows, batch_size=32))
            quantize.restore_weights(model, snapshot)
    for method in ("rtn", "gptq"):
        q = {bits: qid[method, bits].qid for bits in (2, 3, 4, 8)}
        se = {bits: qid[method, bits].qid_se for bits in (2, 3, 4, 8)}
        # 2 > 3 > 4 bits beyond the noise; at 4 and 8 bits a well-calibrated GPTQ sits within noise of zero,
        # so those two are only required to lie below 3 bits and within 3 SE of each other's order
        assert q[2] > q[3] + 2 * se[3] and q[3] > q[4] + 2 * se[4], f"{method}: {q}"
        assert q[8] < q[3] and q[8] <= q[4] + 3 * (se[4] + se[8]), f"{method}: {q}"
        # 2 bits is far above the window-sampling noise
        assert qid[method, 2].qid > 3 * qid[method, 2].qid_se
    for bits in (2, 3):
        assert qid["gptq", bits].qid <= qid["rtn", bits].qid, {k: v.qid for k, v in qid.items()}
    assert torch.equal(window_losses(model, windows, batch_size=32), losses_16)  # restored exactly
