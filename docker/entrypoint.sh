#!/usr/bin/env bash
# anydepth-edge container entrypoint.
#
# Before `anydepth-edge run` or `anydepth-edge bench`, make sure engines exist for this board's
# TensorRT: `anydepth-edge build EXPORT_DIR` picks the exports made for this TensorRT's target,
# reuses up-to-date engines and rebuilds those a JetPack upgrade invalidated (the same rule `run`
# uses). Then run the requested command.
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
  local args=("$export_dir" --out-dir "$engines_dir")
  if [ "$mode" = "res" ]; then args+=(--res "$res"); fi
  local rc=0
  anydepth-edge build "${args[@]}" || rc=$?
  case "$rc" in
    0) ;;
    3) log "TensorRT is not usable in this container: no engine build (ONNX Runtime will be used)" ;;
    4) log "no export for this TensorRT yet (the line above says which to make): continuing without an engine" ;;
    *) log "engine build failed (exit $rc)"; return "$rc" ;;
  esac
}

if [ "$#" -eq 0 ]; then
  set -- anydepth-edge doctor
fi
if [ "$mode" != "none" ] && needs_engine "$@"; then
  mkdir -p "$engines_dir"
  build_engines
fi
exec "$@"
