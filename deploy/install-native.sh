#!/usr/bin/env bash
# Install anydepth-edge on a Jetson without Docker (JetPack 5.1.x, 6.x or 7.2 with its SDK:
# `sudo apt install nvidia-jetpack`), as a systemd service. Run from the checkout, as root:
#
#   sudo deploy/install-native.sh            # DRY_RUN=1 prints every step instead
#
# What it does, each step the robot image's equivalent (docker/README.md says why):
#   1. reads the L4T release (docker/host-setup.sh's table): JETPACK and the export target;
#   2. apt: Python, pycuda's build tools and JetPack's own TensorRT bindings and OpenCV (GStreamer);
#      never pip's opencv-python (no GStreamer: no CSI cameras);
#   3. /opt/anydepth-edge/venv (--system-site-packages: the apt TensorRT and OpenCV stay visible), pip
#      with docker/constraints/jp<N>.txt (the NumPy those bindings need), pycuda built against it;
#   4. a system user `anydepth` (groups video, render), /var/lib/anydepth-edge/{export,engines,benchmarks};
#   5. /etc/anydepth-edge/anydepth-edge.env (kept when it exists) and the unit
#      /etc/systemd/system/anydepth-edge.service; it does not enable it: copy the exports first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv=/opt/anydepth-edge/venv
data=/var/lib/anydepth-edge
etc=/etc/anydepth-edge
unit=/etc/systemd/system/anydepth-edge.service

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then printf '%s\n' "$*"; else "$@"; fi
}
log() { echo "install-native: $*" >&2; }

case "${1:-}" in
  -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
  "") ;;
  *) echo "install-native: no arguments (see --help)" >&2; exit 2 ;;
esac
if [ "${DRY_RUN:-0}" != 1 ] && [ "$(id -u)" != 0 ]; then
  log "run it as root: sudo $0"
  exit 1
fi

# 1. The JetPack line and export target, from host-setup.sh's one table (ANYDEPTH_HOST_ROOT as there).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ANYDEPTH_DATA_DIR="$scratch/data" "$repo/docker/host-setup.sh" --env-file "$scratch/env" --host-dir "$scratch/host" >/dev/null 2>"$scratch/log" || {
  sed "s/^host-setup: //; s/ (export on a workstation instead[^)]*)//" "$scratch/log" | sed 's/^/install-native: /' >&2
  exit 1
}
jetpack=$(sed -n 's/^JETPACK=//p' "$scratch/env")
target=$(sed -n 's/^ANYDEPTH_TARGET=//p' "$scratch/env")
constraints="$repo/docker/constraints/jp$jetpack.txt"
log "JetPack $jetpack: exports for --target $target, pip constraints $constraints"

# 2. System packages (JetPack's apt repositories).
if [ "$jetpack" = 7 ]; then opencv=python3-opencv; else opencv=libopencv-python; fi
run apt-get update
run apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
  python3-libnvinfer "$opencv" libusb-1.0-0 v4l-utils gstreamer1.0-tools gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad

# 3. The venv: the runtime's packages, pycuda built against the pinned NumPy (no build isolation: its
# pyproject asks for a newer NumPy than JetPack 5's pin), then the package itself (no extras, no PyTorch).
pip=("$venv/bin/python" -m pip)
run python3 -m venv --system-site-packages "$venv"
run env PIP_CONSTRAINT="$constraints" "${pip[@]}" install --upgrade pip setuptools wheel
run env PIP_CONSTRAINT="$constraints" "${pip[@]}" install -r "$repo/docker/requirements/runtime.txt"
run env PIP_CONSTRAINT="$constraints" PATH="/usr/local/cuda/bin:$PATH" CUDA_ROOT=/usr/local/cuda \
  "${pip[@]}" install --no-build-isolation --no-binary=pycuda pycuda
run env PIP_CONSTRAINT="$constraints" "${pip[@]}" install --no-build-isolation "$repo"

# 4. The service's user and folders.
if ! id anydepth >/dev/null 2>&1; then
  run useradd --system --create-home --home-dir "$data" --shell /usr/sbin/nologin anydepth
fi
for group in video render; do
  if getent group "$group" >/dev/null; then run usermod --append --groups "$group" anydepth; fi
done
# setgid and group-writable: the installing user (in group anydepth) copies exports in (push-export.sh)
run install -d -o anydepth -g anydepth -m 2775 "$data" "$data/export" "$data/engines" "$data/benchmarks"
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  run usermod --append --groups anydepth "$SUDO_USER"
fi

# 5. Settings (a user's file is never overwritten) and the unit.
run install -d "$etc"
if [ -f "$etc/anydepth-edge.env" ]; then
  log "kept $etc/anydepth-edge.env"
else
  run install -m 0644 "$here/anydepth-edge.env" "$etc/anydepth-edge.env"
fi
run install -d /opt/anydepth-edge/bin
run install -m 0755 "$here/anydepth-edge-service" /opt/anydepth-edge/bin/anydepth-edge-service
run install -m 0644 "$repo/README.md" /opt/anydepth-edge/README.md
run install -m 0644 "$here/anydepth-edge.service" "$unit"
run systemctl daemon-reload
if [ "${DRY_RUN:-0}" = 1 ]; then log "dry run: the commands above were printed, nothing was changed"; exit 0; fi
log "installed. Next: log in again (you joined group anydepth: you may copy into $data/export), copy the"
log "exports (--target $target) there (docker/push-export.sh --native from a workstation), edit"
log "$etc/anydepth-edge.env (SOURCE, EXTRA_ARGS, ROS_SETUP for --ros2), then: sudo systemctl enable --now anydepth-edge"
