#!/usr/bin/env bash
# GPU check (issue 12): SAGAN's full-size training step (authors' network, 64 px, batch 64) on one GPU,
# in under 8 minutes: fp32 (the generator step part by part, the paper preset, and in one pass), bf16
# autocast, torch.compile'd generator, the authors' procedure for
# comparison, and 2 and 4 runs (seeds) sharing the GPU at once; seconds per iteration and peak GPU
# memory (torch.cuda.max_memory_allocated), one JSON line per process (benchmarks/authors_step.py).
#   bash benchmarks/gpu_check.sh [--out FILE]   # default benchmarks/gpu_check_results.jsonl
#   bash benchmarks/gpu_check.sh --dry          # the same steps on CPU at a tiny size, in seconds (CI)
# --dry: demo preset, batch 4, one thread, 2 runs at once (not 4), the compiled variant captured by dynamo only (backend
# "eager": no code generation). Every step has a time limit, so that the whole check ends within
# 8 minutes even if one hangs; a step that fails or runs out of time writes {"label", "error"}.
# The compiled generator sees two batch shapes (critic and generator steps): its warm-up is 3.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD

dry=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry) dry=1 ;;
    --out) out="$2"; shift ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--dry] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done

if [ "$dry" -eq 1 ]; then
  common=(--device cpu --preset demo --batch 4 --threads 1 --warmup 1 --iters 2)
  backend=eager
  shared=(2)
  out=${out:-$(mktemp -d)/gpu_check_dry.jsonl}
  limit() { echo 300; }  # a loaded 2-core machine
else
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no GPU: use --dry')"
  common=(--device cuda --preset paper --batch 64 --threads 2 --warmup 3 --iters 10)
  backend=inductor
  shared=(2 4)
  out=${out:-benchmarks/gpu_check_results.jsonl}
  limit() { echo "$1"; }
fi
: > "$out"
t0=$SECONDS
step() { echo "=== [+$((SECONDS - t0)) s] $*" >&2; }
one() {  # one child: label, time limit (s), then authors_step.py arguments
  local label=$1 s=$2 rc=0
  shift 2
  timeout "$(limit "$s")" python benchmarks/authors_step.py "${common[@]}" --label "$label" "$@" >> "$out" || rc=$?
  if [ "$rc" -ne 0 ]; then echo "{\"label\": \"$label\", \"error\": \"exit status $rc\"}" >> "$out"; fi
}

step "environment"
python - <<'EOF' >&2
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
EOF
step "fp32, the project's step";  one fp32 45 --variant project --g-pass per_part
step "fp32, one generator pass";  one fp32-joint 45 --variant project --g-pass joint
step "bf16 autocast";             one bf16 45 --variant project --amp bf16
step "fp32, the authors' step";   one authors-fp32 45 --variant authors
step "torch.compile (generator)"; one compile 180 --variant project --compile --compile-backend "$backend" --warmup 3
for n in "${shared[@]}"; do
  step "$n runs (seeds) sharing the device"
  pids=()
  for seed in $(seq 1 "$n"); do
    one "shared-$n" $((40 + 10 * n)) --variant project --seed "$seed" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
done
step "done: $(wc -l < "$out") results in $out"
python - "$out" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
    if "error" in r:
        print(f"{r['label']:14s} FAILED: {r['error']}")
        continue
    mem = f"  peak GPU {r['peak_gpu_GiB']:.2f} GiB" if "peak_gpu_GiB" in r else ""
    print(f"{r['label']:14s} seed {r['seed']}  {r['s_per_it']:.4f} s/it{mem}")
EOF
