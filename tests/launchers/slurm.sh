# A private single-node Slurm for the launcher tests: munged, slurmctld and slurmd from Debian's
# packages, everything (key, config, state, logs, sockets) in one temporary directory, on ports free
# at start. Source this file, then:
#   slurm_start DIR   starts it (SLURM_CONF is exported); returns 1 with the reason in SLURM_WHY
#   slurm_stop        stops the three daemons it started (by their pid files) and waits for them
# The node has this machine's CPUs as one socket per CPU; TaskPlugin=task/affinity binds tasks as a
# real node does, with no cgroup plugin (root in a container cannot always delegate cgroups).
# Run as a script (`slurm.sh DIR`) it starts, shows sinfo and stops, printing the times.

SLURM_DIR=
SLURM_WHY=

_slurm_free_ports() {
    python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
}

_slurm_fail() {
    SLURM_WHY=$1
    local log last
    for log in "$SLURM_DIR"/munge/log "$SLURM_DIR"/slurmctld.log "$SLURM_DIR"/slurmd.log; do
        last=$(grep -iE 'error|fatal' "$log" 2>/dev/null | tail -n 1)
        [ -n "$last" ] && SLURM_WHY="$SLURM_WHY; ${log#"$SLURM_DIR"/}: $last"
    done
    slurm_stop
    return 1
}

slurm_start() {
    SLURM_DIR=$1
    SLURM_WHY=
    local tool
    for tool in munged slurmctld slurmd srun sinfo; do
        if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
            SLURM_WHY="$tool not installed (Debian: apt-get install munge slurmctld slurmd slurm-client)"
            return 1
        fi
    done
    if [ "$(id -u)" -ne 0 ]; then
        SLURM_WHY="not root: slurmd must run as root to start tasks as their user"
        return 1
    fi
    local cpus
    cpus=$(nproc --all)
    mkdir -p "$SLURM_DIR"/{munge,state,spool} || { SLURM_WHY="cannot create $SLURM_DIR"; return 1; }
    chmod 700 "$SLURM_DIR/munge"
    head -c 1024 /dev/urandom >"$SLURM_DIR/munge/key" && chmod 400 "$SLURM_DIR/munge/key"
    PATH=$PATH:/usr/sbin munged --force --socket="$SLURM_DIR/munge/sock" --key-file="$SLURM_DIR/munge/key" \
        --pid-file="$SLURM_DIR/munge/pid" --log-file="$SLURM_DIR/munge/log" \
        --seed-file="$SLURM_DIR/munge/seed" 2>"$SLURM_DIR/munge/stderr" ||
        { _slurm_fail "munged did not start: $(tail -n 1 "$SLURM_DIR/munge/stderr")"; return 1; }
    local ports ctld_port slurmd_port host
    ports=$(_slurm_free_ports) || { _slurm_fail "no free port"; return 1; }
    read -r ctld_port slurmd_port <<<"$ports"
    host=$(hostname)
    cat >"$SLURM_DIR/slurm.conf" <<EOF
ClusterName=gpuaff
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SLURM_DIR/munge/sock
CredType=cred/munge
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
PlugStackConfig=/dev/null
NodeName=gpuaffn1 NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$cpus CoresPerSocket=1 ThreadsPerCore=1 RealMemory=100 State=UNKNOWN
PartitionName=p Nodes=gpuaffn1 Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$SLURM_DIR/slurm.conf
    PATH=$PATH:/usr/sbin slurmctld -i >"$SLURM_DIR/slurmctld.stderr" 2>&1 ||
        { _slurm_fail "slurmctld did not start: $(tail -n 1 "$SLURM_DIR/slurmctld.stderr")"; return 1; }
    PATH=$PATH:/usr/sbin slurmd -N gpuaffn1 >"$SLURM_DIR/slurmd.stderr" 2>&1 ||
        { _slurm_fail "slurmd did not start: $(tail -n 1 "$SLURM_DIR/slurmd.stderr")"; return 1; }
    local i
    for i in $(seq 100); do
        if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
            return 0
        fi
        sleep 0.1
    done
    _slurm_fail "the node did not become idle within 10 s (sinfo: $(sinfo -h -o %T 2>&1 | tail -n 1))"
}

# Stops what slurm_start started: each daemon by the pid in its own pid file, TERM then KILL.
slurm_stop() {
    [ -n "$SLURM_DIR" ] || return 0
    local f pid pids=()
    for f in "$SLURM_DIR"/slurmd.pid "$SLURM_DIR"/slurmctld.pid "$SLURM_DIR"/munge/pid; do
        pid=$(cat "$f" 2>/dev/null) || continue
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    local i p alive
    for i in $(seq 50); do
        alive=0
        for p in "${pids[@]+"${pids[@]}"}"; do
            kill -0 "$p" 2>/dev/null && alive=1
        done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]+"${pids[@]}"}"; do
        kill -KILL "$p" 2>/dev/null
    done
    SLURM_DIR=
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    dir=${1:?usage: slurm.sh DIR}
    t0=$(date +%s.%N)
    if slurm_start "$dir"; then
        t1=$(date +%s.%N)
        sinfo
        slurm_stop
        t2=$(date +%s.%N)
        printf 'slurm harness: started in %.2f s, stopped in %.2f s\n' "$(awk "BEGIN{print $t1 - $t0}")" "$(awk "BEGIN{print $t2 - $t1}")"
    else
        echo "slurm harness: cannot start: $SLURM_WHY"
        exit 1
    fi
fi
