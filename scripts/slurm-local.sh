#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm tests and for
# trying `factsweep slurm` without a real cluster.
#
#   scripts/slurm-local.sh start   install slurm-wlm and munge if missing, write a
#                                  slurm.conf under the state directory, start munged,
#                                  slurmctld and slurmd; prints SLURM_CONF=… last
#   scripts/slurm-local.sh stop    stop exactly the daemons `start` started
#   scripts/slurm-local.sh env     print SLURM_CONF=… (for `export $(…)`)
#
# Idempotent: `start` with the daemons already up only checks them. The daemons
# get no standard streams (they log to files), so a caller reading this script's
# output to its end is not kept waiting by them. The state
# directory (FACTSWEEP_SLURM_DIR, default /tmp/factsweep-slurm) holds the
# configuration, the daemons' logs, spool and pid files; nothing goes to /etc.
# Slurm's commands find the configuration through SLURM_CONF. Needs root
# (slurmd runs jobs as their users; munged runs as the munge user).
set -euo pipefail

state=${FACTSWEEP_SLURM_DIR:-/tmp/factsweep-slurm}
conf=$state/slurm.conf
log() { printf '[slurm-local] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Runs a daemon with no signal blocked or ignored: a caller's mask is inherited
# across exec (a test runner's threads block SIGTERM), and a daemon started with
# SIGTERM blocked neither stops on `stop` nor passes SIGTERM on to its jobs.
# perl-base's POSIX module, because Debian always has it.
clean_signals() {
    perl -MPOSIX -e 'sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die "sigprocmask: $!";
        $SIG{$_} = "DEFAULT" for qw(TERM INT HUP PIPE USR1 USR2); exec @ARGV or die "exec $ARGV[0]: $!"' "$@"
}

# The pid file of a daemon this script started, and whether it is alive.
alive() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

install_packages() {
    local missing=()
    for p in slurm-wlm munge; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# One node: this host. It claims more CPUs than it has (config_overrides) so
# that a coordinator job and a few single-CPU worker tasks — which mostly
# wait — run at once on a small machine.
write_conf() {
    local node cpus
    node=$(hostname -s)
    cpus=${FACTSWEEP_SLURM_CPUS:-8}
    mkdir -p "$state/spool/ctld" "$state/spool/d" "$state/log"
    cat >"$conf" <<EOF
ClusterName=factsweep
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPort=${FACTSWEEP_SLURMCTLD_PORT:-6817}
SlurmdPort=${FACTSWEEP_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=sched_interval=2
KillWait=30
MinJobAge=60
NodeName=$node CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root: slurmd and munged are system daemons"
    install_packages
    mkdir -p "$state"
    # A running slurmctld keeps the configuration it read; otherwise this script's is written anew.
    alive slurmctld || write_conf
    export SLURM_CONF=$conf
    # munged with the packaged key (made at install) on munge's default socket, which
    # Slurm's auth/munge uses; one already running (a system service) is used as it is.
    if ! munge -n </dev/null >/dev/null 2>&1; then
        mkdir -p /run/munge && chown munge:munge /run/munge
        [ -f /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || die "no /etc/munge/munge.key and cannot make one"; }
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
        clean_signals runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid </dev/null >/dev/null 2>&1
        cp /run/munge/munged.pid "$state/munged.pid"
        for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
        munge -n </dev/null >/dev/null 2>&1 || die "munged did not start"
        log "munged started"
    fi
    if ! alive slurmctld; then
        clean_signals /usr/sbin/slurmctld -f "$conf" </dev/null >/dev/null 2>&1
        log "slurmctld started"
    fi
    if ! alive slurmd; then
        clean_signals /usr/sbin/slurmd -f "$conf" </dev/null >/dev/null 2>&1
        log "slurmd started"
    fi
    # Ready when the node is idle (or running jobs of an earlier start).
    local node; node=$(hostname -s)
    for _ in $(seq 150); do
        if sinfo -h -n "$node" -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'; then
            echo "SLURM_CONF=$conf"
            return 0
        fi
        sleep 0.2
    done
    sinfo -N -l >&2 || true
    tail -20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
    die "the node did not come up (logs in $state/log)"
}

stop() {
    for daemon in slurmd slurmctld munged; do
        if alive "$daemon"; then
            local pid; pid=$(cat "$state/$daemon.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$pid" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null || true
                log "$daemon did not stop on SIGTERM: killed"
            else
                log "$daemon stopped"
            fi
        fi
        rm -f "$state/$daemon.pid"
    done
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    env) echo "SLURM_CONF=$conf" ;;
    *) die "usage: $0 start|stop|env" ;;
esac
