#!/usr/bin/env bash
# Build the guest lab image: Debian 12 with a real kernel (debootstrap), as a raw ext4
# disk made without mounting anything (mkfs.ext4 -d), plus its kernel and initrd for
# QEMU's direct boot and an SSH key for the lab. Cached outside the repository by a
# hash of this recipe, so it is built once per recipe.
#
#   build.sh          build if missing, print the image directory
#   build.sh --dir    print the image directory only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/recipe.sh
. "$here/../recipe.sh"
hash=$(recipe_hash "$here")
dir=${INDEXTTS_GUEST_CACHE:-$HOME/.cache/indextts-deploy/guest}/$hash

if [ "${1:-}" = "--dir" ]; then echo "$dir"; exit 0; fi
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

for tool in debootstrap mkfs.ext4 qemu-system-x86_64 qemu-img ssh-keygen; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (make test installs it)" >&2; exit 1; }
done
mkdir -p "$dir"
work=$(mktemp -d /var/tmp/indextts-guest.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
include=$(include_list "$here")
echo "building the guest image $hash (a few minutes, once per recipe): debootstrap $suite ($include)" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$work/root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

rm -f "$dir/id_ed25519" "$dir/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C indextts-guest-lab -f "$dir/id_ed25519"
cp "$dir/id_ed25519.pub" "$work/root/tmp/lab_key.pub"
install -m 0755 "$here/setup-rootfs.sh" "$work/root/tmp/setup-rootfs.sh"
chroot "$work/root" /tmp/setup-rootfs.sh
rm -f "$work/root/tmp/setup-rootfs.sh" "$work/root/tmp/lab_key.pub"

# The host key is known now: the lab pins it instead of trusting on first use.
cut -d' ' -f1,2 "$work/root/etc/ssh/ssh_host_ed25519_key.pub" >"$dir/host_key.pub"
cp -L "$work/root/vmlinuz" "$dir/vmlinuz"
cp -L "$work/root/initrd.img" "$dir/initrd.img"
mkfs.ext4 -q -F -L guestroot -d "$work/root" "$dir/rootfs.raw" 3G >&2
touch "$dir/.complete"
# Older recipes' images (our own directories, named by a 12-digit hash) are not needed.
for old in "$(dirname "$dir")"/*; do
    case $(basename "$old") in
        "$hash") ;;
        [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])
            rm -rf --one-file-system "$old" ;;
    esac
done
echo "$dir"
