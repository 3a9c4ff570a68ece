#!/usr/bin/env bash
# PyTorch CUDA backend matrix: SDT and DPT with one encoder at several sizes, FP32 and FP16, with and
# without CUDA graphs. Needs a CUDA GPU and PyTorch; writes bench records under OUT_DIR and prints a
# summary table.
#
#   benchmarks/torch_cuda_matrix.sh OUT_DIR [ENCODER] [RES ...]
#   benchmarks/torch_cuda_matrix.sh benchmarks/results/cuda-vitl vitl 256 512 1024
set -euo pipefail
out=${1:?usage: $0 OUT_DIR [ENCODER] [RES ...]}
encoder=${2:-vitl}
shift $(( $# >= 2 ? 2 : 1 ))
if [ "$#" -gt 0 ]; then sizes=("$@"); else sizes=(256 512 1024); fi
res_args=()
for r in "${sizes[@]}"; do res_args+=(--res "$r"); done
py=${PYTHON:-python3}
for precision in ${PRECISIONS:-fp32 fp16}; do
  for graph in --no-graph --cuda-graph; do
    flag=(); suffix=""
    if [ "$graph" = --cuda-graph ]; then flag=(--cuda-graph); suffix=-graph; fi
    "$py" -m anydepth_edge bench --device cuda --backend torch --encoder "$encoder" "${res_args[@]}" \
      --precision "$precision" "${flag[@]}" --warmup "${WARMUP:-10}" --iters "${ITERS:-50}" --e2e-iters 0 \
      --out-dir "$out/$precision$suffix" >/dev/null
  done
done
"$py" "$(dirname "$0")/summarise.py" "$out"
