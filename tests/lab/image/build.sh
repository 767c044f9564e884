#!/usr/bin/env bash
# Build the lab host image locally: debootstrap Debian 12 + docker import.
# No registry is reachable, so nothing is pulled. The tag is a hash of the
# recipe (this directory), so the image is rebuilt only when the recipe changes.
#
#   build.sh          build if missing, print the image tag
#   build.sh --tag    print the tag only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/recipe.sh
. "$here/../recipe.sh"
hash=$(recipe_hash "$here")
tag="indextts-lab:$hash"

if [ "${1:-}" = "--tag" ]; then echo "$tag"; exit 0; fi

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
fi

work=$(mktemp -d /var/tmp/indextts-lab-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
include=$(include_list "$here")
echo "building $tag (usually 1-2 min, once per recipe): debootstrap $suite ($include)" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$work/root" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
echo "building $tag: configuring the root filesystem, then docker import" >&2
install -m 0755 "$here/setup-rootfs.sh" "$work/root/tmp/setup-rootfs.sh"
chroot "$work/root" /tmp/setup-rootfs.sh
rm -f "$work/root/tmp/setup-rootfs.sh"
tar -C "$work/root" -c . | docker import \
    --change 'CMD ["/sbin/init"]' --change 'ENV container=docker' \
    --message "indextts.deploy lab host ($suite, recipe $hash)" - "$tag" >/dev/null
echo "$tag"
