#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with the seeds each target starts from: the test fixtures
# (tests/fixtures/**) of its format, plus the small hand-made seeds committed under
# fuzz/seeds/ for the formats that have no fixture file (images, manifests, TF bundles).
# Idempotent: files are copied by content hash, so rerunning adds nothing twice, and what
# the fuzzer has added to a corpus is kept.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures

add() { # add TARGET FILE...
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for f in "$@"; do
        [ -f "$f" ] || continue
        cp "$f" "corpus/$target/seed-$(sha1sum "$f" | cut -c1-16)"
    done
}

add safetensors "$fixtures"/weights/*.safetensors "$fixtures"/composite.safetensors \
    "$fixtures"/models/resnet18.safetensors "$fixtures"/models/alexnet.safetensors \
    "$fixtures"/inpaint/ca_64.safetensors "$fixtures"/onnx/ops/*.golden.safetensors
add pytorch_zip "$fixtures"/weights/*zip*.pt "$fixtures"/weights/huge_view.pt
add pytorch_legacy "$fixtures"/weights/*legacy*.pt "$fixtures"/weights/plain_pickle.pt
add onnx "$fixtures"/onnx/ops/*.onnx "$fixtures"/onnx/squeezenet1_1.onnx
add tf_bundle seeds/tf_bundle/*
add image seeds/image/*
add manifest seeds/manifest/*

for d in corpus/*/; do
    echo "$d: $(ls "$d" | wc -l) files"
done
