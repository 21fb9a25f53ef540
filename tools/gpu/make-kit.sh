#!/usr/bin/env bash
# Builds what tools/gpu/run-on-gpu.sh needs on a GPU machine with no package registry, into gpu-kit/
# (ignored by git; carry it with the run): release binaries of `sadtalker` and `sadtalker-bench`, the
# device test binaries (crates/gpu; the renderer, enhancers, face detection, landmarks and 3DMM
# reconstruction parity tests with their device cases), and the reference's wheel.
# Run here, from the repository root:  bash tools/gpu/make-kit.sh
# Then, on the GPU machine, from a copy of this checkout with gpu-kit/ beside it:  bash tools/gpu/run-on-gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
kit=gpu-kit
rm -rf "$kit" && mkdir -p "$kit/bin" "$kit/tests" "$kit/wheels"

cargo build --release -p sadtalker-cli -p sadtalker-bench
cargo build --release -p sadtalker-gpu --example conv_bench
cp target/release/sadtalker target/release/sadtalker-bench target/release/examples/conv_bench "$kit/bin/"

# The test executables, as cargo names them (their names carry a hash).
cargo test --release --no-run -p sadtalker-gpu -p sadtalker-render --test device \
    --test conv_parity --test devices --test elementwise_parity --test norm_parity --test tensor \
    --test spatial_parity --test attention_parity \
    -p sadtalker-enhance --test generator --test restoreformer \
    -p sadtalker-preprocess --test detect --test fan --test recon \
    --message-format=json 2>/dev/null |
  python3 -c '
import json, shutil, sys, os
for line in sys.stdin:
    m = json.loads(line)
    exe = m.get("executable") if m.get("reason") == "compiler-artifact" else None
    if exe and m["target"]["kind"] == ["test"]:
        dst = os.path.join(sys.argv[1], m["package_id"].split("#")[-1].split("@")[0].split("/")[-1] + "-" + m["target"]["name"])
        shutil.copy(exe, dst)
        print("test binary", dst)
' "$kit/tests"

# The reference (PyPI sadtalker-z) for torch CUDA: the GPU machine's image has torch, numpy, scipy,
# scikit-image, pyyaml, safetensors; the renderer's modules need nothing else.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    -d "$kit/wheels" sadtalker-z

tar -C "$kit" -cJf "$kit.tar.xz" bin tests wheels
rm -rf "$kit" && mkdir "$kit" && mv "$kit.tar.xz" "$kit/"
ls -la "$kit"
size=$(stat -c %s "$kit/$kit.tar.xz")
if [ "$size" -gt $((60 << 20)) ]; then
  echo "warning: the kit is $((size >> 20)) MiB: the device tool carries 64 MiB in all" >&2
fi
