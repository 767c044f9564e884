#!/usr/bin/env bash
# make purge: remove everything the lab and the tests left on this machine.
#   - the demo lab and any molecule scenario left up: containers of the lab images,
#     the indextts-* Docker networks;
#   - the guest lab (QEMU, its network namespace, tgtd) and its disk image;
#   - the lab images (indextts-lab:*);
#   - ~/.cache/indextts-deploy: the wheelhouse (about 4.5 GB), the releases' venvs
#     on this host, the tiny weights, the guest image;
#   - in the checkout: .venv, .cache (collection link, artifact, sanity and gap-matrix
#     output), .lab (demo inventory, keys, speech.wav), .pytest_cache;
#     molecule's ~/.ansible/tmp/molecule.*;
#   - dockerd, when tests/lab/host-setup.sh started it.
# Debian packages that host-setup installed stay (other things may use them): the
# list and the command that removes them are printed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit
assets=$HOME/.cache/indextts-deploy
log() { echo "purge: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
size() { du -sh "$1" 2>/dev/null | cut -f1; }
installed=$(sort -u "$assets/host-packages.txt" 2>/dev/null | xargs)

if docker info >/dev/null 2>&1; then
    for image in $(docker images --format '{{.Repository}}:{{.Tag}}' 'indextts-lab'); do
        mapfile -t containers < <(docker ps -aq --filter "ancestor=$image")
        if [ ${#containers[@]} -gt 0 ]; then
            log "removing the containers of $image: $(docker inspect --format '{{.Name}}' "${containers[@]}" | tr -d / | xargs)"
            docker rm -f "${containers[@]}" >/dev/null
        fi
    done
    for network in $(docker network ls --format '{{.Name}}' --filter name=indextts); do
        log "removing the Docker network $network"
        docker network rm "$network" >/dev/null
    done
    for image in $(docker images --format '{{.Repository}}:{{.Tag}}' 'indextts-lab'); do
        log "removing the lab image $image"
        docker rmi "$image" >/dev/null
    done
fi

if [ -x tests/lab/guest/lab.sh ]; then
    tests/lab/guest/lab.sh down 2>/dev/null && log "guest lab down"
fi

for path in "$assets" .venv .cache .lab .pytest_cache; do
    if [ -e "$path" ]; then
        log "removing $path ($(size "$path"))"
        # A path of our own, by name; --one-file-system keeps a bind mount's contents safe.
        rm -rf --one-file-system -- "$path"
    fi
done
for path in "$HOME"/.ansible/tmp/molecule.*; do
    [ -e "$path" ] || continue
    log "removing $path"
    rm -rf --one-file-system -- "$path"
done

if [ -f /run/indextts-dockerd.started ]; then
    started=$(cat /run/indextts-dockerd.started)
    if [ "$started" = systemd ]; then
        log "stopping docker.service (host-setup started it)"
        as_root systemctl stop docker.service docker.socket
    elif kill -0 "$started" 2>/dev/null; then
        log "stopping dockerd, pid $started (host-setup started it)"
        as_root kill "$started"
    fi
    as_root rm -f /run/indextts-dockerd.started
fi

if [ -n "$installed" ]; then
    log "left in place: the Debian packages host-setup installed: $installed"
    log "(remove them with: apt-get purge $installed, if nothing else needs them)"
fi
log "done"
