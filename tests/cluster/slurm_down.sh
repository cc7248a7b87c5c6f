#!/usr/bin/env bash
# Stop the local SLURM cluster started by tests/cluster/slurm_up.sh.
#
#   tests/cluster/slurm_down.sh               # cancel jobs, stop daemons, remove /etc/slurm links
#   tests/cluster/slurm_down.sh --keep-links  # same, but leave /etc/slurm/*.conf in place
#
# Only the processes recorded in $SEALFLOW_SLURM_DIR/pids are stopped, by PID.
# Jobs still in the queue are cancelled first so that no job step outlives the
# cluster. The run folder (logs, configuration) is kept for inspection.
set -uo pipefail

RUN_DIR="${SEALFLOW_SLURM_DIR:-${TMPDIR:-/tmp}/sealflow-slurm}"
PIDS="$RUN_DIR/pids"
keep_links=0
[ "${1:-}" = "--keep-links" ] && keep_links=1

say() { echo "slurm_down: $*" >&2; }

if [ "${SEALFLOW_SLURM_LOCKED:-0}" != 1 ] && [ -d "$RUN_DIR" ]; then
    exec 9>"$RUN_DIR.lock"
    flock -w 300 9 || { say "timed out waiting for $RUN_DIR.lock"; exit 1; }
fi

alive() {  # alive NAME PID
    [ -n "$2" ] && kill -0 "$2" 2>/dev/null && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]
}
pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$PIDS" 2>/dev/null; }

stop() {  # stop NAME: SIGTERM, wait up to 10 s, then SIGKILL
    local pid; pid="$(pid_of "$1")"
    alive "$1" "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do alive "$1" "$pid" || return 0; sleep 0.2; done
    say "$1 ($pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null
}

if [ -f "$PIDS" ]; then
    if alive slurmctld "$(pid_of slurmctld)"; then
        jobs="$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')"
        if [ -n "${jobs// /}" ]; then
            say "cancelling jobs still queued: $jobs"
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null
            for _ in $(seq 60); do
                [ -z "$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null)" ] && break
                sleep 0.5
            done
        fi
    fi
    stop slurmd
    stop slurmctld
    stop munged
    rm -f "$PIDS"
fi

if [ "$keep_links" = 0 ]; then
    for f in slurm.conf gres.conf; do
        if [ -L "/etc/slurm/$f" ]; then
            case "$(readlink "/etc/slurm/$f")" in "$RUN_DIR"/*) rm -f "/etc/slurm/$f" ;; esac
        fi
    done
fi
say "stopped (logs kept in $RUN_DIR/log)"
