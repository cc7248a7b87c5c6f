#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on this machine, for tests and demos.
#
#   tests/cluster/slurm_up.sh          # start (or reuse) the cluster
#   tests/cluster/slurm_down.sh        # stop it again
#
# What it builds:
#   * one node (this host) with CPUS_DECLARED CPUs and 2 fake GPUs of type "a100"
#     (character devices made with mknod; nothing runs on them), so
#     --gpus=1, --gpus=a100:1, --gres=gpu:1, --gres=gpu:a100:1 and
#     --constraint=a100 (the node also carries the feature "a100") all schedule;
#   * partitions "cpu" (default) and "gpu";
#   * no accounting (use `slurm-status-command: squeue`), no cgroups.
#
# Everything lives in a run folder, $SEALFLOW_SLURM_DIR (default: $TMPDIR or
# /tmp, then sealflow-slurm). /etc/slurm/slurm.conf and /etc/slurm/gres.conf
# become symlinks into it: SLURM clients inside jobs only find their
# configuration there (the job-step plugin drops SLURM_CONF).
#
# Needs root. Installs slurmctld, slurmd, slurm-client and munge with apt-get
# when they are missing (Debian/Ubuntu only).
#
# Exit status: 0 cluster up (prints KEY=VALUE lines: SLURM_RUN_DIR, SLURM_NODE,
# SLURM_REUSED), 2 this machine cannot host the cluster (not root, no apt,
# a real SLURM configuration present, ...; the reason is on stderr),
# 1 anything else went wrong.
#
# Idempotent: a cluster started earlier from the same run folder with the same
# configuration is reused when all its daemons still answer; otherwise the old
# daemons (those recorded in the pid file only) are stopped and the cluster is
# started afresh with an empty job queue.
set -euo pipefail

RUN_DIR="${SEALFLOW_SLURM_DIR:-${TMPDIR:-/tmp}/sealflow-slurm}"
CPUS_DECLARED="${SEALFLOW_SLURM_CPUS:-8}"
MEM_DECLARED="${SEALFLOW_SLURM_MEM_MB:-16000}"
GPU_TYPE="${SEALFLOW_SLURM_GPU_TYPE:-a100}"
UP_TIMEOUT="${SEALFLOW_SLURM_UP_TIMEOUT:-90}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { echo "slurm_up: $*" >&2; }
cannot() { say "cannot host a local cluster: $*"; exit 2; }

# ---------------------------------------------------------------- preflight
[ "$(id -u)" = 0 ] || cannot "needs root (running as $(id -un))"

need_pkgs=()
command -v slurmctld >/dev/null 2>&1 || need_pkgs+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need_pkgs+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need_pkgs+=(slurm-client)
command -v munged >/dev/null 2>&1 || need_pkgs+=(munge)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    [ -f /etc/debian_version ] || cannot "missing ${need_pkgs[*]} and this is not Debian"
    command -v apt-get >/dev/null 2>&1 || cannot "missing ${need_pkgs[*]} and no apt-get"
    say "installing ${need_pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >"${TMPDIR:-/tmp}/sealflow-slurm-apt.log" 2>&1; then
        apt-get update >/dev/null 2>&1 || true
        apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge \
            >"${TMPDIR:-/tmp}/sealflow-slurm-apt.log" 2>&1 \
            || { say "apt-get install failed, see ${TMPDIR:-/tmp}/sealflow-slurm-apt.log"; exit 1; }
    fi
fi
command -v setpriv >/dev/null 2>&1 || cannot "setpriv (util-linux) is missing"

