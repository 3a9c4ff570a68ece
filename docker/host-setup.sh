#!/usr/bin/env bash
# Run once on the robot (no sudo needed), before `docker compose build`, and again after a JetPack upgrade.
# It reads the host's L4T release and board and writes what docker/compose.yaml needs:
#
#   docker/.env                       JETPACK, L4T_BASE, L4T_RELEASE (JetPack 7), ANYDEPTH_TARGET (the
#                                     export target this robot's TensorRT takes), APP_UID (the checkout's
#                                     owner: the container user, so it can write export/ and engines/),
#                                     VIDEO_GID / RENDER_GID (the host's groups for the camera and GPU
#                                     nodes), TEGRASTATS / NVPMODEL / NVPMODEL_CONF / NVPMODEL_STATE (the
#                                     host's Jetson tools, mounted read-only). Other lines are kept.
#   docker/host/device-model          copies of /proc/device-tree/model and compatible: Docker masks
#   docker/host/device-compatible     /sys/firmware, so a container cannot read them (compose mounts
#                                     docker/host at /etc/anydepth/host; anydepth_edge/platform_info.py)
#
# Usage: docker/host-setup.sh [--env-file FILE] [--host-dir DIR]
# ANYDEPTH_HOST_ROOT (default /) reads another root (the tests use fixture trees); ANYDEPTH_DATA_DIR
# (default: the checkout) is where export/, engines/, benchmarks/results/ and checkpoints/ are made.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
root=${ANYDEPTH_HOST_ROOT:-}
root=${root%/}
env_file="$here/.env"
host_dir="$here/host"

while [ "$#" -gt 0 ]; do
  case "$1" in
    --env-file) env_file=${2:?--env-file FILE}; shift 2 ;;
    --host-dir) host_dir=${2:?--host-dir DIR}; shift 2 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "host-setup.sh: unknown argument '$1' (--env-file FILE, --host-dir DIR)" >&2; exit 2 ;;
  esac
done

log() { printf 'host-setup: %s\n' "$*"; }
die() { printf 'host-setup: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------- L4T
release_file="$root/etc/nv_tegra_release"
[ -r "$release_file" ] || die "$release_file not found: this is not a Jetson (export on a workstation instead: docker/README.md)"
l4t=$(sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\).*/\1.\2/p' "$release_file" | head -n 1)
[ -n "$l4t" ] || die "cannot read the L4T release in $release_file"
major=${l4t%%.*}
rest=${l4t#*.}
minor=${rest%%.*}

# The base image, the export target (anydepth_edge/targets.py: JETPACKS, a test keeps the two equal) and
# the JetPack line. l4t-jetpack images run on hosts of their L4T family only (jetson-containers:
# l4t_version_compatible; its get_l4t_base uses r35.4.1 for every L4T >= 35.4.1).
l4t_release=""
case "$major" in
  35)
    jetpack=5 target=trt8.5
    if [ "$minor" -lt 4 ]; then base=nvcr.io/nvidia/l4t-jetpack:r35.3.1; else base=nvcr.io/nvidia/l4t-jetpack:r35.4.1; fi
    if [ "$minor" -lt 3 ]; then die "L4T $l4t is older than JetPack 5.1.1 (L4T 35.3.1), the first for the Orin Nano"; fi
    ;;
  36)
    jetpack=6
    if [ "$minor" -ge 4 ]; then base=nvcr.io/nvidia/l4t-jetpack:r36.4.0 target=trt10
    elif [ "$minor" -eq 3 ]; then base=nvcr.io/nvidia/l4t-jetpack:r36.3.0 target=trt8.6
    else base=nvcr.io/nvidia/l4t-jetpack:r36.2.0 target=trt8.6
    fi
    ;;
  39)
    # No l4t-jetpack r39 image: Ubuntu 24.04 + NVIDIA's CUDA 13 repository (docker/README.md).
    jetpack=7 target=trt10 base=ubuntu:24.04 l4t_release=$l4t
    ;;
  *) die "L4T $l4t is not a JetPack this image supports on an Orin Nano (5.1.x = r35, 6.x = r36, 7.2 = r39)" ;;
esac

