"""Training: schedule shapes, determinism, exact resume, metadata, checkpoints loadable with from_pretrained."""

import json
import math

import pytest
import torch

from qid.suite import train as training
from qid.suite.corpus import load_tokenizer
from qid.suite.train import TrainConfig, learning_rate

TINY = dict(size="0.1m", batch_size=4, seq_len=32, max_lr=3e-3, warmup_steps=2, eval_sequences=4, log_every=2)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_cosine_warms_up_then_decays_to_the_minimum():
    kwargs = dict(schedule="cosine", total_steps=100, warmup_steps=10, max_lr=1.0, min_lr_ratio=0.1)
    rates = [learning_rate(s, **kwargs) for s in range(1, 101)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] == pytest.approx(0.1)
    assert learning_rate(55, **kwargs) == pytest.approx(0.55)  # half-way: (max + min) / 2


def test_wsd_is_flat_in_the_stable_phase_then_decays_linearly():
    kwargs = dict(schedule="wsd", total_steps=100, warmup_steps=10, max_lr=1.0, min_lr_ratio=0.1, decay_steps=20)
    assert {learning_rate(s, **kwargs) for s in range(10, 81)} == {1.0}
    assert learning_rate(90, **kwargs) == pytest.approx(0.55)
    assert learning_rate(100, **kwargs) == pytest.approx(0.1)
    constant = dict(kwargs, schedule="constant")
    assert all(learning_rate(s, **constant) == learning_rate(s, **kwargs) for s in range(1, 81))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear").validate()
    with pytest.raises(ValueError, match="decay_steps"):
        TrainConfig(schedule="wsd", decay_steps=0).validate()
    with pytest.raises(ValueError, match="size"):
        TrainConfig(size="7b").validate()
    with pytest.raises(ValueError, match="checkpoint_steps"):
        TrainConfig(steps=10, warmup_steps=1, checkpoint_steps=(20,)).validate()


def test_batches_are_a_function_of_seed_and_step():
    import numpy as np

    tokens = np.arange(10_000, dtype=np.uint16)
    a = training.BatchSampler(tokens, 4, 32, seed=1)
    b = training.BatchSampler(tokens, 4, 32, seed=1)
    for step in (5, 1, 300, 5):
        assert torch.equal(a.batch(step)[0], b.batch(step)[0])
    inputs, targets = a.batch(3)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    assert not torch.equal(a.batch(1)[0], training.BatchSampler(tokens, 4, 32, seed=2).batch(1)[0])


def test_training_is_deterministic_and_resume_equals_uninterrupted(tmp_path):
    straight = training.train(tmp_path / "straight", TrainConfig(steps=8, checkpoint_steps=(4,), **TINY), progress=False)
    again = training.train(tmp_path / "again", TrainConfig(steps=8, checkpoint_steps=(4,), **TINY), progress=False)
    for name, tensor in _weights(straight).items():
        assert torch.equal(tensor, _weights(again)[name]), name

    # Interrupt at step 4 (stop_after), then resume; "last" keeps only the newest optimizer state.
    resumed_dir = tmp_path / "resumed"
    interrupted = TrainConfig(steps=8, checkpoint_steps=(4,), keep_training_state="last", **TINY)
    stopped = training.train(resumed_dir, interrupted, progress=False, stop_after=4)
    assert stopped.name == "step-000004" and (stopped / training.STATE_FILE).is_file()
    assert not (resumed_dir / "step-000008").exists()
    resumed = training.train(resumed_dir, interrupted, progress=False)
    assert not (stopped / training.STATE_FILE).exists()
    for name, tensor in _weights(straight).items():
        assert torch.equal(tensor, _weights(resumed)[name]), name
    log_straight = training.read_train_log(tmp_path / "straight")
    log_resumed = training.read_train_log(resumed_dir)
    assert log_straight["train_loss"].tolist() == log_resumed["train_loss"].tolist()

    # A folder of another run is refused, not silently mixed.
    with pytest.raises(training.TrainingError, match="different run"):
        training.train(resumed_dir, TrainConfig(steps=8, checkpoint_steps=(4,), **dict(TINY, seed=1)), progress=False)
    with pytest.raises(ValueError, match="stop_after"):
        training.train(tmp_path / "x", TrainConfig(steps=8, checkpoint_steps=(4,), **TINY), stop_after=5)


