#!/usr/bin/env bash
# The whole GPU check, for one call on a GPU machine with no package registry (NVIDIA driver with
# Vulkan, PyTorch CUDA): our device tests, the device report, the renderer bench at 256 and 512 and the
# enhancer bench on the GPU against the reference on torch CUDA, every figure under $OUT (default ./gpu-out).
# Needs gpu-kit/ from tools/gpu/make-kit.sh. Stays within ten minutes: each step has its own limit.
#   bash tools/gpu/run-on-gpu.sh          (from the repository root)
# GPU_CHECK_SIZES (default "256 512") and GPU_CHECK_FRAMES (default 8) shrink the bench, e.g. to try
# the script on a software device: GPU_CHECK_SIZES= bash tools/gpu/run-on-gpu.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
log="$out/log.txt"
say() { echo "== $*" | tee -a "$log"; }
step() { # step NAME SECONDS CMD...: runs CMD with a time limit, output to $out/NAME.txt
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$out/summary.txt" "$log"
  return $rc
}

say "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null || true
  ldconfig -p | grep -i vulkan || echo "no libvulkan in ldconfig"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' || true
  nproc; free -g; } >"$out/machine.txt" 2>&1
cat "$out/machine.txt" | tee -a "$log"

kit=/tmp/gpu-kit
rm -rf "$kit" && mkdir -p "$kit"
tar -C "$kit" -xJf gpu-kit/gpu-kit.tar.xz || { say "no gpu-kit/gpu-kit.tar.xz: run tools/gpu/make-kit.sh first"; exit 2; }
bin="$kit/bin"

say "devices"
# Exit 4 here only means no model files (none are needed for this check); the JSON lists the devices.
step doctor 60 sh -c "'$bin/sadtalker' doctor --no-self-test --json >'$out/doctor.json'"

say "device tests (CI=true: a missing device fails)"
export CI=true SADTALKER_FIXTURES="$PWD/fixtures"
for t in "$kit"/tests/*; do
  step "test-$(basename "$t")" 240 "$t" --test-threads 1
done

[ -n "${GPU_CHECK_SIZES-256 512}" ] && say "conv kernel per layer shape (for tuning)" &&
step conv-bench 90 "$bin/conv_bench" --device vulkan --repeat 5

say "reference on torch CUDA"
site=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$kit"/wheels/*.whl \
  >"$out/pip.txt" 2>&1
# The package's __init__ imports a private scheduler that is not on PyPI (as setup-reference-env.sh patches).
sed -i 's/^from .aiy import SadTalkerTask, SadTalkerArgs/try:\n    from .aiy import SadTalkerTask, SadTalkerArgs\nexcept ImportError:\n    pass/' \
  "$site/sadtalker/__init__.py" 2>/dev/null
export PYTHONPATH="$site"
py=$(command -v python3)

frames="${GPU_CHECK_FRAMES:-8}"
for size in ${GPU_CHECK_SIZES-256 512}; do
  say "bench $size: ours on Vulkan, reference on CUDA"
  step "bench-$size" 200 "$bin/sadtalker-bench" render --size "$size" --frames "$frames" --device vulkan \
    --reference-device cuda --python "$py" --json
  sed -n '/^{/,/^}/p' "$out/bench-$size.txt" >"$out/bench-$size.json"
done
[ -n "${GPU_CHECK_SIZES-256 512}" ] && say "bench 256: ours on the CPU (all cores), for scale" &&
step bench-256-cpu 150 "$bin/sadtalker-bench" render --size 256 --frames 2 --device cpu --python "$py" --json
[ -f "$out/bench-256-cpu.txt" ] && sed -n '/^{/,/^}/p' "$out/bench-256-cpu.txt" >"$out/bench-256-cpu.json"

say "enhancer: ours on Vulkan, reference on CUDA"
# The reference side needs gfpgan, facexlib, basicsr and cv2, which the kit does not carry (cv2 alone is
# ~50 MB): where the machine lacks them, ours is measured alone (and against our CPU frame, psnr_vs_cpu_db).
[ -n "${GPU_CHECK_SIZES-256 512}" ] &&
step enhance 150 "$bin/sadtalker-bench" enhance --device vulkan --reference-device cuda --repeat 3 \
  --python "$py" --json
[ -f "$out/enhance.txt" ] && sed -n '/^{/,/^}/p' "$out/enhance.txt" >"$out/enhance.json"

say "summary"
python3 - "$out" <<'PY' | tee -a "$log"
import json, os, sys
out = sys.argv[1]
print(open(os.path.join(out, "summary.txt")).read())
for name in ("bench-256", "bench-512", "bench-256-cpu", "enhance"):
    try:
        f = json.load(open(os.path.join(out, name + ".json")))
    except Exception as e:
        print(f"{name}: no figures ({e})")
        continue
    print(f"{name}: ours {f['per_frame_s']*1e3:.0f} ms/frame on {f['device_name']}, reference "
          f"{(f['reference_per_frame_s'] or 0)*1e3:.0f} ms on {f['reference_device']}, ratio {f['ratio']}, "
          f"psnr vs cpu {f.get('psnr_vs_cpu_db')}")
PY
