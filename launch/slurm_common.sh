# Shared settings and helpers for slurm_up.sh / slurm_down.sh (sourced, not executed).
#
# Everything the scripts generate (configs, databases, spool, logs, pid files) lives under one state directory so a
# fresh CI machine reproduces the same cluster: $REPDYN_SLURM_DIR, default /tmp/repdyn-slurm. It must be traversable by
# the `mysql` user (MariaDB runs as that user), so keep it outside /root.

REPDYN_SLURM_DIR="${REPDYN_SLURM_DIR:-/tmp/repdyn-slurm}"
D="$REPDYN_SLURM_DIR"
CLUSTER_NAME="${REPDYN_SLURM_CLUSTER:-repdyn}"
CTLD_PORT="${REPDYN_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${REPDYN_SLURMD_PORT:-6818}"
DBD_PORT="${REPDYN_SLURMDBD_PORT:-6819}"
# A non-default port so a MariaDB the machine may already run on 3306 is never touched.
DB_PORT="${REPDYN_SLURM_DB_PORT:-3307}"
DB_PASS="repdyn-slurm"
# How many jobs may share one core: a 2-core CI machine runs the test scenarios (~11 small jobs) at once.
OVERSUBSCRIBE="${REPDYN_SLURM_OVERSUBSCRIBE:-8}"

export SLURM_CONF="$D/etc/slurm.conf"
SYSTEM_CONF_LINK=/etc/slurm/slurm.conf

log() { echo "[repdyn-slurm] $*" >&2; }

# A process counts as alive only if it exists, is not a zombie/dead (PID 1 on these machines does not reap orphans,
# so a stopped daemon lingers as state Z and `kill -0` would still succeed) and runs the expected program.
# usage: pid_alive PID COMM_PREFIX
pid_alive() {
    local pid="$1" comm="$2" stat state
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    state="${stat##*) }"
    state="${state%% *}"
    [[ "$state" != "Z" && "$state" != "X" && "$state" != "x" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$comm"* ]]
}

# usage: pidfile_alive PIDFILE COMM_PREFIX
pidfile_alive() {
    [[ -s "$1" ]] && pid_alive "$(tr -dc '0-9' <"$1")" "$2"
}

# usage: wait_for DESCRIPTION SECONDS COMMAND...
wait_for() {
    local what="$1" secs="$2" i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    log "timed out after ${secs}s waiting for $what"
    return 1
}
