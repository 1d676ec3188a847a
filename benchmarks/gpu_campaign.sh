#!/usr/bin/env bash
# The GPU campaign as one command, inside an 8-minute budget, its results streamed into OUT_DIR as it goes.
#
#   bash benchmarks/gpu_campaign.sh run     OUT_DIR  # everything, in the foreground (one H200 lease)
#   bash benchmarks/gpu_campaign.sh start   OUT_DIR  # the same, detached (setsid), for a machine reached by short calls
#   bash benchmarks/gpu_campaign.sh status  OUT_DIR  # progress, and copy whatever results exist into OUT_DIR
#   bash benchmarks/gpu_campaign.sh dry-run OUT_DIR  # the same stages on CPU at tiny scale: checks the plumbing
#
# Plan on paper (budget 480 s; CAMPAIGN_BUDGET_S overrides it), in order of value per second:
#   1. speed (cap 110 s): the measured bf16 matmul peak, evaluation tokens/s and fraction of that peak for the
#      Pythia-160M/1B/2.8B shapes, GPTQ seconds and peak memory for the 1B shape, and GPTQ of 3 blocks of the
#      12B shape extrapolated to its 36 (stated as such in the table). Random weights: speed does not depend on
#      training. FLOPs: a 1B eval of 64 windows x 2,048 tokens is ~2.6e14 FLOP, under a second at 50 % of peak.
#   2. train the `gpu` suite preset (cap 200 s): 5 sizes (N 57k-3.4M, 22x the CPU suite's largest), the CPU
#      suite's D/N ladder as far as the 10.2M-token corpus allows within 4 epochs (3.4M: D/N 10, ~3.3 epochs),
#      3 cosine seeds and a WSD run with a decay branch per rung; 541M tokens at 16,384 tokens per step ~ 33k
#      steps. At ~5 ms per step for the small sizes and the 3.4M size's 3.2e15 FLOP at ~100 TFLOP/s, ~200 s.
#      Runs are trained smallest first; a run cut by the cap is resumable and its finished checkpoints count.
#   3. measure (until 40 s before the deadline): RTN/GPTQ/AWQ x 2/3/4/8 bits on every finished checkpoint,
#      cell by cell into a resumable table (a cut leaves every finished row).
#   4. tables (20 s): the tidy tables from whatever was trained and measured, packed into one archive.
# Returned files (at most 8): matmul + speed table, the suite tables archive, stage times, the log.
# Work files (checkpoints) go to $CAMPAIGN_WORK (default /tmp/qid-campaign), never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: gpu_campaign.sh run|start|status|dry-run OUT_DIR}
out=${2:?usage: gpu_campaign.sh run|start|status|dry-run OUT_DIR}
work=${CAMPAIGN_WORK:-/tmp/qid-campaign}
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && python=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

case "$mode" in
  run)     preset=gpu;  device=cuda; bench_flags=(--device cuda); cpu_flags=() ;;
  # one torch thread on the CPU: on a shared 2-core machine two multi-threaded runs oversubscribe the cores and a
  # minute of training took over 8 (measured beside a second test suite)
  dry-run) preset=tiny; device=cpu;  bench_flags=(--device cpu --quick); cpu_flags=(--threads 1) ;;
  start)
    mkdir -p "$out" "$work"
    setsid nohup bash "$0" run "$out" >"$work/campaign.log" 2>&1 < /dev/null &
    echo "campaign started (pid $!); log: $work/campaign.log"
    exit 0 ;;
  status)
    mkdir -p "$out"
    tail -n 5 "$work/campaign.log" 2>/dev/null || echo "no campaign log in $work"
    [ -f "$work/stage" ] && echo "stage: $(cat "$work/stage")"
    for file in "$work"/out/*; do [ -f "$file" ] && cp "$file" "$out/"; done
    ls -la "$out"
    exit 0 ;;
  *) echo "unknown mode $mode: use run, start, status or dry-run" >&2; exit 2 ;;
esac
mkdir -p "$out" "$work/out"

budget=${CAMPAIGN_BUDGET_S:-480}
started=$(date +%s)
deadline=$((started + budget))
left() { echo $((deadline - $(date +%s))); }
times="$work/out/stage_times.csv"
echo "stage,seconds,exit_status" > "$times"
publish() { for file in "$work"/out/*; do [ -f "$file" ] && cp "$file" "$out/"; done; }
# stage NAME CAP COMMAND...: run with a wall-clock cap (never past the deadline), record its time, publish results.
stage() {
  local name=$1 cap=$2; shift 2
  local remaining; remaining=$(left)
  (( cap > remaining )) && cap=$remaining
  echo "$name" > "$work/stage"
  echo "== [$(date -u +%H:%M:%S)] $name (cap ${cap}s, ${remaining}s left)"
  local began=$SECONDS status=0
  if (( cap > 5 )); then timeout --kill-after=10 "$cap" "$@" || status=$?; else status=124; fi
  echo "$name,$((SECONDS - began)),$status" >> "$times"
  publish
  return 0
}

if [ "$device" = cuda ]; then
  "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use dry-run on CPU')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

# The dry run checks the plumbing on a CPU, often a shared one: its caps leave room for a loaded machine (a tiny
# suite took over 240 s beside two test suites); the GPU caps are the 8-minute plan.
if [ "$mode" = dry-run ]; then caps=(300 900 900 300); else caps=(110 200 480 40); fi
stage "1/4 speed ($device)" "${caps[0]}" \
  "$python" benchmarks/bench_measure.py "${bench_flags[@]}" --parts throughput --output-dir "$work/out"
stage "2/4 train the $preset suite ($device)" "${caps[1]}" \
  "$python" -m qid train-suite --preset "$preset" --device "$device" "${cpu_flags[@]}" --runs-dir "$work/runs" --no-progress
# measurement leaves 40 s for the tables
measure_cap=$(( $(left) - 40 ))
(( measure_cap > caps[2] )) && measure_cap=${caps[2]}
stage "3/4 measure QiD ($device)" "$measure_cap" \
  "$python" -m qid measure-suite --preset "$preset" --device "$device" "${cpu_flags[@]}" --runs-dir "$work/runs" --shard 1/1 --no-progress
stage "4/4 tables" "${caps[3]}" \
  "$python" -m qid measure-suite --preset "$preset" --runs-dir "$work/runs" --tables --output-dir "$work/tables"
if compgen -G "$work/tables/*" > /dev/null; then
  tar -C "$work/tables" -czf "$work/out/${preset}_tables.tar.gz" .
fi
cp "$work/campaign.log" "$work/out/" 2>/dev/null || true
publish
echo "done" > "$work/stage"
echo "== [$(date -u +%H:%M:%S)] done in $(( $(date +%s) - started )) s"
ls -la "$out"
