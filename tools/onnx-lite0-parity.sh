#!/usr/bin/env bash
# EfficientNet-Lite0 from ONNX against the native model, with the same real weights:
#   1. top-1 of both on a labelled manifest (default: the 300 imagenet-val images), and
#      how many images get the same class;
#   2. one FIDO explanation of the same image with the same seed by each, and how far the
#      two importance maps are apart.
# Needs weights/efficientnet-lite0.safetensors (weights/fetch-efficientnet-lite0.sh) and
# weights/efficientnet_lite0.onnx (tools/onnx_models.py --lite0, which needs PyTorch).
#
#   tools/onnx-lite0-parity.sh [MANIFEST] [IMAGE] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
MANIFEST=${1:-../shared/data/imagenet-val/manifest.csv}
IMAGE=${2:-../shared/data/imagenet-val/images/ILSVRC2012_val_00000361.JPEG}
STEPS=${3:-60}
FIDO=${FIDO_BIN:-target/release/fido}
NATIVE=(--model efficientnet-lite0 --weights weights/efficientnet-lite0.safetensors)
ONNX=(--model weights/efficientnet_lite0.onnx --preprocess lite0)
for f in weights/efficientnet-lite0.safetensors weights/efficientnet_lite0.onnx "$MANIFEST" "$IMAGE"; do
    [[ -e $f ]] || { echo "onnx-lite0-parity: error: $f is missing" >&2; exit 1; }
done
[[ -x $FIDO ]] || cargo build --release
OUT=$(mktemp -d)
"$FIDO" classify "${NATIVE[@]}" --manifest "$MANIFEST" --json >"$OUT/native.json"
"$FIDO" classify "${ONNX[@]}" --manifest "$MANIFEST" --json >"$OUT/onnx.json"
"$FIDO" explain "${NATIVE[@]}" --image "$IMAGE" --steps "$STEPS" --seed 3 --out "$OUT/native" >/dev/null
"$FIDO" explain "${ONNX[@]}" --image "$IMAGE" --steps "$STEPS" --seed 3 --out "$OUT/onnx" >/dev/null
python3 - "$OUT" <<'PY'
import json, struct, sys
out = sys.argv[1]
a, b = (json.load(open(f"{out}/{k}.json")) for k in ("native", "onnx"))
same = sum(x["top1"] == y["top1"] for x, y in zip(a["results"], b["results"]))
print(f"top-1: native {a['top1']:.4f}, onnx {b['top1']:.4f}; same class on {same} of {a['images']} images")

def importance(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    meta = json.loads(raw[8:8 + n])["importance"]
    lo, hi = meta["data_offsets"]
    data = raw[8 + n + lo:8 + n + hi]
    return struct.unpack(f"<{len(data) // 4}f", data)

p, q = importance(f"{out}/native/saliency.safetensors"), importance(f"{out}/onnx/saliency.safetensors")
diff = max(abs(x - y) for x, y in zip(p, q))
mean = sum(abs(x - y) for x, y in zip(p, q)) / len(p)
print(f"FIDO map, same seed: max |difference| {diff:.2e}, mean {mean:.2e} (importance in [0, 1], {len(p)} pixels)")
PY
rm -rf "$OUT"
