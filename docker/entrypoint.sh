#!/usr/bin/env bash
# anydepth-edge container entrypoint (docker/README.md says why each step is here).
#
# Before `anydepth-edge run` or `anydepth-edge bench`:
#   1. refuse an image built for another L4T family than the host's (its CUDA / TensorRT cannot work
#      there): exit 5, ANYDEPTH_SKIP_L4T_CHECK=1 skips the check;
#   2. make sure engines exist for this board's TensorRT: `anydepth-edge build EXPORT_DIR` picks the
#      exports made for this TensorRT's target, reuses up-to-date engines and rebuilds those a JetPack
#      upgrade invalidated (the resolver `run` asks: anydepth_edge/resolver.py).
# Then run the requested command (exec: with compose's `init: true` it is the init's only child).
#
# When the engine build fails (not "no TensorRT" = 3 nor "no export for this TensorRT" = 4):
#   ANYDEPTH_ON_BUILD_FAILURE=stop (default) exits with the build's status;
#   ANYDEPTH_ON_BUILD_FAILURE=ort logs it, records it in ENGINES_DIR/.build-failed and runs `run` on
#   ONNX Runtime (--backend ort); later starts skip the build while the exports, the requested
#   resolutions and the JetPack stay the same, so `restart: unless-stopped` cannot loop on an
#   out-of-memory build. Delete the file or set ANYDEPTH_BUILD_RETRY=1 to try again.
#
# Environment: ANYDEPTH_EXPORT_DIR (/data/export), ANYDEPTH_ENGINES_DIR (/data/engines),
# ANYDEPTH_RES (256), ANYDEPTH_BUILD (res: only that resolution's exports | all | none), ANYDEPTH_DECODER
# (sdt, dpt, dav2 or all: only that decoder's exports get engines; empty: every export),
# ANYDEPTH_CHECKPOINT (export: a checkpoint file, relative to ANYDEPTH_CHECKPOINTS_DIR=/data/checkpoints,
# added as --checkpoint unless the command has one), ANYDEPTH_TEGRA_RELEASE (/etc/nv_tegra_release, the
# host's: compose mounts it), ANYDEPTH_IMAGE_L4T_FILE (/opt/anydepth-edge/image-l4t, written at build).
set -euo pipefail

export_dir=${ANYDEPTH_EXPORT_DIR:-/data/export}
engines_dir=${ANYDEPTH_ENGINES_DIR:-/data/engines}
res=${ANYDEPTH_RES:-256}
mode=${ANYDEPTH_BUILD:-res}
on_failure=${ANYDEPTH_ON_BUILD_FAILURE:-stop}
tegra_release=${ANYDEPTH_TEGRA_RELEASE:-/etc/nv_tegra_release}
image_l4t_file=${ANYDEPTH_IMAGE_L4T_FILE:-/opt/anydepth-edge/image-l4t}
stamp="$engines_dir/.build-failed"
use_ort=0

log() { printf 'anydepth-entrypoint: %s\n' "$*" >&2; }

needs_engine() {
  [ "${1:-}" = "anydepth-edge" ] || return 1
  case "${2:-}" in run|bench) return 0 ;; *) return 1 ;; esac
}

# has_option LONG SHORT ARGS...: whether ARGS hold LONG, LONG=..., or SHORT.
has_option() {
  local long=$1 short=$2 arg
  shift 2
  for arg in "$@"; do
    case "$arg" in "$long"|"$long"=*) return 0 ;; esac
    if [ -n "$short" ] && [ "$arg" = "$short" ]; then return 0; fi
  done
  return 1
}

# '# R36 (release), REVISION: 4.3, ...' -> 36.4.3
l4t_of() {
  sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\).*/\1.\2/p' "$1" 2>/dev/null | head -n 1
}

# Which host L4T releases run an image of this L4T (jetson-containers' l4t_version_compatible):
# r35 runs r35 images; r36 before 36.4 and from 36.4 on are two families; r38 and later run r38+ images.
l4t_family() {
  local major=${1%%.*} rest=${1#*.} minor
  minor=${rest%%.*}
  case "$major$minor" in *[!0-9]*|"") echo "unknown"; return ;; esac
  if [ "$major" -ge 38 ]; then echo "r38+"
  elif [ "$major" -eq 36 ] && [ "$minor" -ge 4 ]; then echo "r36.4+"
  elif [ "$major" -eq 36 ]; then echo "r36.0-36.3"
  else echo "r$major"
  fi
}

