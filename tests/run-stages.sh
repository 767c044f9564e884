#!/usr/bin/env bash
# make test's driver: runs the stages in order, says as each one starts how long it
# usually takes, and ends with a table (stage, time, result). A stage is a make target
# or molecule/<scenario>. The first failing stage stops the run; the table still prints.
#   tests/run-stages.sh setup lint build sanity unit integration molecule
# "molecule" stands for every scenario in molecule/, one row each.
set -uo pipefail
cd "$(dirname "$0")/.." || exit

# What each stage took on this project's 2-core machine, warm (assets cached), and why.
usual() {
    case "$1" in
        setup) echo "under 1 min when set up; 15-25 min on a fresh machine (Debian packages, venv, lab image, a 4.5 GB wheelhouse, the release's venv, tiny weights)" ;;
        lint) echo "about 1 min" ;;
        build) echo "about 30 s" ;;
        sanity) echo "about 1-2 min" ;;
        unit) echo "about 3 min (real rsync, sshd, pip, libtorrent)" ;;
        integration) echo "about 12 min (the real IndexTTS2 started about 45 times, both pins)" ;;
        molecule/cache_sync) echo "about 7-9 min (rsync fan-out and faults, then the p2p swarm pass)" ;;
        molecule/guest) echo "about 22 min (a Debian guest under QEMU without KVM: boot, reboot)" ;;
        molecule/iscsi_target) echo "about 1-2 min" ;;
        molecule/default) echo "about 14-19 min (golden builds the real IndexTTS2; verify starts it repeatedly)" ;;
        molecule/storage_network) echo "about 4 min (networkd, NetworkManager, ifupdown)" ;;
        *) echo "(no time on record)" ;;
    esac
}

stages=()
for stage in "$@"; do
    if [ "$stage" = molecule ]; then
        for dir in molecule/*/; do
            stages+=("molecule/$(basename "$dir")")
        done
    else
        stages+=("$stage")
    fi
done

run() {
    case "$1" in
        molecule/*) molecule test -s "${1#molecule/}" ;;
        *) make --no-print-directory "$1" ;;
    esac
}

minutes() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

results=()
failed=""
total_start=$SECONDS
for stage in "${stages[@]}"; do
    if [ -n "$failed" ]; then
        results+=("$stage|-|not run")
        continue
    fi
    printf '\n=== %s, started %s: usually %s\n' "$stage" "$(date +%H:%M:%S)" "$(usual "$stage")"
    start=$SECONDS
    if run "$stage"; then
        result=passed
    else
        result="FAILED (exit $?)"
        failed=$stage
    fi
    took=$((SECONDS - start))
    printf '=== %s: %s in %s\n' "$stage" "$result" "$(minutes "$took")"
    results+=("$stage|$(minutes "$took")|$result")
done

printf '\n%-26s %9s  %s\n' stage time result
for row in "${results[@]}"; do
    IFS='|' read -r stage took result <<<"$row"
    printf '%-26s %9s  %s\n' "$stage" "$took" "$result"
done
printf '%-26s %9s  %s\n' total "$(minutes $((SECONDS - total_start)))" "${failed:+FAILED at }${failed:-all passed}"
[ -z "$failed" ]
