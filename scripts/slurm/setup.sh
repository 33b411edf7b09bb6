#!/usr/bin/env bash
# Start a throw-away one-node SLURM cluster on this machine (127.0.0.1), with job accounting,
# so the workflow's SLURM profile can be tested for real: munged, MariaDB, slurmdbd,
# slurmctld and slurmd all run as root from one state directory and listen on loopback only.
#
#   sudo scripts/slurm/setup.sh     # installs slurm-wlm, slurmdbd, munge, mariadb-server
#   sinfo; sbatch ...; sacct        # the usual client commands just work
#   scripts/slurm/teardown.sh       # stops the daemons, removes the config files it wrote
#
# The config goes to /etc/slurm (slurm.conf, gres.conf, slurmdbd.conf), the place every
# client, and the `srun` the executor plugin runs inside each job, looks for it: the jobstep
# plugin drops SLURM_* variables, SLURM_CONF included, before its srun. The script refuses
# to overwrite a slurm.conf it did not write. Daemon state and logs live in
# $SORLAB_SLURM_DIR (default /tmp/sorlab-slurm).
#
# No cgroups (proctrack/linuxproc, task/none), so it also runs in containers. The node
# advertises FAKE_GPUS generic "gpu" resources without device files, so jobs that ask for
# --gpus=1 are scheduled (and run on the CPU); set FAKE_GPUS=0 to advertise none.
set -euo pipefail

D=${SORLAB_SLURM_DIR:-/tmp/sorlab-slurm}
CTLD_PORT=${SORLAB_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${SORLAB_SLURMD_PORT:-16818}
DBD_PORT=${SORLAB_SLURMDBD_PORT:-16819}
DB_PORT=${SORLAB_MARIADB_PORT:-16820}
FAKE_GPUS=${FAKE_GPUS:-1}
CLUSTER=sorlabtest
ACCOUNT=sorlab
ETC=/etc/slurm
MARK="# written by sorlab scripts/slurm/setup.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

log() { echo "[slurm-setup] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (installs packages and runs the daemons as root)"

# --- 1. packages ------------------------------------------------------------------------
need=()
for bin in sbatch:slurm-wlm slurmdbd:slurmdbd munged:munge mariadbd:mariadb-server; do
    command -v "${bin%%:*}" >/dev/null 2>&1 || need+=("${bin#*:}")
done
if ((${#need[@]})); then
    log "installing ${need[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
log "$(dpkg-query -W -f 'slurm-wlm ${Version}' slurm-wlm)"

# --- 2. fresh state directory (stop leftovers of an earlier run first) -----------------
if [[ -e $ETC/slurm.conf ]] && ! grep -qF "$MARK" "$ETC/slurm.conf"; then
    die "$ETC/slurm.conf exists and was not written by this script; not touching a real cluster"
fi
"$HERE/teardown.sh" >/dev/null 2>&1 || true
rm -rf "$D"
mkdir -p "$D"/{munge,mysql,state,spool,log,run} "$ETC"
chmod 755 "$D"
chmod 700 "$D/munge"

# Lines of `slurmd -C` minus the uptime: the node's real CPUs, sockets and memory.
HOST=$(hostname -s)
NODE_LINE=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*//")

cat >"$ETC/slurm.conf" <<CONF
$MARK (one-node test cluster, state in $D)
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
# no cgroups: works inside containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
# job accounting through slurmdbd (sacct needs it)
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# our own munged socket, for the slurmctld/sacct <-> slurmdbd connections
AccountingStoragePass=$D/munge/munge.socket
AccountingStorageTRES=gres/gpu
# keep --comment (the executor plugin puts the rule name there) in the accounting records
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 $NODE_LINE $( ((FAKE_GPUS > 0)) && echo "Gres=gpu:$FAKE_GPUS") State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# Fake GPUs: slurmd drops file-less gres/gpu entries and wants character devices, so each
# fake device is a symlink named nvidia<i> to /dev/null. Jobs get CUDA_VISIBLE_DEVICES set
# by SLURM as on a real GPU node; no cgroup restricts devices here.
if ((FAKE_GPUS > 0)); then
    mkdir -p "$D/fakedev"
    for ((i = 0; i < FAKE_GPUS; i++)); do ln -s /dev/null "$D/fakedev/nvidia$i"; done
    printf '%s\nNodeName=%s Name=gpu File=%s\n' "$MARK" "$HOST" \
        "$D/fakedev/nvidia[0-$((FAKE_GPUS - 1))]" >"$ETC/gres.conf"
else
    echo "$MARK" >"$ETC/gres.conf"
fi

DB_PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
cat >"$ETC/slurmdbd.conf" <<CONF
$MARK
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chmod 600 "$ETC/slurmdbd.conf"
unset SLURM_CONF

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2
    shift 2
    local end=$((SECONDS + secs))
    while ((SECONDS < end)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what did not come up within ${secs}s; logs in $D/log"
}

# --- 3. munge ---------------------------------------------------------------------------
head -c 1024 /dev/urandom >"$D/munge/munge.key"
chmod 400 "$D/munge/munge.key"
log "starting munged"
munged --force --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" \
    --seed-file="$D/munge/munged.seed"
wait_for 10 munged bash -c "munge -n -S '$D/munge/munge.socket' | unmunge -S '$D/munge/munge.socket'"

# --- 4. MariaDB (loopback only) for slurmdbd -------------------------------------------
log "starting mariadbd on 127.0.0.1:$DB_PORT"
mariadb-install-db --no-defaults --user=root --datadir="$D/mysql" --skip-test-db \
    --auth-root-authentication-method=socket >"$D/log/mariadb-install.log" 2>&1 ||
    die "mariadb-install-db failed; see $D/log/mariadb-install.log"
mariadbd --no-defaults --user=root --datadir="$D/mysql" --socket="$D/run/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$D/run/mariadbd.pid" \
    --log-error="$D/log/mariadb.log" --innodb-buffer-pool-size=64M \
    --innodb-lock-wait-timeout=900 >/dev/null 2>&1 &
wait_for 60 mariadbd mariadb --no-defaults -S "$D/run/mysql.sock" -e "select 1"
mariadb --no-defaults -S "$D/run/mysql.sock" <<SQL
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# --- 5. slurmdbd, the cluster and an account in it --------------------------------------
log "starting slurmdbd on 127.0.0.1:$DBD_PORT"
slurmdbd
wait_for 60 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="sorlab test" Organization=sorlab >/dev/null
sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null

# --- 6. slurmctld + slurmd --------------------------------------------------------------
log "starting slurmctld on 127.0.0.1:$CTLD_PORT and slurmd on :$SLURMD_PORT"
slurmctld
wait_for 60 slurmctld scontrol ping
slurmd
node_idle() { [[ $(sinfo -h -N -o %T | head -1) == idle ]]; }
wait_for 60 "node $HOST (idle)" node_idle
log "cluster up: partition $(sinfo -h -o '%P, %D node %T, CPUs (A/I/O/T) %C, %G')"
