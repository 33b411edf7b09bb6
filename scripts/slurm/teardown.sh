#!/usr/bin/env bash
# Stop the daemons of scripts/slurm/setup.sh (by their pid files) in reverse start order and
# remove the /etc/slurm files it wrote. The state directory stays, so logs can be read;
# setup.sh removes it on its next start.
set -uo pipefail
D=${SORLAB_SLURM_DIR:-/tmp/sorlab-slurm}
ETC=/etc/slurm
MARK="# written by sorlab scripts/slurm/setup.sh"
if [[ -d $D/run ]]; then
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        pidfile=$D/run/$name.pid
        [[ -s $pidfile ]] || continue
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            for ((i = 0; i < 60; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.5
            done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
            echo "[slurm-teardown] stopped $name ($pid)" >&2
        fi
        rm -f "$pidfile"
    done
fi
for f in slurm.conf gres.conf slurmdbd.conf; do
    if [[ -f $ETC/$f ]] && grep -qF "$MARK" "$ETC/$f"; then rm -f "$ETC/$f"; fi
done
exit 0
