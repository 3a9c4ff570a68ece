#!/usr/bin/env bash
# On a workstation, after `anydepth-edge export`: copy the exports to a robot and check them there.
# Exporting needs PyTorch and more memory than a 4 GB Orin Nano can give (README: "Export memory";
# docker/README.md: "Export on a workstation"), so this is the robot path: export here, push, the robot
# builds its engines. The robot needs this repository cloned (default ~/anydepth-edge) for the image.
#
# Usage: docker/push-export.sh [--native] [--target T] ROBOT [REMOTE_CHECKOUT]
#   ROBOT            an ssh destination (user@robot, or a Host of ~/.ssh/config)
#   REMOTE_CHECKOUT  the robot's checkout of this repository (default: anydepth-edge, in its home);
#                    with --native the exports go to /var/lib/anydepth-edge/export instead
#   --target T       only the exports for that target (the robot's ANYDEPTH_TARGET in docker/.env)
#   --native         check with the native install's CLI (deploy/install-native.sh) instead of the image
#
# It copies export/anydepth-* (each ONNX with its .json sidecar, reference bundle and FP16 form) with
# rsync, which writes each file under a temporary name and renames it: an interrupted copy never leaves
# a half file under a real name. Then, on the robot, `anydepth-edge verify` runs each copied export on
# ONNX Runtime against its reference bundle (the sidecar's sha256 is checked first): a file damaged on
# the way, or an export this robot's runtime cannot load, fails here and not at the next start. The next
# `run` / `bench` start builds the engines (the entrypoint), or `anydepth-edge build export/`.
# DRY_RUN=1 prints the commands instead of running them; ANYDEPTH_EXPORT_DIR: another local folder;
# with --native, ANYDEPTH_REMOTE_CLI and ANYDEPTH_REMOTE_EXPORT: the robot's CLI and export folder.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export_dir=${ANYDEPTH_EXPORT_DIR:-"$(dirname "$here")/export"}
native=0
target=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --native) native=1; shift ;;
    --target) target=${2:?--target T}; shift 2 ;;
    -h|--help) sed -n "2,21p" "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "push-export: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
robot=${1:-}
remote_dir=${2:-anydepth-edge}
if [ -z "$robot" ]; then
  echo "push-export: which robot? docker/push-export.sh user@robot (see --help)" >&2
  exit 2
fi

files=()
exports=()
shopt -s nullglob
for onnx in "$export_dir"/anydepth-*.onnx; do
  case "$onnx" in *.fp16.onnx) continue ;; esac
  if [ -n "$target" ]; then
    case "$(basename "$onnx")" in *-"$target".onnx | *-"$target"-*.onnx) ;; *) continue ;; esac
  fi
  stem=${onnx%.onnx}
  if [ ! -f "$stem.json" ]; then
    echo "push-export: $onnx has no sidecar ($stem.json): export it again" >&2
    exit 1
  fi
  exports+=("$(basename "$onnx")")
  for f in "$onnx" "$stem.json" "$stem.ref.npz" "$stem.fp16.onnx"; do
    if [ -f "$f" ]; then files+=("$f"); fi
  done
done
if [ "${#exports[@]}" -eq 0 ]; then
  echo "push-export: no export${target:+ for --target $target} in $export_dir:" \
       "anydepth-edge export --res 256 --target ${target:-TARGET} first (TARGET: ANYDEPTH_TARGET in the robot's docker/.env)" >&2
  exit 1
fi

if [ "$native" = 1 ]; then
  # deploy/install-native.sh's data folder (group-writable for the installing user)
  remote_export=${ANYDEPTH_REMOTE_EXPORT:-/var/lib/anydepth-edge/export}
  cli=${ANYDEPTH_REMOTE_CLI:-/opt/anydepth-edge/venv/bin/anydepth-edge}
  check="rc=0 && for f in"
  data=$remote_export
else
  remote_export="$remote_dir/export"
  cli="docker compose -f docker/compose.yaml --profile run run --rm --no-deps run anydepth-edge"
  check="cd $(printf '%q' "$remote_dir") && rc=0 && for f in"
  data="/data/export"  # where compose mounts the checkout's export/
fi
for name in "${exports[@]}"; do check+=" $(printf '%q' "$name")"; done
check+="; do $cli verify $data/\$f || rc=1; done; exit \$rc"

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then
    local arg
    for arg in "$@"; do
      case "$arg" in *[[:space:]\;\&\|\$]*) printf "'%s' " "$arg" ;; *) printf '%s ' "$arg" ;; esac
    done
    echo
  else
    "$@"
  fi
}

echo "push-export: ${#exports[@]} export(s), ${#files[@]} file(s) to $robot:$remote_export/" >&2
run ssh "$robot" "mkdir -p $(printf '%q' "$remote_export")"
run rsync --archive --partial-dir=.rsync-partial --human-readable --info=progress2 "${files[@]}" \
  "$robot:$remote_export/"
echo "push-export: checking each export on $robot (anydepth-edge verify)" >&2
run ssh "$robot" "$check"
if [ "${DRY_RUN:-0}" = 1 ]; then echo "push-export: dry run: the commands above were printed, nothing was copied" >&2; exit 0; fi
echo "push-export: done; the next run / bench start on $robot builds the engines" >&2
