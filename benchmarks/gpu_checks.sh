#!/usr/bin/env bash
# Issue 15's checks for one GPU session (about 10 minutes on an H200): the GPU test of the
# device loader, the throughput table (every method, fp32/bf16/fp16, alone/engine/engine+),
# the baseline compiled, the main-process thread count, and a profile with chrome traces.
# Everything is written under $OUT (default /tmp/gpu-checks); each step has its own time limit
# so one that hangs cannot eat the session. The baseline profile reads the quickstart's 64x32
# synthetic images resized to 256x128 (decoding is cheaper than at the real size).
#
# Two parts, each under the device tool's 10-minute limit per command:
#
#     PYTHON=.venv/bin/python bash benchmarks/gpu_checks.sh 1   # test + table        (<= 6 min)
#     PYTHON=.venv/bin/python bash benchmarks/gpu_checks.sh 2   # compile, threads, profiles (<= 7 min)
set -u
part=${1:-1}
py=${PYTHON:-python}
out=${OUT:-/tmp/gpu-checks}
mkdir -p "$out"
export REID_BENCH_DATA="$out/synthetic"   # synthetic data generated once for all runs
export OMP_WAIT_POLICY=PASSIVE
run() {  # run NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee "$out/$name.txt"
  timeout "$limit" "$@" 2>&1 | grep -v "^W[0-9]" | tee -a "$out/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$out/$name.txt"
}
$py -c "import torch; print(torch.__version__, torch.cuda.get_device_name(), torch.cuda.get_device_capability())" | tee "$out/device.txt"
if [ "$part" = 1 ]; then
  run pytest-gpu 60 $py -m pytest -q -p no:cacheprovider -m gpu tests/engine/test_device_loader.py
  run table 300 $py benchmarks/train_gpu.py --steps 30 --warmup 8
else
  run compile 180 $py benchmarks/train_gpu.py --methods baseline --precisions bf16 --compile --steps 40 --warmup 10
  run threads 60 $py benchmarks/train_gpu.py --methods baseline --precisions bf16 --main-threads 4
  run profile 90 $py benchmarks/profile_steps.py --steps 20 --trace "$out/traces" \
    --set 'train.device="cuda"' --set 'train.precision="bf16"' --set loader.workers=8 \
    --set loader.height=256 --set loader.width=128 --set backbone.model=\"resnet50\" \
    --set loader.identities=16 --set loader.instances=4
  run profile-flipreid 90 $py benchmarks/profile_steps.py flipreid-market1501 --synthetic \
    --steps 20 --trace "$out/traces-flipreid" --set 'train.device="cuda"' \
    --set 'train.precision="bf16"' --set loader.workers=8
fi
