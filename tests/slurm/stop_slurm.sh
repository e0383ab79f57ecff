#!/usr/bin/env bash
# Stop the single-node Slurm cluster of start_slurm.sh: its daemons, by PID file.
set -uo pipefail

STATE=${SLURM_STATE_DIR:-/tmp/encscale-slurm}
for daemon in slurmd slurmctld munged; do
    pidfile="$STATE/$daemon.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
done
echo "slurm: stopped"
