#!/usr/bin/env bash
# Build what tools/device-check.sh runs on a GPU machine that has no Rust: the fido binary,
# the one-binary GPU test suite (tests/device.rs) and the kernel benchmarks, stripped and
# xz-compressed, plus EfficientNet-Lite0's weights, one real image and the Vulkan loader's
# Debian packages. The bundle travels with the working tree, which may hold 64 MiB in all,
# so this checks its size.
#
#   tools/device-bundle.sh [BUNDLE_DIR]       (default: device-bundle/, git-ignored)
#
# FIDO_BUNDLE_IMAGE names the image (default: the README's beetle from ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-device-bundle}
image=${FIDO_BUNDLE_IMAGE:-../shared/data/imagenet-val/images/ILSVRC2012_val_00000361.JPEG}
# What may travel besides the repository's own files (about 10 MiB).
limit_mib=48

die() { echo "device-bundle: $*" >&2; exit 1; }
[ -f weights/efficientnet-lite0.safetensors ] || die "run weights/fetch-efficientnet-lite0.sh first"
[ -f "$image" ] || die "no image at $image; set FIDO_BUNDLE_IMAGE"
command -v xz >/dev/null || die "xz is missing (apt-get install xz-utils)"

# The executable cargo built for one target, from its JSON messages.
executable() {
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1"
}

echo "device-bundle: building (release)"
cargo build --release --bin fido
suite=$(cargo test --release --features device-suite --test device --no-run --message-format=json | executable device)
bench=$(cargo bench --bench kernels --no-run --message-format=json | executable kernels)
[ -x "$suite" ] && [ -x "$bench" ] || die "could not find the built test and bench executables"

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/weights" "$bundle/gl"
for pair in "fido:target/release/fido" "device-tests:$suite" "kernels:$bench"; do
    name=${pair%%:*}
    strip -o "$bundle/bin/$name" "${pair#*:}"
    xz -T0 -6 "$bundle/bin/$name"
done
cp weights/efficientnet-lite0.safetensors "$bundle/weights/"
cp "$image" "$bundle/image.jpg"

# The Vulkan loader and GL dispatch libraries for amd64, as Debian packages to unpack there
# (the GPU image has the NVIDIA driver but not always the loader). Lists go to a private
# directory, so the machine's apt state is untouched.
lists=$(mktemp -d)
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
mkdir -p "$lists/partial"
if apt-get "${apt_opts[@]}" update >/dev/null 2>&1 &&
    (cd "$bundle/gl" && apt-get "${apt_opts[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1); then
    echo "device-bundle: Vulkan loader packages: $(ls "$bundle/gl" | tr '\n' ' ')"
else
    echo "device-bundle: could not download the Vulkan loader packages; the check then needs libvulkan1 on the GPU machine" >&2
fi
rm -rf "$lists"

size=$(du -sm "$bundle" | cut -f1)
echo "device-bundle: $bundle is ${size} MiB (limit ${limit_mib})"
ls -l "$bundle" "$bundle/bin"
[ "$size" -le "$limit_mib" ] || die "$bundle is ${size} MiB, over ${limit_mib}"
