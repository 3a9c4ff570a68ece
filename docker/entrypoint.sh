#!/usr/bin/env bash
# anydepth-edge container entrypoint.
#
# Before `anydepth-edge run` or `anydepth-edge bench`, make sure an engine exists for this board's
# TensorRT: `anydepth-edge build` is a no-op for an up-to-date engine and rebuilds one that a
# JetPack upgrade invalidated (with its own progress display). Then run the requested command.
#
# Environment: ANYDEPTH_EXPORT_DIR (/data/export), ANYDEPTH_ENGINES_DIR (/data/engines),
# ANYDEPTH_RES (256), ANYDEPTH_BUILD (res: only that resolution's exports | all | none).
set -euo pipefail

export_dir=${ANYDEPTH_EXPORT_DIR:-/data/export}
engines_dir=${ANYDEPTH_ENGINES_DIR:-/data/engines}
res=${ANYDEPTH_RES:-256}
mode=${ANYDEPTH_BUILD:-res}

log() { printf 'anydepth-entrypoint: %s\n' "$*" >&2; }

needs_engine() {
  [ "${1:-}" = "anydepth-edge" ] || return 1
  case "${2:-}" in run|bench) return 0 ;; *) return 1 ;; esac
}

build_engines() {
  # The export target that fits this image's TensorRT (trt8.5 on JetPack 5, trt8.6 / trt10 on 6):
  # ONNX files exported for another TensorRT are left alone.
  local target
  if ! target=$(python3 -c 'import tensorrt
from anydepth_edge.export.targets import target_for_tensorrt_version
print(target_for_tensorrt_version(tensorrt.__version__))' 2>/dev/null); then
    log "TensorRT is not importable in this image: no engine build (ONNX Runtime will be used)"
    return 0
  fi
  local onnx
  shopt -s nullglob
  if [ "$mode" = "res" ]; then
    onnx=("$export_dir"/anydepth-*-"${res}x${res}-${target}".onnx)
  else
    onnx=("$export_dir"/anydepth-*-"$target".onnx)
  fi
  shopt -u nullglob
  if [ "${#onnx[@]}" -eq 0 ]; then
    log "no ONNX for this TensorRT (target $target) at ${res}x${res} in $export_dir: export first (the export image, or a workstation:"
    log "  anydepth-edge export --res $res --decoder all --target $target), then copy the files into the export volume"
    return 0
  fi
  local f
  for f in "${onnx[@]}"; do
    log "engine for $(basename "$f")"
    anydepth-edge build "$f" --out-dir "$engines_dir"
  done
}

if [ "$#" -eq 0 ]; then
  set -- anydepth-edge doctor
fi
if [ "$mode" != "none" ] && needs_engine "$@"; then
  mkdir -p "$engines_dir"
  build_engines
fi
exec "$@"
