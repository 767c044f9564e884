# Shared by the lab's image builders (tests/lab/image/build.sh, tests/lab/guest/build.sh):
# where Debian comes from, which release, and the hash of a recipe that names its image.
# shellcheck shell=bash
# shellcheck disable=SC2034  # used by the scripts that source this file
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

# recipe_hash DIR: 12 hex digits over DIR's package list, setup script and builder
# (and this file): a new image exactly when one of them changes.
recipe_hash() {
    cat "$1/packages.txt" "$1/setup-rootfs.sh" "$1/build.sh" "${BASH_SOURCE[0]}" \
        | { cat; echo "$suite"; } | sha256sum | cut -c1-12
}

# include_list DIR: DIR's package list as debootstrap --include takes it.
include_list() {
    grep -v '^\s*#' "$1/packages.txt" | grep -v '^\s*$' | paste -sd, -
}
