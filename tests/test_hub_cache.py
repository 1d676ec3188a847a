"""The hub path for real, offline: `org/name@revision` checkpoints and the named text sources (`wikitext2`,
`refinedweb`) are loaded from a Hugging Face cache built in a temporary folder, with HF_HUB_OFFLINE=1.

The model cache has the layout `huggingface_hub` writes (`models--ORG--NAME/refs/<revision>` holding a
commit hash, `snapshots/<hash>/` holding the files); two revisions hold different tiny GPT-NeoX models.
The datasets cache has the layout `datasets` writes after a first online `load_dataset` and reads back
offline (`<name>/<config>/0.0.0/<hash>/` with `dataset_info.json` and one Arrow file per split), built with
`datasets`' own Parquet builder from small made-up texts. Each check runs `python -m qid` in a subprocess,
because `huggingface_hub` and `datasets` read their cache locations when first imported.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from qid.measure.checkpoints import PYTHIA_TOKENS_PER_STEP
from qid.suite.corpus import load_tokenizer
from qid.suite.models import gpt_neox_config

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB_MODEL = "qid-test/pythia-tiny"  # 'pythia' in the name: the family whose tokens-per-step the loader knows
REVISIONS = {"step1000": "a1" * 20, "step2000": "b2" * 20}  # revision -> commit hash (40 hex digits)
TIMING_COLUMNS = ("seconds", "quantize_seconds", "finished_at")


def _write_model_cache(hub_cache: Path) -> dict:
    """Two revisions of HUB_MODEL, seeded differently; returns revision -> snapshot folder."""
    tokenizer = load_tokenizer()
    repository = hub_cache / ("models--" + HUB_MODEL.replace("/", "--"))
    (repository / "refs").mkdir(parents=True)
    snapshots = {}
    for seed, (revision, commit) in enumerate(REVISIONS.items()):
        snapshot = repository / "snapshots" / commit
        torch.manual_seed(seed)
        GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=len(tokenizer), context=32)).save_pretrained(str(snapshot))
        tokenizer.save_pretrained(str(snapshot))
        (repository / "refs" / revision).write_text(commit)
        snapshots[revision] = snapshot
    return snapshots


def _write_dataset_cache(datasets_cache: Path, scratch: Path) -> None:
    """WikiText-2 (train/test) and RefinedWeb (one train split) as `datasets` caches them, from made-up text."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.packaged_modules.parquet.parquet import Parquet

    def prepare(dataset_name, cache_name, config_name, field, splits):
        files = {}
        for split, texts in splits.items():
            files[split] = str(scratch / f"{cache_name}-{split}.parquet")
            pq.write_table(pa.table({field: texts}), files[split])
        builder = Parquet(cache_dir=str(datasets_cache), dataset_name=dataset_name, config_name=config_name,
                          data_files=files, hash="0123456789abcdef")
        builder.download_and_prepare()
        # A builder given data files names its folder '<config>-<hash of the files>'; a hub download names it
        # '<config>' and the dataset folder 'org___name': rename to what the offline reader looks for.
        built = datasets_cache / dataset_name
        (config_folder,) = built.glob(f"{config_name}-*")
        config_folder.rename(built / config_name)
        if cache_name != dataset_name:
            built.rename(datasets_cache / cache_name)

    words = "the of and quantization a model loss tokens scaling law bits weight".split()
    line = lambda split, i: f"{split} record {i}: " + " ".join(words[(i * 7 + k) % len(words)] for k in range(12))
    prepare("wikitext", "wikitext", "wikitext-2-raw-v1", "text",
            {split: [line(split, i) for i in range(300)] for split in ("train", "test")})
    prepare("falcon-refinedweb", "tiiuae___falcon-refinedweb", "default", "content",
            {"train": [f"web document {i}: " + line("web", i) for i in range(12_100)]})