check_l4t() {
  [ "${ANYDEPTH_SKIP_L4T_CHECK:-0}" = 1 ] && return 0
  local image host
  image=$(head -n 1 "$image_l4t_file" 2>/dev/null || true)
  host=$(l4t_of "$tegra_release")
  if [ -z "$image" ] || [ -z "$host" ]; then return 0; fi
  local family_image family_host
  family_image=$(l4t_family "$image")
  family_host=$(l4t_family "$host")
  if [ "$family_image" = unknown ] || [ "$family_host" = unknown ] || [ "$family_image" = "$family_host" ]; then
    return 0
  fi
  log "this image was built for L4T $image ($family_image) but the host runs L4T $host ($family_host): its CUDA" \
      "and TensorRT cannot" \
      "work here. Rebuild it for this robot: docker/host-setup.sh, then docker compose build" \
      "(ANYDEPTH_SKIP_L4T_CHECK=1 skips this check)"
  return 1
}

# What the last failed build was tried on: the resolutions asked for, the host's and the image's L4T,
# and the exports (name, size, time).
build_key() {
  {
    printf 'res=%s build=%s decoder=%s\n' "$res" "$mode" "${ANYDEPTH_DECODER:-}"
    cat "$tegra_release" "$image_l4t_file" 2>/dev/null || true
    find "$export_dir" -maxdepth 1 -name '*.onnx' -printf '%f %s %T@\n' 2>/dev/null | sort
  } | cksum | cut -d' ' -f1
}

build_engines() {
  local args=("$export_dir" --out-dir "$engines_dir")
  if [ "$mode" = "res" ]; then args+=(--res "$res"); fi
  if [ -n "${ANYDEPTH_DECODER:-}" ]; then args+=(--decoder "$ANYDEPTH_DECODER"); fi
  local rc=0
  anydepth-edge build "${args[@]}" || rc=$?
  case "$rc" in
    0) rm -f "$stamp" ;;
    3) log "TensorRT is not usable in this container: no engine build (ONNX Runtime will be used)" ;;
    4) log "no export for this TensorRT yet (the line above says which to make): continuing without an engine" ;;
    *)
      log "engine build failed (exit $rc)"
      if [ "$on_failure" != "ort" ]; then return "$rc"; fi
      printf '%s\n%s, exit %s\n' "$(build_key)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rc" >"$stamp"
      log "running on ONNX Runtime instead (ANYDEPTH_ON_BUILD_FAILURE=ort); the build is not tried again until" \
          "the exports or the JetPack change: delete $stamp or set ANYDEPTH_BUILD_RETRY=1 to retry"
      use_ort=1
      ;;
  esac
}

if [ "$#" -eq 0 ]; then
  set -- anydepth-edge doctor
fi
case "$on_failure" in stop|ort) ;; *) log "ANYDEPTH_ON_BUILD_FAILURE must be stop or ort (got '$on_failure')"; exit 2 ;; esac

if needs_engine "$@"; then
  check_l4t || exit 5
  if [ "$mode" != "none" ]; then
    mkdir -p "$engines_dir"
    if [ "$on_failure" = "ort" ] && [ -f "$stamp" ] && [ "${ANYDEPTH_BUILD_RETRY:-0}" != 1 ] \
        && [ "$(head -n 1 "$stamp")" = "$(build_key)" ]; then
      log "the engine build failed before for these exports on this JetPack ($(sed -n 2p "$stamp")): running on" \
          "ONNX Runtime without trying again; delete $stamp or set ANYDEPTH_BUILD_RETRY=1 to retry"
      use_ort=1
    else
      build_engines
    fi
  fi
fi

# `run --backend auto` would build the same engine in-process (and fail the same way): ONNX Runtime.
if [ "$use_ort" = 1 ] && [ "${1:-}" = "anydepth-edge" ] && [ "${2:-}" = "run" ] && ! has_option --backend -b "$@"; then
  set -- "$@" --backend ort
fi

if [ -n "${ANYDEPTH_CHECKPOINT:-}" ] && [ "${1:-}" = "anydepth-edge" ] && [ "${2:-}" = "export" ] \
    && ! has_option --checkpoint -c "$@"; then
  checkpoint=$ANYDEPTH_CHECKPOINT
  case "$checkpoint" in /*) ;; *) checkpoint="${ANYDEPTH_CHECKPOINTS_DIR:-/data/checkpoints}/$checkpoint" ;; esac
  set -- "$@" --checkpoint "$checkpoint"
fi
exec "$@"