def test_metadata_and_from_pretrained(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qid.measure.checkpoints import non_embedding_parameters

    folder = training.train_small_model(tmp_path / "small", steps=6, checkpoint_steps=(3,))
    metadata = json.loads((folder / training.METADATA_FILE).read_text())
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(folder))
    assert metadata["N"] == non_embedding_parameters(model) == 100_096
    assert metadata["step"] == 6 and metadata["tokens"] == 6 * 8 * 64
    assert metadata["seed"] == 0 and metadata["schedule"] == "cosine" and metadata["seq_len"] == 64
    assert math.isfinite(metadata["eval_loss"]) and metadata["eval_loss"] < math.log(len(load_tokenizer())) + 0.5
    assert model.config.use_parallel_residual and not model.config.tie_word_embeddings
    assert [p.name for p in training.list_checkpoints(tmp_path / "small")] == ["step-000003", "step-000006"]
    # keep_training_state="last": only the final checkpoint keeps the optimizer state
    assert not (tmp_path / "small" / "step-000003" / training.STATE_FILE).exists()


def test_wsd_branch_from_constant_run_equals_a_wsd_run(tmp_path):
    wsd = dict(TINY, schedule="wsd", decay_steps=3)
    full = training.train(tmp_path / "wsd", TrainConfig(steps=8, **wsd), progress=False)
    constant = TrainConfig(steps=8, checkpoint_steps=(5,), **dict(TINY, schedule="constant"))
    training.train(tmp_path / "constant", constant, progress=False)
    branch = training.train(tmp_path / "branch",
                            TrainConfig(steps=8, init_from=str(tmp_path / "constant" / "step-000005"), **wsd),
                            progress=False)
    for name, tensor in _weights(full).items():
        assert torch.equal(tensor, _weights(branch)[name]), name
    assert training.read_metadata(branch)["branched_from"].endswith("step-000005")


def test_an_interrupted_wsd_branch_writes_what_an_uninterrupted_one_writes(tmp_path):
    """Issue 22: a killed and resumed decay branch must write the same checkpoint metadata as an uninterrupted
    one, except the fields it names as run facts (times, commit, machine)."""
    wsd = dict(TINY, schedule="wsd", decay_steps=4)
    constant = TrainConfig(steps=10, checkpoint_steps=(4,), **dict(TINY, schedule="constant"))
    training.train(tmp_path / "constant", constant, progress=False)
    branch = TrainConfig(steps=10, checkpoint_steps=(6, 8), init_from=str(tmp_path / "constant" / "step-000004"),
                         run="decay-branch", **wsd)
    straight = training.train(tmp_path / "straight", branch, progress=False)
    training.train(tmp_path / "resumed", branch, progress=False, stop_after=6)   # killed after its first checkpoint
    training.train(tmp_path / "resumed", branch, progress=False, stop_after=8)   # ... and again after its second
    resumed = training.train(tmp_path / "resumed", branch, progress=False)
    for step in (6, 8, 10):
        a = training.read_metadata(straight.parent / f"step-{step:06d}")
        b = training.read_metadata(resumed.parent / f"step-{step:06d}")
        assert a["run_facts"] == list(training.RUN_FACTS)
        assert set(a) == set(b)
        differing = {key for key in a if a[key] != b[key]}
        assert differing <= set(training.RUN_FACTS), differing - set(training.RUN_FACTS)
        assert "branched_from" not in differing and a["branched_from"].endswith("step-000004")
    for name, tensor in _weights(straight).items():
        assert torch.equal(tensor, _weights(resumed)[name]), name
