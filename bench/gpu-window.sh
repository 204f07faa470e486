#!/usr/bin/env bash
# The last call of a lent GPU window (../shared/gpukit/README.md: calls 1-5 carry .gk0 .. .gk4,
# this one carries .gk5). Installs the kit, then runs `apt-video doctor` and `apt-video bench gpu`;
# their JSON and logs go to $OUT. About 7 minutes: give the call timeout_s=540.
#   run(carry=[".gk5"], command="bash bench/gpu-window.sh", timeout_s=540)
# A second call while the host is warm (the kit stays in /tmp) can rerun one stage:
#   run(command="STAGES=loader bash bench/gpu-window.sh", timeout_s=300)
set -u
out=${OUT:-/tmp/out}
mkdir -p "$out"
if [ ! -f /tmp/gk/env.sh ]; then
  bash .gk5/gk_install.sh > "$out/kit.log" 2>&1 || { tail -20 "$out/kit.log"; exit 1; }
fi
# shellcheck disable=SC1091
source /tmp/gk/env.sh
# the checkout as the installed package lays it out (models/, pipeline/, export/ and configs/ are
# apt_video.models, .pipeline, .export and .presets): links, no install step on the offline host
src=/tmp/apt-src
rm -rf "$src" && mkdir -p "$src/apt_video"
for f in apt_video/*; do ln -s "$PWD/$f" "$src/apt_video/"; done
for p in models pipeline export; do ln -s "$PWD/$p" "$src/apt_video/$p"; done
ln -s "$PWD/configs" "$src/apt_video/presets"
export PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.csv" 2>&1
if [ -z "${STAGES:-}" ]; then
  timeout 150 python3 -m apt_video.cli doctor --quick --json "$out/doctor.json" > "$out/doctor.log" 2>&1
  echo "doctor exit $?"; tail -15 "$out/doctor.log"
fi
timeout 420 python3 -m apt_video.cli bench gpu --stages "${STAGES:-loader,infer,train,score}" \
  --json "$out/gpu.json" --work /tmp/bench-gpu > "$out/gpu.log" 2>&1
echo "bench gpu exit $?"; tail -45 "$out/gpu.log"
