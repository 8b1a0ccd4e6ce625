#!/usr/bin/env bash
# Stop the single-node cluster started by launch/slurm_up.sh, idempotently.
#
#   launch/slurm_down.sh           # stop daemons; keep $REPDYN_SLURM_DIR (job history, database)
#   launch/slurm_down.sh --purge   # also delete $REPDYN_SLURM_DIR
#
# Only processes whose pid files slurm_up.sh wrote under $REPDYN_SLURM_DIR are stopped, never anything found by name:
# a munged that was already running before slurm_up.sh is left alone.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=slurm_common.sh
source "$HERE/slurm_common.sh"

purge=0
case "${1:-}" in
--purge) purge=1 ;;
"") ;;
*)
    echo "usage: $0 [--purge]" >&2
    exit 2
    ;;
esac

stop() { # usage: stop PIDFILE COMM
    local pidfile="$1" comm="$2" pid
    if pidfile_alive "$pidfile" "$comm"; then
        pid="$(tr -dc '0-9' <"$pidfile")"
        kill -TERM "$pid" 2>/dev/null || true
        # Orphans are never reaped here, so "stopped" means zombie or gone (pid_alive checks /proc/PID/stat).
        if ! wait_for "$comm to stop" 20 bash -c "! { source '$HERE/slurm_common.sh'; pid_alive $pid '$comm'; }"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $comm (pid $pid)"
    fi
    rm -f "$pidfile"
}

if [[ -d "$D" ]]; then
    # Jobs of this cluster would outlive slurmd (process tracking is by /proc, not cgroups): cancel them first.
    if pidfile_alive "$D/run/slurmctld.pid" slurmctld; then
        jobs="$(squeue -h -o %A 2>/dev/null || true)"
        if [[ -n "$jobs" ]]; then
            # shellcheck disable=SC2086
            scancel $jobs || true
            wait_for "jobs to end" 20 bash -c '[[ -z "$(squeue -h -o %A)" ]]' || true
        fi
    fi
    stop "$D/run/slurmd.pid" slurmd
    stop "$D/run/slurmctld.pid" slurmctld
    stop "$D/run/slurmdbd.pid" slurmdbd
    stop "$D/run/mysqld/mysqld.pid" mariadbd
    stop "$D/run/munged.pid" munged
fi

if [[ "$(readlink "$SYSTEM_CONF_LINK" 2>/dev/null)" == "$D/etc/slurm.conf" ]]; then
    rm -f "$SYSTEM_CONF_LINK"
fi
if ((purge)); then
    rm -rf "$D"
    log "removed $D"
fi
log "cluster down"
