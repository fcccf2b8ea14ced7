#!/usr/bin/env bash
# Runs the tiny configuration through workflow/profiles/slurm on a single-node SLURM set up on this host,
# runs it again locally, and checks that both give the same tables (scripts/compare_runs.py says which
# columns may differ and why). Needs root and Debian's packages; safe to run twice: an existing slurm.conf
# is replaced only if this script wrote it, daemons left over from an interrupted run are stopped first,
# and the daemons it starts are stopped on exit.
#
#   sudo scripts/slurm_check.sh [work folder, default /tmp/facemorphic-slurm-check]
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/facemorphic-slurm-check}
PY="$REPO/.venv/bin/python"
SNAKEMAKE="$REPO/.venv/bin/snakemake"
CONF=/etc/slurm/slurm.conf
MARKER="# written by facemorphic scripts/slurm_check.sh"
PARTITION=debug
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
started=$(date +%s)

say() { echo "[slurm_check $(($(date +%s) - started)) s] $*" >&2; }

[ "$(id -u)" = 0 ] || { echo "slurm_check.sh: run as root (it installs packages and starts daemons)" >&2; exit 2; }

stop_pidfile() {  # stop the daemon whose pid file is $1, if it is running
    local pid
    [ -s "$1" ] || return 0
    pid=$(cat "$1")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$1"
}

stop_daemons() {
    stop_pidfile "$SLURMD_PID"
    stop_pidfile "$CTLD_PID"
    stop_pidfile "$MUNGE_PID"
}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
say "installing the project's slurm extra (snakemake-executor-plugin-slurm)"
"$PY" -m pip install -q -e "$REPO[slurm]"

if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    echo "slurm_check.sh: $CONF exists and was not written by this script; not touching a real cluster" >&2
    exit 2
fi
stop_daemons
trap 'say "stopping munged, slurmctld, slurmd"; stop_daemons' EXIT

HOST=$(hostname -s)
CPUS=$(nproc)
# what slurmd itself measures, less 5 % for the system, so the node is never drained for low memory
MEMORY=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') * 95 / 100 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$CONF" <<CONFIG
$MARKER
ClusterName=facemorphic-check
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups in a container: track processes by parent id, bind no tasks
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# no accounting database: finished jobs stay visible to squeue for 10 minutes, long enough for the
# executor's status checks
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
NodeName=$HOST CPUs=$CPUS RealMemory=$MEMORY State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONFIG
say "slurm.conf: node $HOST, $CPUS CPUs, $MEMORY MB, partition $PARTITION"

mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile /etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
runuser -u munge -- munged --pid-file "$MUNGE_PID"
slurmctld
slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 1
done
[ "$state" = idle ] || { echo "slurm_check.sh: node $HOST is '$state', not idle; see /var/log/slurm" >&2; exit 1; }
say "SLURM is up: $(sinfo -h -o '%P %D %c %m %t')"

rm -rf "$WORK"
mkdir -p "$WORK/slurm" "$WORK/local"
cp "$REPO/tests/config.tiny.yaml" "$WORK/slurm/config.yaml"
cp "$REPO/tests/config.tiny.yaml" "$WORK/local/config.yaml"
cd "$REPO"
say "tiny config through the SLURM profile (log: $WORK/slurm.log)"
# sacct needs an accounting database this single node does not have: the status checks use squeue, which
# sees finished jobs for MinJobAge
"$SNAKEMAKE" --workflow-profile workflow/profiles/slurm --directory "$WORK/slurm" \
    --slurm-status-command squeue all > "$WORK/slurm.log" 2>&1 || { tail -40 "$WORK/slurm.log" >&2; exit 1; }
submitted=$(grep -c "Job .* has been submitted with SLURM jobid" "$WORK/slurm.log" || true)
say "SLURM run done: $submitted jobs submitted"
[ "$submitted" -gt 0 ] || { echo "slurm_check.sh: no job went through sbatch" >&2; exit 1; }
say "tiny config locally (log: $WORK/local.log)"
"$SNAKEMAKE" -c "$CPUS" --directory "$WORK/local" all > "$WORK/local.log" 2>&1 || { tail -40 "$WORK/local.log" >&2; exit 1; }
say "comparing the tables"
"$PY" "$REPO/scripts/compare_runs.py" "$WORK/slurm" "$WORK/local"
say "passed"
