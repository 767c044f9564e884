#!/usr/bin/env bash
# Runs inside the guest root filesystem (chroot) at image build time.
set -euo pipefail
echo guest >/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 guest\n' >/etc/hosts
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' >/etc/fstab

# Management NIC (QEMU user-mode networking, SSH forwarded from the host's loopback).
# The two storage NICs get fixed addresses on the lab's two storage bridges; their MTU
# is left at 1500 for the storage_network role to raise.
mkdir -p /etc/systemd/network
cat >/etc/systemd/network/10-mgmt.network <<'NET'
[Match]
MACAddress=52:54:00:00:00:01
[Network]
DHCP=ipv4
NET
for n in 1 2; do
    printf '[Match]\nMACAddress=52:54:00:00:0%d:01\n[Network]\nAddress=10.99.%d.2/24\n' "$n" "$n" \
        >/etc/systemd/network/20-storage$n.network
done
systemctl enable systemd-networkd.service ssh.service serial-getty@ttyS0.service >/dev/null 2>&1
# No wait for every link: the storage links may stay down without failing the boot.
systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1

useradd --create-home --shell /bin/bash ansible
echo 'ansible ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/ansible
chmod 0440 /etc/sudoers.d/ansible
install -d -m 0700 -o ansible -g ansible /home/ansible/.ssh
install -m 0600 -o ansible -g ansible /tmp/lab_key.pub /home/ansible/.ssh/authorized_keys

# A fresh identity per image; no initiator name baked in (the role makes one per host).
rm -f /etc/iscsi/initiatorname.iscsi
: >/etc/machine-id
# The guest reaches no package mirror (QEMU user networking with restrict=on): what
# the roles install is baked in above, and the package lists count as fresh, so apt
# tasks with cache_valid_time find the packages installed instead of failing to update
# (until 2037: later dates do not survive mkfs.ext4 -d).
apt-get clean
mkdir -p /var/lib/apt/periodic
touch -d '2037-12-31' /var/lib/apt/periodic/update-success-stamp
