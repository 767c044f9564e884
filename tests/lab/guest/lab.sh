#!/usr/bin/env bash
# The guest lab: a Debian 12 guest with a real kernel under QEMU software emulation,
# and an iSCSI target (tgtd) it reaches over two storage paths, all inside a network
# namespace this script creates and removes.
#
#   namespace indextts-guest:  br1 10.99.1.1/24 (MTU 9000) -- tap1 -- guest 10.99.1.2
#                              br2 10.99.2.1/24 (MTU 9000) -- tap2 -- guest 10.99.2.2
#                              tgtd listening on both bridges (portals), one LUN
#   guest management NIC:      QEMU user-mode, SSH forwarded from 127.0.0.1:$GUEST_SSH_PORT
#
#   lab.sh up      build the image if needed, start everything, wait for SSH,
#                  print the connection facts as JSON
#   lab.sh down    stop everything it started; leaves nothing running
#   lab.sh path N up|down   take storage path N (1 or 2) down or up (tests)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ns=${GUEST_NETNS:-indextts-guest}
run=${GUEST_RUN_DIR:-/var/tmp/indextts-guest-lab}
port=${GUEST_SSH_PORT:-22222}
ctl=${GUEST_TGT_CONTROL_PORT:-7}
target=${GUEST_TARGET_IQN:-iqn.2026-11.io.indextts.lab:cache}
lun_mb=${GUEST_LUN_MB:-512}
chap_user=lab-initiator

log() { echo "guest-lab: $*" >&2; }
in_ns() { ip netns exec "$ns" "$@"; }
tgtadm_ns() { in_ns tgtadm -C "$ctl" --lld iscsi "$@"; }

