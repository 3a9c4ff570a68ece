#!/usr/bin/env bash
# The system (apt) packages of one image stage, for one JetPack line. Run by docker/Dockerfile as root;
# the tests run it with DRY_RUN=1, which prints the commands instead of running them.
#
#   install-system.sh wheels|runtime
#
# Environment: JETPACK (5, 6 or 7). JetPack 7 only: CUDA_VERSION (13.2), TENSORRT_VERSION (10.16),
# CUDA_REPO (NVIDIA's Ubuntu 24.04 arm64 "sbsa" CUDA repository), L4T_RELEASE (39.2.0).
#
# One OpenCV, on purpose (docker/README.md): JetPack 5 / 6 keep NVIDIA's (libopencv-python, GStreamer,
# from the L4T apt repository the l4t-jetpack base carries) and never get Ubuntu's python3-opencv, which
# would shadow it; JetPack 7.2's base is plain Ubuntu 24.04, so it gets Ubuntu's python3-opencv
# (GStreamer too). pip's opencv-python is never installed (no GStreamer: no CSI cameras).
set -euo pipefail

stage=${1:?usage: install-system.sh wheels|runtime}
jetpack=${JETPACK:?JETPACK (5, 6 or 7) is not set}
cuda_version=${CUDA_VERSION:-13.2}
tensorrt_version=${TENSORRT_VERSION:-10.16}
cuda_repo=${CUDA_REPO:-https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/sbsa}
cuda_pkg=${cuda_version//./-}  # 13.2 -> 13-2, as CUDA's package names spell it

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then printf '%s\n' "$*"; else "$@"; fi
}

apt_install() {
  run apt-get install -y --no-install-recommends "$@"
}

# JetPack 7: CUDA and TensorRT come from NVIDIA's CUDA repository (as jetson-containers builds its r38+
# images from ubuntu:24.04), not from an l4t-jetpack base (none exists for r39).
add_cuda_repo() {
  apt_install ca-certificates curl gnupg
  run curl -fsSL -o /tmp/cuda-keyring.deb "${cuda_repo}/cuda-keyring_1.1-1_all.deb"
  run dpkg -i /tmp/cuda-keyring.deb
  run rm -f /tmp/cuda-keyring.deb
  run apt-get update
}

# apt would take the newest TensorRT in the repository: pin TENSORRT_VERSION built for CUDA_VERSION
# (e.g. 10.16.0.x-1+cuda13.2) for every TensorRT package, so the libraries match the Python bindings.
pin_tensorrt() {
  local pref=/etc/apt/preferences.d/anydepth-tensorrt
  local text
  text=$(printf 'Package: libnvinfer* libnvonnxparsers* python3-libnvinfer* tensorrt*\nPin: version %s.*+cuda%s\nPin-Priority: 1001\n' \
         "$tensorrt_version" "$cuda_version")
  if [ "${DRY_RUN:-0}" = 1 ]; then printf '%s: %s\n' "$pref" "$text"; else printf '%s\n' "$text" >"$pref"; fi
}

# The L4T release the image was built for, read by the entrypoint (host compatibility check): the
# l4t-jetpack base's /etc/nv_tegra_release (JetPack 5 / 6), L4T_RELEASE on JetPack 7's Ubuntu base.
record_image_l4t() {
  local out=/opt/anydepth-edge/image-l4t release=${TEGRA_RELEASE_FILE:-/etc/nv_tegra_release} l4t
  if [ "$jetpack" = 7 ]; then
    l4t=${L4T_RELEASE:-39.2.0}
  elif [ -f "$release" ]; then
    l4t=$(sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\).*/\1.\2/p' "$release" | head -n 1)
  else
    echo "install-system.sh: $release is missing: JETPACK=$jetpack needs an nvcr.io/nvidia/l4t-jetpack base" >&2
    exit 1
  fi
  run mkdir -p "$(dirname "$out")"
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "image L4T: $l4t"; else printf '%s\n' "$l4t" >"$out"; fi
}

case "$jetpack" in
  5|6) ;;
  7) ;;
  *) echo "install-system.sh: JETPACK must be 5, 6 or 7 (got '$jetpack')" >&2; exit 2 ;;
esac

run apt-get update
case "$stage" in
  wheels)
    # pycuda is compiled here: a compiler and Python headers; JetPack 5 / 6 bases carry the CUDA toolkit.
    apt_install python3 python3-venv python3-dev build-essential ca-certificates
    if [ "$jetpack" = 7 ]; then
      add_cuda_repo
      apt_install "cuda-minimal-build-${cuda_pkg}" "libcurand-dev-${cuda_pkg}"
    fi
    ;;
  runtime)
    common=(python3 python3-venv libusb-1.0-0 v4l-utils gstreamer1.0-tools gstreamer1.0-plugins-good
            gstreamer1.0-plugins-bad ca-certificates)
    if [ "$jetpack" = 7 ]; then
      add_cuda_repo
      pin_tensorrt
      apt_install "${common[@]}" python3-opencv "cuda-cudart-${cuda_pkg}" "libcurand-${cuda_pkg}" python3-libnvinfer
    else
      apt_install "${common[@]}" libopencv-python python3-libnvinfer
    fi
    record_image_l4t
    ;;
  *)
    echo "install-system.sh: unknown stage '$stage' (wheels or runtime)" >&2
    exit 2
    ;;
esac
run bash -c 'rm -rf /var/lib/apt/lists/*'
