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
# Remove the config files start_slurm.sh wrote: with a slurm.conf naming a controller that is
# down, every squeue (run, e.g., when Snakemake loads the Slurm plugin) waits ~10 s on it.
MARK="# written by encscale tests/slurm/start_slurm.sh"
for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    if [ -f "$conf" ] && grep -qF "$MARK" "$conf"; then rm -f "$conf"; fi
done
echo "slurm: stopped"
