"""Quantization-aware training (qid.suite.qat): the measurement package's quantizer in the forward pass, the STE,
16 bits = the plain trainer bit for bit, exact resume, and a folder of another precision refused."""

import copy

import pytest
import torch

from qid.measure import intgrid
from qid.measure.quantize import quantize_model
from qid.suite import qat
from qid.suite import train as training
from qid.suite.models import build_model, mini_config
from qid.suite.train import TrainConfig

TINY = dict(size="L4-13k", batch_size=2, seq_len=32, max_lr=3e-3, warmup_steps=2, eval_sequences=2, log_every=2,
            steps=6)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def model_and_inputs():
    model = build_model(mini_config("L4-29k", vocab_size=64, context=32), seed=0)
    inputs = torch.randint(0, 64, (3, 32), generator=torch.Generator().manual_seed(0))
    return model, inputs


def test_weight_only_qat_forward_is_the_measurement_packages_per_channel_rtn(model_and_inputs):
    model, inputs = model_and_inputs
    for bits in (3, 4, 8):
        installed = qat.install(model, qat.TrainingPrecision(weights=bits))
        with torch.no_grad():
            trained = model(input_ids=inputs).logits
        installed.remove()
        reference = copy.deepcopy(model)
        quantize_model(reference, "rtn", bits, group_size=intgrid.PER_CHANNEL)
        with torch.no_grad():
            expected = reference(input_ids=inputs).logits
        assert torch.equal(trained, expected), bits
    assert qat.rtn_quantize is intgrid.rtn_quantize and qat.grid_parameters is intgrid.grid_parameters


def test_every_tensor_is_quantized_only_below_16_bits_and_remove_restores_the_model(model_and_inputs):
    model, inputs = model_and_inputs
    with torch.no_grad():
        before = model(input_ids=inputs).logits
    for precision, changes in [((16, 16, 16), False), ((4, 16, 16), True), ((16, 4, 16), True), ((16, 16, 4), True)]:
        installed = qat.install(model, qat.TrainingPrecision(*precision))
        with torch.no_grad():
            during = model(input_ids=inputs).logits
        installed.remove()
        with torch.no_grad():
            after = model(input_ids=inputs).logits
        assert (not torch.equal(during, before)) == changes, precision
        assert torch.equal(after, before) and model.config._attn_implementation == "sdpa"


def test_straight_through_gradients_reach_the_master_weights(model_and_inputs):
    model, inputs = model_and_inputs
    model = copy.deepcopy(model)
    installed = qat.install(model, qat.TrainingPrecision(3, 4, 4))
    logits = model(input_ids=inputs).logits
    torch.nn.functional.cross_entropy(logits.reshape(-1, 64), inputs.roll(-1, 1).reshape(-1)).backward()
    installed.remove()
    for name, module in [("qkv", model.gpt_neox.layers[0].attention.query_key_value),
                         ("mlp", model.gpt_neox.layers[-1].mlp.dense_4h_to_h)]:
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0, name
    # the STE's backward is the identity: the gradient of sum(fake_quantize(x)) is all ones
    x = torch.randn(5, 7, requires_grad=True)
    qat.fake_quantize_rows(x, 3).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_bad_bits_are_named():
    with pytest.raises(ValueError, match="weights"):
        qat.TrainingPrecision(weights=1)
    with pytest.raises(ValueError, match="kv_cache"):
        qat.TrainingPrecision(kv_cache=17)
    with pytest.raises(ValueError, match="activations"):
        TrainConfig(activation_bits=2.5).validate()


def test_a_16_bit_run_is_the_plain_trainer_bit_for_bit_and_4_bits_is_not(tmp_path):
    plain = training.train(tmp_path / "plain", TrainConfig(**TINY), progress=False)
    sixteen = training.train(tmp_path / "sixteen", TrainConfig(**TINY, weight_bits=16, activation_bits=16, kv_bits=16),
                             progress=False)
    four = training.train(tmp_path / "four", TrainConfig(**TINY, weight_bits=4), progress=False)
    a, b, c = _weights(plain), _weights(sixteen), _weights(four)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)
    plain_meta, four_meta = training.read_metadata(plain), training.read_metadata(four)
    assert plain_meta["identity"] == training.read_metadata(sixteen)["identity"]
    assert "weight_bits" not in plain_meta["identity"] and four_meta["identity"]["weight_bits"] == 4
    assert (four_meta["P_w"], four_meta["P_a"], four_meta["P_kv"]) == (4, 16, 16)


def test_a_qat_run_resumes_exactly_and_refuses_a_folder_of_another_precision(tmp_path):
    config = TrainConfig(**dict(TINY, checkpoint_steps=(3,)), weight_bits=4, activation_bits=8, kv_bits=4)
    whole = training.train(tmp_path / "whole", config, progress=False)
    training.train(tmp_path / "resumed", config, progress=False, stop_after=3)
    resumed = training.train(tmp_path / "resumed", config, progress=False)
    a, b = _weights(whole), _weights(resumed)
    assert all(torch.equal(a[key], b[key]) for key in a)
    with pytest.raises(training.TrainingError, match="weight_bits"):
        training.train(tmp_path / "whole", TrainConfig(**dict(TINY, checkpoint_steps=(3,)), weight_bits=8), progress=False)
