#!/usr/bin/env bash
# System packages the test suite needs beyond pip: FFmpeg's shared libraries, which torchcodec (the video decoder
# of the lerobot interop test, tests/test_lerobot_interop.py) loads. Idempotent and quiet: nothing to do when they
# are installed; otherwise Debian's ffmpeg package through apt-get (as root, or through sudo).
set -euo pipefail

# The project venv (~4 GB), the interop tests' own venvs under .pytest_cache (~6.5 GB) and their datasets.
NEED_GB=${SIM2REAL_NEED_GB:-14}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
free_gb=$(( $(df -Pk "$ROOT" | awk 'NR == 2 {print $4}') / 1048576 ))
if [ "$free_gb" -lt "$NEED_GB" ]; then
    echo "setup_system.sh: $ROOT has ${free_gb} GB free; the install and the test suite need ${NEED_GB} GB (set SIM2REAL_NEED_GB to change)" >&2
    exit 2
fi

LIBS=(libavutil libavcodec libavformat libavdevice libavfilter libswscale libswresample)
have_ffmpeg_libs() {
    local listing lib
    listing=$(PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null) || return 1
    for lib in "${LIBS[@]}"; do
        grep -q "${lib}\.so\." <<<"$listing" || return 1
    done
}

have_ffmpeg_libs && exit 0
if ! command -v apt-get >/dev/null; then
    echo "setup_system.sh: no apt-get here; install FFmpeg's shared libraries (${LIBS[*]}) with your package manager" >&2
    exit 0
fi
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
have_ffmpeg_libs || { echo "setup_system.sh: ffmpeg installed, but its libraries are not found" >&2; exit 1; }