for f in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ] && [ ! -L "/etc/slurm/$f" ]; then
        cannot "/etc/slurm/$f is a real file: this machine already has a SLURM configuration, leaving it alone"
    fi
    if [ -L "/etc/slurm/$f" ]; then
        case "$(readlink "/etc/slurm/$f")" in
            "$RUN_DIR"/*) ;;
            *) cannot "/etc/slurm/$f points elsewhere ($(readlink "/etc/slurm/$f")); another local cluster owns it" ;;
        esac
    fi
done

mkdir -p "$RUN_DIR"
# one start/stop at a time (several test sessions may share the machine)
exec 9>"$RUN_DIR.lock"
flock -w 300 9 || { say "timed out waiting for $RUN_DIR.lock"; exit 1; }

NODE="$(hostname -s)"
PIDS="$RUN_DIR/pids"

# ---------------------------------------------------------------- config
conf_new="$(mktemp)"; gres_new="$(mktemp)"
trap 'rm -f "$conf_new" "$gres_new"' EXIT
cat >"$conf_new" <<EOF
# Written by sealflow tests/cluster/slurm_up.sh: a one-node test cluster.
ClusterName=sealflow
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups in containers: track processes by parent id, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmdSpoolDir=${RUN_DIR}/spool
StateSaveLocation=${RUN_DIR}/state
SlurmctldLogFile=${RUN_DIR}/log/slurmctld.log
SlurmdLogFile=${RUN_DIR}/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# the node may declare more CPUs than the machine has
SlurmdParameters=config_overrides
# jobs without --mem get 500 MB per CPU instead of the whole node
DefMemPerCPU=500
# no accounting: squeue must still see finished jobs for a while
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS_DECLARED} RealMemory=${MEM_DECLARED} Gres=gpu:${GPU_TYPE}:2 Features=${GPU_TYPE} State=UNKNOWN
PartitionName=cpu Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${NODE} Default=NO MaxTime=INFINITE State=UP
EOF
cat >"$gres_new" <<EOF
# fake GPUs: character devices (major 1, minor 3, like /dev/null)
NodeName=${NODE} Name=gpu Type=${GPU_TYPE} File=${RUN_DIR}/dev/nvidia[0-1]
EOF

# ---------------------------------------------------------------- functions
alive() {  # alive NAME PID: the process exists and is the daemon we started
    local pid="$2"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}
pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$PIDS" 2>/dev/null; }
node_state() { timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }
munge_ok() { timeout 10 munge -n </dev/null 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1; }

cluster_answers() {
    alive slurmctld "$(pid_of slurmctld)" && alive slurmd "$(pid_of slurmd)" || return 1
    munge_ok || return 1
    case "$(node_state)" in idle*|mixed*|alloc*|completing*) return 0 ;; *) return 1 ;; esac
}

# ---------------------------------------------------------------- reuse?
if [ -f "$PIDS" ] && cmp -s "$conf_new" "$RUN_DIR/slurm.conf" && cmp -s "$gres_new" "$RUN_DIR/gres.conf" \
    && [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$RUN_DIR/slurm.conf" ] \
    && cluster_answers; then
    say "reusing the cluster already running from $RUN_DIR"
    echo "SLURM_RUN_DIR=$RUN_DIR"; echo "SLURM_NODE=$NODE"; echo "SLURM_REUSED=1"
    exit 0
fi

if [ -f "$PIDS" ]; then
    say "stopping the earlier cluster recorded in $PIDS"
    SEALFLOW_SLURM_LOCKED=1 SEALFLOW_SLURM_DIR="$RUN_DIR" "$HERE/slurm_down.sh" --keep-links || true
fi

# ---------------------------------------------------------------- write
rm -rf "$RUN_DIR/state" "$RUN_DIR/spool"
mkdir -p "$RUN_DIR/state" "$RUN_DIR/spool" "$RUN_DIR/log" "$RUN_DIR/dev" /etc/slurm
cp "$conf_new" "$RUN_DIR/slurm.conf"
cp "$gres_new" "$RUN_DIR/gres.conf"
chmod 644 "$RUN_DIR/slurm.conf" "$RUN_DIR/gres.conf"
for i in 0 1; do
    dev="$RUN_DIR/dev/nvidia$i"
    if [ ! -c "$dev" ]; then
        rm -f "$dev"
        mknod "$dev" c 1 3 || cannot "mknod $dev failed (no CAP_MKNOD?); SLURM needs character devices for GPUs"
    fi
done
ln -sfn "$RUN_DIR/slurm.conf" /etc/slurm/slurm.conf
ln -sfn "$RUN_DIR/gres.conf" /etc/slurm/gres.conf
: >"$PIDS"

# ---------------------------------------------------------------- munge
if munge_ok; then
    say "munged already answers; using it"
else
    [ -s /etc/munge/munge.key ] || { mungekey --create --force >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    setsid setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --foreground --force >"$RUN_DIR/log/munged.log" 2>&1 </dev/null 9>&- &
    echo "munged $!" >>"$PIDS"
    for _ in $(seq 50); do munge_ok && break; sleep 0.2; done
    munge_ok || { say "munged did not start, see $RUN_DIR/log/munged.log"; exit 1; }
fi

# ---------------------------------------------------------------- slurm
# setsid: the daemons must not die with the shell or the pytest process group
# that started them (a Ctrl-C in pytest would otherwise take them down mid-test).
setsid /usr/sbin/slurmctld -D -c >"$RUN_DIR/log/slurmctld.out" 2>&1 </dev/null 9>&- &
echo "slurmctld $!" >>"$PIDS"
for _ in $(seq 50); do timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
setsid /usr/sbin/slurmd -D >"$RUN_DIR/log/slurmd.out" 2>&1 </dev/null 9>&- &
echo "slurmd $!" >>"$PIDS"

deadline=$((SECONDS + UP_TIMEOUT))
state=""
while [ $SECONDS -lt $deadline ]; do
    state="$(node_state)"
    case "$state" in idle*) break ;; esac
    alive slurmctld "$(pid_of slurmctld)" || { say "slurmctld died, see $RUN_DIR/log/slurmctld.log"; exit 1; }
    alive slurmd "$(pid_of slurmd)" || { say "slurmd died, see $RUN_DIR/log/slurmd.log"; exit 1; }
    sleep 0.5
done
case "$state" in
    idle*) ;;
    *) say "node $NODE is '$state' after ${UP_TIMEOUT}s; see $RUN_DIR/log"; exit 1 ;;
esac
say "cluster up: node $NODE idle, partitions cpu (default) and gpu, ${CPUS_DECLARED} CPUs, 2 x gpu:${GPU_TYPE}"
echo "SLURM_RUN_DIR=$RUN_DIR"; echo "SLURM_NODE=$NODE"; echo "SLURM_REUSED=0"
