#!/usr/bin/env bash
# Runs inside the debootstrapped root (chroot) to make it a lab host:
# systemd as PID 1 in an unprivileged container, sshd with per-host keys,
# an "ansible" user with passwordless sudo.
set -euo pipefail

# No recommends, no docs: keeps role installs in the lab quick.
cat > /etc/apt/apt.conf.d/90lab <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
APT

# Units that cannot work in a container.
for unit in systemd-remount-fs.service getty@tty1.service console-getty.service \
            systemd-firstboot.service sys-kernel-config.mount sys-kernel-debug.mount; do
    ln -sf /dev/null "/etc/systemd/system/$unit"
done

# Each container gets its own machine-id and ssh host keys at first boot;
# an image must not carry them (every lab host would share one identity).
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
cat > /etc/systemd/system/lab-ssh-hostkeys.service <<'UNIT'
[Unit]
Description=Generate this lab host's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/lab-ssh-hostkeys.service \
    /etc/systemd/system/multi-user.target.wants/lab-ssh-hostkeys.service

cat > /etc/ssh/sshd_config.d/lab.conf <<'SSHD'
PasswordAuthentication no
PermitRootLogin no
UseDNS no
SSHD

useradd --create-home --shell /bin/bash --comment "lab automation user" ansible
install -d -m 0700 -o ansible -g ansible /home/ansible/.ssh
echo 'ansible ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/ansible
chmod 0440 /etc/sudoers.d/ansible
# Ansible's remote_tmp for both users, made as Ansible would (0700), so that the first
# run does not warn that it had to create them.
install -d -m 0700 /root/.ansible /root/.ansible/tmp
install -d -m 0700 -o ansible -g ansible /home/ansible/.ansible /home/ansible/.ansible/tmp

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/log/*.log
# The lists are gone: make them look old, so that apt's cache_valid_time in roles
# refreshes them instead of trusting an empty cache as fresh.
rm -f /var/lib/apt/periodic/update-success-stamp
touch -d @0 /var/lib/apt/lists