up() {
    local image
    image=$("$here/build.sh")
    for tool in qemu-system-x86_64 qemu-img tgtd tgtadm ip; do
        command -v "$tool" >/dev/null || { log "$tool is missing (make test installs it)"; exit 1; }
    done
    if [ -f "$run/qemu.pid" ] && kill -0 "$(cat "$run/qemu.pid")" 2>/dev/null; then
        log "already up"; facts "$image"; return
    fi
    down_quiet
    mkdir -p "$run"
    chmod 0700 "$run"
    echo "$image" >"$run/image_dir"

    log "namespace $ns with two storage bridges (MTU 9000)"
    ip netns add "$ns"
    in_ns ip link set lo up
    for n in 1 2; do
        in_ns ip link add "br$n" type bridge
        in_ns ip link set "br$n" mtu 9000 up
        in_ns ip addr add "10.99.$n.1/24" dev "br$n"
    done

    log "iSCSI target $target: a ${lun_mb} MiB LUN on portals 10.99.1.1 and 10.99.2.1, CHAP"
    truncate -s "${lun_mb}M" "$run/lun1.img"
    in_ns tgtd -C "$ctl" --pid-file "$run/tgtd.pid" 2>"$run/tgtd.log" ||
        { cat "$run/tgtd.log" >&2; exit 1; }
    for _ in $(seq 1 50); do tgtadm_ns --op show --mode system >/dev/null 2>&1 && break; sleep 0.1; done
    tgtadm_ns --op new --mode target --tid 1 --targetname "$target"
    tgtadm_ns --op new --mode logicalunit --tid 1 --lun 1 --backing-store "$run/lun1.img"
    for n in 1 2; do tgtadm_ns --op bind --mode target --tid 1 --initiator-address "10.99.$n.2"; done
    # The secret is generated here, kept in a 0600 file, and reaches tgtadm through
    # its environment-free stdin-less invocation inside the private namespace only.
    [ -f "$run/chap_password" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$run/chap_password")
    tgtadm_ns --op new --mode account --user "$chap_user" --password "$(cat "$run/chap_password")"
    tgtadm_ns --op bind --mode account --tid 1 --user "$chap_user"

    log "guest: QEMU TCG, 2 vCPUs, 1 GiB, SSH on 127.0.0.1:$port"
    # Under emulation the guest kernel finds the vCPUs' TSCs "unsynchronized" and falls
    # back to the HPET, an emulated device that QEMU's main thread serves on every clock
    # read. TCG's TSC is one host clock for every vCPU, so the guest is told to trust it
    # (boot to SSH: 87 s with the HPET, 42-50 s with the TSC, single runs on a noisy
    # machine). The disk ignores flushes (cache=unsafe): the overlay is thrown away with
    # the lab, and the verify's reboot is the guest's own (QEMU keeps running).
    qemu-img create -q -f qcow2 -F raw -b "$image/rootfs.raw" "$run/disk.qcow2"
    for n in 1 2; do ip tuntap add dev "itg-tap$n" mode tap; done
    qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 -name indextts-guest \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 quiet tsc=reliable clocksource=tsc" \
        -drive "file=$run/disk.qcow2,if=virtio,format=qcow2,cache=unsafe" \
        -netdev "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
        -device virtio-net-pci,netdev=mgmt,mac=52:54:00:00:00:01 \
        -netdev tap,id=s1,ifname=itg-tap1,script=no,downscript=no \
        -device virtio-net-pci,netdev=s1,mac=52:54:00:00:01:01 \
        -netdev tap,id=s2,ifname=itg-tap2,script=no,downscript=no \
        -device virtio-net-pci,netdev=s2,mac=52:54:00:00:02:01 \
        -display none -serial "file:$run/console.log" -daemonize -pidfile "$run/qemu.pid"
    # QEMU holds the taps open; move them into the lab namespace, onto the bridges.
    for n in 1 2; do
        ip link set "itg-tap$n" netns "$ns"
        in_ns ip link set "itg-tap$n" master "br$n" mtu 9000 up
    done

    echo "[127.0.0.1]:$port $(cat "$image/host_key.pub")" >"$run/known_hosts"
    log "waiting for the guest's sshd (software emulation: about 30-60 s)"
    local deadline=$((SECONDS + 240))
    until guest_ssh true 2>/dev/null; do
        if [ $SECONDS -gt $deadline ]; then
            log "no SSH after 240 s; the console says:"; tail -n 20 "$run/console.log" >&2; exit 1
        fi
        kill -0 "$(cat "$run/qemu.pid")" 2>/dev/null || { log "QEMU exited"; tail -n 20 "$run/console.log" >&2; exit 1; }
        sleep 3
    done
    facts "$image"
}

guest_ssh() {
    ssh -q -p "$port" -i "$(cat "$run/image_dir")/id_ed25519" -o BatchMode=yes -o ConnectTimeout=5 \
        -o UserKnownHostsFile="$run/known_hosts" -o StrictHostKeyChecking=yes ansible@127.0.0.1 "$@"
}

facts() {
    local image=$1
    cat <<JSON
{"address": "127.0.0.1", "port": $port, "user": "ansible", "identity_file": "$image/id_ed25519",
 "known_hosts": "$run/known_hosts", "target": "$target", "portals": ["10.99.1.1:3260", "10.99.2.1:3260"],
 "chap_username": "$chap_user", "chap_password_file": "$run/chap_password", "netns": "$ns",
 "run_dir": "$run"}
JSON
}

down_quiet() {
    if [ -f "$run/qemu.pid" ]; then
        local pid; pid=$(cat "$run/qemu.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
    fi
    if ip netns list | grep -qw "$ns"; then
        # tgtd ignores SIGTERM: delete its targets, then the daemon, over its control port.
        if tgtadm_ns --op show --mode system >/dev/null 2>&1; then
            tgtadm_ns --op delete --mode target --tid 1 --force 2>/dev/null || true
            tgtadm_ns --op delete --mode system 2>/dev/null || true
        fi
        ip netns delete "$ns"
    fi
    for n in 1 2; do ip link delete "itg-tap$n" 2>/dev/null || true; done
    # Only files this script made, in its own directory.
    rm -f "$run/qemu.pid" "$run/tgtd.pid" "$run/disk.qcow2" "$run/lun1.img" "$run/known_hosts" \
          "$run/console.log" "$run/tgtd.log" "$run/chap_password" "$run/image_dir"
    if [ -d "$run" ]; then rmdir "$run" 2>/dev/null || true; fi
}

case "${1:-}" in
    up) up ;;
    down) down_quiet; log "down" ;;
    path) in_ns ip link set "itg-tap${2:?path 1 or 2}" "${3:?up or down}" ;;
    ssh) shift; guest_ssh "$@" ;;
    *) echo "usage: lab.sh up|down|path N up|down|ssh CMD" >&2; exit 2 ;;
esac
