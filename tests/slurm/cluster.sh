#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests: munged, slurmctld and
# slurmd from Debian's packages (slurm-wlm, munge), every file under one
# directory, on free ports, as the current user (root: slurmd must be root).
#
#   source tests/slurm/cluster.sh
#   slurm_cluster_start DIR   # 0: up (exports SLURM_CONF); 1: cannot start, reason on stderr
#   slurm_cluster_stop DIR
# Nothing outside DIR is touched: the daemons get their own munge socket and key.

_slurm_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

slurm_cluster_start() {
  local dir=$1
  local missing=()
  for b in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
  done
  if ((${#missing[@]})); then
    echo "slurm cluster: not installed: ${missing[*]} (Debian packages slurm-wlm, munge)" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm cluster: slurmd must run as root (this is uid $(id -u))" >&2
    return 1
  fi
  export PATH="/usr/sbin:$PATH"
  mkdir -p "$dir"/{munge,state,spool,log}
  chmod 700 "$dir/munge"
  mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null 2>&1 ||
    { echo "slurm cluster: mungekey failed" >&2; return 1; }
  munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" 2>"$dir/log/munged.err" ||
    { echo "slurm cluster: munged did not start: $(tail -1 "$dir/log/munged.err")" >&2; return 1; }
  local host; host=$(hostname -s)
  local cpus; cpus=$(nproc)
  local mem; mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
  local ctl_port; ctl_port=$(_slurm_free_port)
  local d_port; d_port=$(_slurm_free_port)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=drifttest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdTimeout=60
MinJobAge=600
KillWait=5
PlugStackConfig=$dir/plugstack.conf
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=drift Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  : > "$dir/plugstack.conf"
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -i 2>"$dir/log/slurmctld.err" ||
    { echo "slurm cluster: slurmctld did not start: $(tail -1 "$dir/log/slurmctld.err")" >&2; return 1; }
  slurmd 2>"$dir/log/slurmd.err" ||
    { echo "slurm cluster: slurmd did not start: $(tail -1 "$dir/log/slurmd.err")" >&2; return 1; }
  local i state=""
  for i in $(seq 1 60); do
    state=$(sinfo -h -o '%T' 2>/dev/null | head -1)
    case "$state" in idle*|mixed*|allocated*) return 0 ;; esac
    sleep 0.5
  done
  echo "slurm cluster: node not idle after 30 s (state '$state'); slurmctld: $(tail -1 "$dir/log/slurmctld.log" 2>/dev/null); slurmd: $(tail -1 "$dir/log/slurmd.log" 2>/dev/null)" >&2
  return 1
}

slurm_cluster_stop() {
  local dir=$1 f
  for f in slurmd slurmctld munge/munged; do
    [ -f "$dir/$f.pid" ] && kill "$(cat "$dir/$f.pid")" 2>/dev/null
  done
  sleep 1
  for f in slurmd slurmctld munge/munged; do
    [ -f "$dir/$f.pid" ] && kill -9 "$(cat "$dir/$f.pid")" 2>/dev/null
  done
  return 0
}