@pytest.fixture(scope="module")
def offline_cache(tmp_path_factory):
    """(environment for subprocesses, revision -> snapshot folder)."""
    root = tmp_path_factory.mktemp("hf_home")
    snapshots = _write_model_cache(root / "hub")
    _write_dataset_cache(root / "datasets", tmp_path_factory.mktemp("parquet"))
    environment = {**os.environ, "HF_HOME": str(root), "HF_HUB_CACHE": str(root / "hub"),
                   "HF_DATASETS_CACHE": str(root / "datasets"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return environment, snapshots


def _qid(environment, *arguments):
    return subprocess.run([sys.executable, "-m", "qid", *arguments], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=1800)  # a hang guard that holds at load 8


def _rows(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


MEASURE = ["measure", "--methods", "rtn", "--bits", "4", "--group-size", "-1", "--eval-tokens", "300",
           "--device", "cpu", "--no-progress"]


def test_hub_revisions_load_from_the_offline_cache(offline_cache, tmp_path):
    environment, snapshots = offline_cache
    output = tmp_path / "hub.csv"
    hub = [f"{HUB_MODEL}@{revision}" for revision in REVISIONS]
    result = _qid(environment, *MEASURE, "--checkpoints", *hub, "--output", str(output))
    assert result.returncode == 0, result.stderr
    rows = {row["checkpoint"]: row for row in _rows(output)}
    assert sorted(rows) == sorted(hub)
    for revision in REVISIONS:
        row = rows[f"{HUB_MODEL}@{revision}"]
        step = int(revision.removeprefix("step"))
        assert (row["family"], int(row["step"]), float(row["D"])) == ("pythia", step, step * PYTHIA_TOKENS_PER_STEP)
    first, second = (rows[f"{HUB_MODEL}@{revision}"] for revision in REVISIONS)
    assert first["loss_16"] != second["loss_16"] and first["qid"] != second["qid"]

    # Each row is the measurement of its own snapshot: the same cells on the snapshot folders give the same numbers.
    local_output = tmp_path / "local.csv"
    result = _qid(environment, *MEASURE, "--checkpoints", *map(str, snapshots.values()), "--output", str(local_output))
    assert result.returncode == 0, result.stderr
    local = {Path(row["checkpoint"]).name: row for row in _rows(local_output)}
    for revision, snapshot in snapshots.items():
        hub_row, local_row = rows[f"{HUB_MODEL}@{revision}"], local[snapshot.name]
        for column in ("N", "loss_16", "loss_q", "qid", "qid_se", "eval_windows"):
            assert hub_row[column] == local_row[column], (revision, column)


def test_a_revision_missing_from_the_offline_cache_is_one_clear_line(offline_cache, tmp_path):
    environment, _ = offline_cache
    result = _qid(environment, *MEASURE, "--checkpoints", f"{HUB_MODEL}@step3000", "--output", str(tmp_path / "x.csv"))
    assert result.returncode == 2
    assert f"{HUB_MODEL}@step3000" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_named_text_sources_load_from_the_offline_datasets_cache(offline_cache):
    environment, _ = offline_cache
    script = (
        "import json; from qid.measure import textsource as t; "
        "print(json.dumps({f'{name}/{role}': t.load_documents(name, role) "
        "for name in ('wikitext2', 'refinedweb') for role in ('eval', 'calibration')}))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=environment, capture_output=True,
                            text=True, timeout=1800)  # a hang guard that holds at load 8
    assert result.returncode == 0, result.stderr
    documents = json.loads(result.stdout.splitlines()[-1])
    # WikiText: the whole split joined into one document (test for evaluation, train for calibration).
    assert len(documents["wikitext2/eval"]) == len(documents["wikitext2/calibration"]) == 1
    assert documents["wikitext2/eval"][0].startswith("test record 0:")
    assert documents["wikitext2/calibration"][0].startswith("train record 0:")
    assert documents["wikitext2/eval"][0].count("\n\n") == 299
    # RefinedWeb: disjoint slices of its one split, streamed (records 10000-11999 evaluate, 0-1999 calibrate).
    evaluation, calibration = documents["refinedweb/eval"], documents["refinedweb/calibration"]
    assert len(evaluation) == len(calibration) == 2000
    assert evaluation[0].startswith("web document 10000:") and evaluation[-1].startswith("web document 11999:")
    assert calibration[0].startswith("web document 0:") and calibration[-1].startswith("web document 1999:")


def test_measure_on_named_text_sources_offline(offline_cache, tmp_path):
    environment, _ = offline_cache
    output = tmp_path / "named.csv"
    result = _qid(environment, "measure", "--checkpoints", f"{HUB_MODEL}@step1000", "--methods", "gptq", "--bits", "3",
                  "--group-size", "-1", "--eval-tokens", "300", "--eval-source", "wikitext2", "--calibration-source",
                  "refinedweb", "--calibration-samples", "4", "--device", "cpu", "--no-progress", "--output", str(output))
    assert result.returncode == 0, result.stderr
    (row,) = _rows(output)
    assert (row["eval_source"], row["calibration_source"], row["method"]) == ("wikitext2", "refinedweb", "gptq")
    assert float(row["loss_16"]) > 0 and float(row["qid_se"]) >= 0


def test_a_named_source_missing_from_the_offline_cache_is_one_clear_line(tmp_path):
    environment = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"),
                   "HF_DATASETS_CACHE": str(tmp_path / "datasets"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", "from qid.measure import textsource; textsource.load_documents('wikitext2')"],
                            cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=1800)  # a hang guard that holds at load 8
    assert result.returncode != 0
    assert "text source 'wikitext2'" in result.stderr and "corpus:eval" in result.stderr
