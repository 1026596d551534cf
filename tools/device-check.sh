#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a GPU and no Rust, within one 10-minute call:
#
#   tools/device-bundle.sh                  here, once: builds device-bundle/ (binaries etc.)
#   tools/device-check.sh OUT               there, from the repository's root
#   tools/device-check.sh --dry-run OUT     the same steps at reduced sizes, on any adapter
#
# Steps: install the Vulkan loader if the machine lacks one; `fido info --json`; every
# kernel and model test under FIDO_KERNELS=gpu and =cpu; the kernel benchmarks (matmul
# 1024³ and 4096³, convolutions, depthwise, whole models, the FIDO step); a ResNet-50 FIDO
# explanation at the paper's settings (synthetic weights, B = 8, 300 steps) and a Lite0
# one on a real image; PyTorch CUDA eager on the same ResNet-50 FIDO step, where PyTorch
# is installed. OUT gets summary.json (every step's status and time, the measurements and
# the targets), logs.txt, bench.jsonl, info.json and lite0/ (the explanation's files).
# FIDO_BUNDLE names the bundle (default device-bundle). Exit status 0 when every step ran.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
if [ "${1:-}" = "--dry-run" ]; then
    dry=1
    shift
fi
[ $# -eq 1 ] || { echo "usage: tools/device-check.sh [--dry-run] OUT" >&2; exit 2; }
out=$1
bundle=${FIDO_BUNDLE:-device-bundle}
[ -d "$bundle/bin" ] || { echo "device-check: no $bundle/bin; run tools/device-bundle.sh first" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
: >"$out/bench.jsonl"
steps_file=$(mktemp)
started=$(date +%s)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

logs=$(mktemp -d)
log() { echo "device-check: $*" | tee -a "$logs/00-device-check.log" >&2; }

# run NAME TIMEOUT_S COMMAND...: run one step, its output kept in its own log (logs.txt
# gathers them at the end, so steps run side by side do not interleave), its status and
# seconds added to the step list. A step that fails does not stop the later ones.
run() {
    local name=$1 limit=$2
    shift 2
    log "$name (limit ${limit}s): $*"
    local t0 rc secs
    t0=$(date +%s.%N)
    (
        echo "== $name: $*"
        timeout --kill-after=10 "$limit" "$@" 2>&1
        rc=$?
        echo "== $name: exit $rc"
        exit $rc
    ) >"$logs/$name.log"
    rc=$?
    secs=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
    log "$name: exit $rc after ${secs}s"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$secs" >>"$steps_file"
}

# The Vulkan loader: the NVIDIA image has the driver but may lack libvulkan.
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    if ls "$bundle"/gl/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        log "installing the Vulkan loader from $bundle/gl"
        for deb in "$bundle"/gl/*.deb; do dpkg -x "$deb" /; done
        ldconfig
    else
        log "no libvulkan.so.1 and no loader packages to install; Vulkan adapters will be missing"
    fi
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then
    export VK_DRIVER_FILES=$icd
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi

bin=$(mktemp -d)
for f in "$bundle"/bin/*.xz; do xz -dc "$f" >"$bin/$(basename "$f" .xz)"; done
chmod +x "$bin"/*
weights=$bundle/weights/efficientnet-lite0.safetensors
threads=$(nproc)

# Reduced sizes for the rehearsal on a CPU adapter.
if [ $dry = 1 ]; then
    test_filter=(conv_tiles:: matmul:: reduce:: softmax:: runtime:: models::resnet18 models::efficientnet)
    bench_cases=("matmul 512x512x512" "conv resnet50 3x3 64->64" "conv lite0 dw 5x5 672" "model efficientnet-lite0 b1 fwd" "fido step lite0 b8 blur")
    explain_case="fido explain resnet50 b1 x2 blur"
    lite0_args=(--steps 3 --batch 2)
    torch_args=(--device cpu --steps 2 --batch 1)
    limit_tests=900
else
    test_filter=()
    bench_cases=("matmul 1024x1024x1024" "matmul 4096x4096x4096" "conv " "model " "fido step")
    explain_case="fido explain resnet50 b8 x300 blur"
    lite0_args=()
    torch_args=()
    limit_tests=240
fi

run info 60 sh -c "'$bin/fido' info --json > '$out/info.json'"
# Both profiles at once: they are independent processes with a device each.
run tests-gpu "$limit_tests" env FIDO_KERNELS=gpu "$bin/device-tests" --test-threads="$threads" "${test_filter[@]}" &
run tests-cpu "$limit_tests" env FIDO_KERNELS=cpu "$bin/device-tests" --test-threads="$threads" "${test_filter[@]}" &
wait
run bench 300 sh -c "'$bin/kernels' --json $(printf "'%s' " "${bench_cases[@]}") >> '$out/bench.jsonl'"
run explain-resnet50 180 sh -c "'$bin/kernels' --json '$explain_case' >> '$out/bench.jsonl'"
run explain-lite0 120 "$bin/fido" explain --model efficientnet-lite0 --weights "$weights" \
    --image "$bundle/image.jpg" --out "$out/lite0" "${lite0_args[@]}"
if python3 -c 'import torch, torchvision' 2>/dev/null; then
    run pytorch 180 sh -c "python3 tools/torch_fido_step.py $(printf "'%s' " "${torch_args[@]}") > '$out/pytorch.json'"
else
    log "PyTorch with torchvision is not installed: no PyTorch comparison"
fi

cat "$logs"/*.log >"$out/logs.txt"

# summary.json: every step, every measurement, and the targets.
python3 - "$out" "$steps_file" "$dry" "$(($(date +%s) - started))" <<'EOF'
import json, os, sys

out, steps_file, dry, seconds = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
steps = []
for line in open(steps_file):
    name, rc, secs = line.rstrip("\n").split("\t")
    steps.append({"step": name, "exit": int(rc), "seconds": float(secs)})

def load(path):
    try:
        return json.load(open(os.path.join(out, path)))
    except (OSError, ValueError):
        return None

bench = []
for line in open(os.path.join(out, "bench.jsonl")):
    try:
        bench.append(json.loads(line))
    except ValueError:
        pass
by_name = {b["name"]: b for b in bench}
lite0 = load("lite0/summary.json")
torch = load("pytorch.json")

def case(prefix):
    return next((b for b in bench if b["name"].startswith(prefix)), None)

explain = case("fido explain resnet50")
step = by_name.get("fido step resnet50 b8 blur")
matmul = by_name.get("matmul 4096x4096x4096")
conv3 = by_name.get("conv resnet50 3x3 64->64 @56 b8 fwd")
peak = by_name.get("peak")

def target(what, value, goal, ok):
    return {"target": what, "measured": value, "goal": goal, "met": None if value is None else ok(value)}

targets = [
    target("ResNet-50 FIDO, B=8 x 300 steps, seconds",
           explain and explain["ms_median"] / 1e3, "<= 2", lambda v: v <= 2.0),
    target("matmul 4096^3, fraction of the vec4 FMA peak",
           matmul and matmul["frac_fma_peak"], ">= 0.5", lambda v: v >= 0.5),
    target("conv 3x3 64->64 @56 b8, fraction of the vec4 FMA peak",
           conv3 and conv3["frac_fma_peak"], ">= 0.4", lambda v: v >= 0.4),
    target("FIDO step ResNet-50 b8 / PyTorch CUDA eager",
           step and torch and "ms_median" in torch and step["ms_median"] / torch["ms_median"],
           "<= 1.5", lambda v: v <= 1.5),
]
summary = {
    "dry_run": dry,
    "seconds": seconds,
    "adapter": load("info.json"),
    "steps": steps,
    "all_steps_passed": all(s["exit"] == 0 for s in steps),
    "peak": peak,
    "bench": bench,
    "lite0_explain": lite0,
    "pytorch": torch,
    "targets": targets,
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps({"all_steps_passed": summary["all_steps_passed"], "seconds": seconds,
                  "steps": steps, "targets": targets}, indent=1))
sys.exit(0 if summary["all_steps_passed"] else 1)
EOF
status=$?
rm -rf "$bin" "$steps_file" "$logs"
exit $status
