#!/usr/bin/env bash
# The GPU campaign (issue 6) as one command.
#
#   bash benchmarks/gpu_campaign.sh run    OUT_DIR   # everything, in the foreground
#   bash benchmarks/gpu_campaign.sh start  OUT_DIR   # the same, detached (setsid), for a machine reached by short calls
#   bash benchmarks/gpu_campaign.sh status OUT_DIR   # progress, and copy whatever results exist into OUT_DIR
#   bash benchmarks/gpu_campaign.sh dry-run OUT_DIR  # the same stages on CPU at tiny scale (minutes): checks the plumbing
#
# Stages (each resumable: a rerun skips finished training runs and measured cells):
#   1. train the suite's `gpu` preset (bf16 autocast on CUDA) and measure QiD on every checkpoint
#      (the preset's methods and bits: RTN, GPTQ and AWQ at 2/3/4/8 bits), then write the tidy tables;
#   2. speed: evaluation throughput (fraction of bf16 peak) and GPTQ cost on Pythia-shaped models;
#   3. results: at most 8 small files in OUT_DIR (checkpoints cannot come back; tables and logs can).
#
# Work files (checkpoints) go to $CAMPAIGN_WORK (default /tmp/qid-campaign), never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: gpu_campaign.sh run|start|status|dry-run OUT_DIR}
out=${2:?usage: gpu_campaign.sh run|start|status|dry-run OUT_DIR}
work=${CAMPAIGN_WORK:-/tmp/qid-campaign}
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && python=${PYTHON:-.venv/bin/python}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

case "$mode" in
  run)     preset=gpu;  device=cuda; bench_flags=(--device cuda) ;;
  dry-run) preset=tiny; device=cpu;  bench_flags=(--device cpu --quick) ;;
  start)
    setsid nohup bash "$0" run "$out" >"$work/campaign.log" 2>&1 < /dev/null &
    echo "campaign started (pid $!); log: $work/campaign.log"
    exit 0 ;;
  status)
    tail -n 5 "$work/campaign.log" 2>/dev/null || echo "no campaign log in $work"
    [ -f "$work/stage" ] && echo "stage: $(cat "$work/stage")"
    # Partial results too: the raw sweep grows cell by cell while the tidy tables appear at the end.
    for file in "$work"/tables/* "$work"/bench/*.csv "$work"/runs/*/qid_sweep.csv "$work/campaign.log"; do
      [ -f "$file" ] && cp "$file" "$out/"
    done
    ls -la "$out"
    exit 0 ;;
  *) echo "unknown mode $mode: use run, start, status or dry-run" >&2; exit 2 ;;
esac

stage() { echo "$1" > "$work/stage"; echo "== [$(date -u +%H:%M:%S)] $1"; }

if [ "$device" = cuda ]; then
  "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use dry-run on CPU')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

stage "1/3 train the $preset suite and measure QiD ($device)"
"$python" -m qid train-suite --preset "$preset" --device "$device" --runs-dir "$work/runs" \
  --workers 1 --measure --output-dir "$work/tables" --no-progress

stage "2/3 speed benchmarks ($device)"
"$python" benchmarks/bench_measure.py "${bench_flags[@]}" --parts throughput --output-dir "$work/bench"

stage "3/3 collect results into $out"
cp "$work"/tables/* "$work"/bench/*.csv "$out/"
[ -f "$work/campaign.log" ] && cp "$work/campaign.log" "$out/"
stage "done"
ls -la "$out"
