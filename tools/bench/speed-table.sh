#!/usr/bin/env bash
# The README's renderer speed table, from one run: `sadtalker-bench render --json` for every
# kernel level and precision this CPU has, at 2 and 1 threads (256), and at 512 (2 threads), each
# against the reference in the same invocation. Writes one JSON per row and table.md under OUT.
#
#   bash tools/bench/speed-table.sh [OUT]      # OUT defaults to target/speed-table
#
# Needs the reference venv (see the README's Benchmarks section); without it only our figures are
# listed. FRAMES (default 2) sets the frames timed per row. Takes ~20 min on a 2-core AVX2 machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/speed-table}
frames=${FRAMES:-2}
mkdir -p "$out"
rm -f "$out"/render-*.json "$out/rows"
cargo build --release -q -p sadtalker-bench
bench=target/release/sadtalker-bench

flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
isas=()
[[ $flags == *avx512f* ]] && isas+=(avx512)
[[ $flags == *avx2* && $flags == *fma* ]] && isas+=(avx2)
[[ ${#isas[@]} -gt 0 ]] || isas=(generic)
precisions=(fp32)
[[ $flags == *amx_bf16* ]] && precisions+=(bf16)

rows=()
for threads in 2 1; do
    for isa in "${isas[@]}"; do
        for precision in "${precisions[@]}"; do
            rows+=("256 $threads $isa $precision")
        done
    done
done
rows+=("512 2 ${isas[0]} fp32")

for row in "${rows[@]}"; do
    read -r size threads isa precision <<<"$row"
    name="render-$size-t$threads-$isa-$precision"
    echo "== $name" >&2
    "$bench" render --size "$size" --threads "$threads" --isa "$isa" --precision "$precision" \
        --frames "$frames" --json >"$out/$name.json" 2>"$out/$name.log"
    echo "$name" >>"$out/rows"
done

python3 - "$out" "$(date -u +%F)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'EOF' | tee "$out/table.md"
import json, os, sys
out, day, cpu = sys.argv[1:4]
def f(v, d=2):
    return "–" if v is None else f"{v:.{d}f}"
print(f"One run, {day}, {cpu}, {os.cpu_count()} cores; `bash tools/bench/speed-table.sh`:\n")
print("| size | threads | kernels | precision | ours s/frame | reference s/frame | ratio | PSNR vs fp32 | source prep. ours (first call) | reference | ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in open(f"{out}/rows").read().split():
    r = json.load(open(f"{out}/{name}.json"))
    psnr = r.get("psnr_vs_fp32_db")
    print(f"| {r['size']} | {r['threads']} | {r['isa']} | {r['precision']} | {f(r['per_frame_s'])} | "
          f"{f(r.get('reference_per_frame_s'))} | **{f(r.get('ratio'))}** | "
          f"{'–' if psnr is None else f(psnr, 1) + ' dB'} | {f(r['prepare_s'])} ({f(r['prepare_cold_s'])}) | "
          f"{f(r.get('reference_prepare_s'))} | {f(r.get('prepare_ratio'))} |")
EOF
