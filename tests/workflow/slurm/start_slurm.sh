#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm profile's tests (needs root).
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing, writes a
# minimal slurm.conf for this host (CPUs and memory from `slurmd -C`, one fake GPU), starts
# munged, slurmctld and slurmd directly (no systemd) and waits until the node is idle.
# Stop it with tests/slurm/stop_slurm.sh. State, logs and PID files: $SLURM_STATE_DIR.
set -euo pipefail

STATE=${SLURM_STATE_DIR:-/tmp/encscale-slurm}
CONF_DIR=/etc/slurm
MARK="# written by encscale tests/slurm/start_slurm.sh"

if [ "$(id -u)" != 0 ]; then
    echo "start_slurm.sh: needs root (installs packages, writes $CONF_DIR)" >&2
    exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null; }
fi
if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
    echo "start_slurm.sh: $CONF_DIR/slurm.conf exists and is not ours; not touching it" >&2
    exit 1
fi

mkdir -p "$STATE"/ctld "$STATE"/d /run/munge "$CONF_DIR"
# munge: a key, then the daemon (it refuses root unless forced)
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key /run/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
if ! munge -n >/dev/null 2>&1; then
    munged --force --pid-file="$STATE/munged.pid"
fi

HOST=$(hostname -s)
read -r CPUS MEM < <(slurmd -C | awk '{for (i = 1; i <= NF; i++) {split($i, kv, "=");
    if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2]}} END {print c, m}')
MEM=$((MEM * 9 / 10))  # leave room for the daemons
# a fake GPU: gres needs a character device to count (a copy of /dev/null)
[ -c "$STATE/gpu0" ] || mknod "$STATE/gpu0" c 1 3

cat >"$CONF_DIR/slurm.conf" <<CONF
$MARK
ClusterName=encscale-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# no accounting: job status comes from squeue, so finished jobs must stay listed a while
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
DefMemPerCPU=1000
GresTypes=gpu
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$CONF_DIR/gres.conf" <<CONF
$MARK
NodeName=$HOST Name=gpu File=$STATE/gpu0
CONF

slurmctld -c -f "$CONF_DIR/slurm.conf"   # -c: a clean start, no jobs from an earlier run
slurmd -f "$CONF_DIR/slurm.conf"

for _ in $(seq 1 60); do
    state=$(sinfo -h -N -n "$HOST" -o %t 2>/dev/null || true)
    if [ "$state" = idle ]; then
        echo "slurm: node $HOST idle ($CPUS CPUs, $MEM MB, gpu:1); state in $STATE"
        exit 0
    fi
    sleep 1
done
echo "start_slurm.sh: node $HOST is not idle after 60 s (state '${state:-none}'); see $STATE/*.log" >&2
exit 1