# ---------------------------------------------------------------------------------------- board model
mkdir -p "$host_dir"
model_src="$root/proc/device-tree/model"
if [ -r "$model_src" ]; then
  cat "$model_src" >"$host_dir/device-model"
  if [ -r "$root/proc/device-tree/compatible" ]; then cat "$root/proc/device-tree/compatible" >"$host_dir/device-compatible"; fi
  model=$(tr -d '\0' <"$host_dir/device-model")
else
  model="(unreadable: set ANYDEPTH_DEVICE_MODEL in $env_file)"
  log "WARNING: $model_src is not readable; the container will not know the board"
fi

# ---------------------------------------------------------------------------------------- tools, ids
# A missing tool is mounted as /dev/null (not executable: the image reports it missing, compose still starts).
find_tool() {
  local c
  for c in "$@"; do
    if [ -x "$root$c" ] && [ ! -d "$root$c" ]; then printf '%s' "$c"; return; fi
  done
  printf '/dev/null'
}
tegrastats=$(find_tool /usr/bin/tegrastats /usr/sbin/tegrastats)
nvpmodel=$(find_tool /usr/sbin/nvpmodel /usr/bin/nvpmodel)
nvpmodel_conf=/dev/null
if [ -e "$root/etc/nvpmodel.conf" ]; then nvpmodel_conf=/etc/nvpmodel.conf; fi
nvpmodel_state="$host_dir/empty"
if [ -d "$root/var/lib/nvpmodel" ]; then nvpmodel_state=/var/lib/nvpmodel; else mkdir -p "$nvpmodel_state"; fi
for t in tegrastats nvpmodel; do
  if [ "${!t}" = /dev/null ]; then log "WARNING: $t not found on the host (sudo apt install nvidia-l4t-tools nvidia-l4t-nvpmodel)"; fi
done

gid_of() { awk -F: -v g="$1" '$1 == g { print $3; exit }' "$root/etc/group" 2>/dev/null || true; }
video_gid=$(gid_of video)
render_gid=$(gid_of render)
video_gid=${video_gid:-44}
render_gid=${render_gid:-$video_gid}
app_uid=$(stat -c %u "$repo")
if [ "$app_uid" = 0 ]; then app_uid=1000; fi

# ---------------------------------------------------------------------------------------- docker/.env
keys=(JETPACK L4T_BASE L4T_RELEASE ANYDEPTH_TARGET APP_UID VIDEO_GID RENDER_GID TEGRASTATS NVPMODEL NVPMODEL_CONF
      NVPMODEL_STATE)
kept=""
if [ -f "$env_file" ]; then
  pattern="^($(IFS='|'; echo "${keys[*]}"))="
  kept=$(grep -Ev "$pattern" "$env_file" | grep -v '^# written by docker/host-setup.sh' || true)
fi
{
  [ -z "$kept" ] || printf '%s\n' "$kept"
  echo "# written by docker/host-setup.sh for L4T $l4t ($model); re-run it after a JetPack upgrade"
  echo "JETPACK=$jetpack"
  echo "L4T_BASE=$base"
  echo "L4T_RELEASE=$l4t_release"
  echo "ANYDEPTH_TARGET=$target"
  echo "APP_UID=$app_uid"
  echo "VIDEO_GID=$video_gid"
  echo "RENDER_GID=$render_gid"
  echo "TEGRASTATS=$tegrastats"
  echo "NVPMODEL=$nvpmodel"
  echo "NVPMODEL_CONF=$nvpmodel_conf"
  echo "NVPMODEL_STATE=$nvpmodel_state"
} >"$env_file.tmp"
mv "$env_file.tmp" "$env_file"

# The folders compose mounts: created here so that they belong to the checkout's owner, not to root
# (Docker creates a missing bind source as root). ANYDEPTH_DATA_DIR: another parent (the tests).
data=${ANYDEPTH_DATA_DIR:-$repo}
for d in "$data/export" "$data/engines" "$data/benchmarks/results" "$data/checkpoints"; do
  if [ ! -d "$d" ]; then
    mkdir -p "$d"
    if [ "$(id -u)" = 0 ]; then chown "$app_uid" "$d"; fi
  fi
done

log "L4T $l4t -> JetPack $jetpack image from $base, exports for --target $target"
log "board: $model"
log "wrote $env_file and $host_dir/"
log "next: docker compose -f docker/compose.yaml build (then the on-robot checklist in docker/README.md)"
