#!/usr/bin/env bash
# Prepare this machine to run the lab and the tests: a Docker engine, debootstrap,
# QEMU, tgt, sshd (installed, not started) and the tools the tests call.
# Used by `make demo`, `make test` and .ci/run. Idempotent and quick when all
# is in place. Installs from Debian only; nothing else is downloaded.
set -euo pipefail

log() { echo "host-setup: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
command -v docker >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)
command -v ssh-keygen >/dev/null 2>&1 || need_pkgs+=(openssh-client)
# The pytest tests of model_cache_sync over SSH start their own sshd on 127.0.0.1.
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
# The guest lab (tests/lab/guest): QEMU, and tgt for its iSCSI target.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || need_pkgs+=(qemu-utils)
command -v tgtd >/dev/null 2>&1 || need_pkgs+=(tgt)
command -v mkfs.ext4 >/dev/null 2>&1 || need_pkgs+=(e2fsprogs)

if [ ${#need_pkgs[@]} -gt 0 ]; then
    # shellcheck disable=SC2207
    pkgs=($(printf '%s\n' "${need_pkgs[@]}" | sort -u))
    log "installing from Debian (usually 1-3 min): ${pkgs[*]}"
    as_root apt-get update -qq
    # Install services without starting them here (tgt would start a target on this
    # machine's own network, sshd would listen on it): the lab and the tests start
    # their own, in their own namespace or on 127.0.0.1.
    policy_made=no
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 0755 /usr/sbin/policy-rc.d
        policy_made=yes
    fi
    # One line per package as it is set up, apt's other chatter left out.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" |
        sed -un 's/^Setting up \([^ ]*\) .*/host-setup:   set up \1/p' >&2
    [ "$policy_made" = no ] || as_root rm -f /usr/sbin/policy-rc.d
    # make purge names them (it leaves packages in place: other things may use them).
    mkdir -p "$HOME/.cache/indextts-deploy"
    printf '%s\n' "${pkgs[@]}" >>"$HOME/.cache/indextts-deploy/host-packages.txt"
fi

if ! docker info >/dev/null 2>&1; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        log "starting docker.service"
        as_root systemctl start docker
        echo systemd | as_root tee /run/indextts-dockerd.started >/dev/null
    else
        log "starting dockerd (log: /var/log/indextts-dockerd.log)"
        as_root sh -c 'nohup dockerd >/var/log/indextts-dockerd.log 2>&1 & echo $! >/run/indextts-dockerd.started'
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || {
        log "the Docker daemon did not answer within 60 s; see /var/log/indextts-dockerd.log"
        exit 1
    }
fi
log "ready: $(docker version --format 'docker {{.Server.Version}}'), $(debootstrap --version)"
