#!/usr/bin/env bash
# One-command GPU check (issue 16): run it from the repository root on a machine with a CUDA GPU.
#
#   benchmarks/gpu-check.sh [--out DIR] [--repeats N] [--dry-run]
#
# 1. `lrdm bench --preset gpu --compile` for both backbones (ddpm_unet, rddm_unetres), fp32 and bf16: batch 1
#    and 8 (the preset's two cases), eager and torch.compile'd, sampling at 1-10 steps with MFU;
# 2. a 300-step training at the paper's size (256², dim 64, mults 1-2-4-8, the official backbone, batch 1 with
#    gradient accumulation 2) in fp32 and in bf16, on synthetic rain, their losses side by side;
# 3. one Parquet file (DIR/gpu-check.parquet) and a Markdown summary (printed, and DIR/gpu-check.md).
#
# --dry-run prints every command without running it and needs no GPU (it checks the tools it would call).
# Environment: LRDM (default: lrdm), PYTHON (default: python).
set -euo pipefail

OUT=results/gpu-check
REPEATS=3
DRY_RUN=0
LRDM=${LRDM:-lrdm}
PYTHON=${PYTHON:-python}
BACKBONES=(ddpm_unet rddm_unetres)
PRECISIONS=(fp32 bf16)
TRAIN_STEPS=300
declare -A MIXED_PRECISION=([fp32]='"no"' [bf16]=bf16)  # YAML values of the config key (bare no is false)

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

run() {
  printf '+'; printf ' %q' "$@"; printf '\n'  # quoted, so the line can be run again
  if [[ $DRY_RUN -eq 0 ]]; then "$@"; fi
}

# the tools must exist even for a dry run; one Python start finds the GPU
read -r -a LRDM_CMD <<< "$LRDM"
command -v "${LRDM_CMD[0]}" > /dev/null || { echo "gpu-check.sh: $LRDM not found" >&2; exit 1; }
gpu=$("$PYTHON" -c "import lrdm.cli, lrdm.perf.gpu_check, torch
print(torch.cuda.get_device_name() if torch.cuda.is_available() else '')")
if [[ -n $gpu ]]; then
  echo "GPU: $gpu"
elif [[ $DRY_RUN -eq 1 ]]; then
  echo "no CUDA GPU: dry run only, nothing is timed"
else
  echo "gpu-check.sh: no CUDA GPU here; run it on a GPU machine, or pass --dry-run" >&2
  exit 1
fi

began=$SECONDS
run mkdir -p "$OUT"
bench_files=()
for backbone in "${BACKBONES[@]}"; do
  for precision in "${PRECISIONS[@]}"; do
    file="$OUT/bench-$backbone-$precision.parquet"
    run "${LRDM_CMD[@]}" bench --preset gpu --compile --repeats "$REPEATS" --device cuda \
      --backbone "$backbone" --precision "$precision" --out "$file"
    bench_files+=("$file")
  done
done

run "${LRDM_CMD[@]}" make-data --task rain --size 256 --out "$OUT/data"
loss_files=()
for label in "${PRECISIONS[@]}"; do
  run "${LRDM_CMD[@]}" train --run-dir "$OUT/train-$label" --restart-on-change --data-workers 4 \
    --set index="$OUT/data/index.parquet" --set crop=256 --set dim=64 --set "dim_mults=[1, 2, 4, 8]" \
    --set backbone=rddm_unetres --set rank_spec=poly_decrease-p3 --set batch_size=1 --set grad_accum=2 \
    --set steps=$TRAIN_STEPS --set log_every=1 --set checkpoint_every=$TRAIN_STEPS --set device=cuda \
    --set mixed_precision="${MIXED_PRECISION[$label]}"
  loss_files+=("$label=$OUT/train-$label/losses.csv")
done

run "$PYTHON" -m lrdm.perf.gpu_check --out "$OUT/gpu-check.parquet" --summary "$OUT/gpu-check.md" \
  --bench "${bench_files[@]}" --losses "${loss_files[@]}"
if [[ $DRY_RUN -eq 1 ]]; then
  echo "gpu-check.sh: dry run: the commands above were printed, none ran; nothing was written"
else
  echo "gpu-check.sh: done in $((SECONDS - began)) s; one Parquet file: $OUT/gpu-check.parquet"
fi
