#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on 127.0.0.1 for the tests (needs root and the Debian packages
# slurmctld, slurmd, slurm-client and munge; see install.sh).
#
#   tests/slurm/cluster.sh start STATE_DIR [PARTITION]   writes /etc/slurm/{slurm,gres}.conf, starts munged
#                                                        (unless one answers already), slurmctld and slurmd,
#                                                        and waits until the node is idle
#   tests/slurm/cluster.sh stop STATE_DIR                cancels the jobs, stops the daemons it started (by
#                                                        the PIDs in STATE_DIR/pids) and removes its configs
#
# The config has to live at /etc/slurm/slurm.conf: the executor plugin's job step drops SLURM_CONF.
# State, spool, logs and the two fake GPU device files live under STATE_DIR.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
conf_dir=/etc/slurm
marker="lrdm-test-cluster"
action="${1:?usage: cluster.sh start|stop STATE_DIR [PARTITION]}"
state="$(mkdir -p "${2:?usage: cluster.sh start|stop STATE_DIR [PARTITION]}" && cd "$2" && pwd)"
partition="${3:-lrdm}"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ours() {  # a config file this script wrote (or none at all)
    [[ ! -e "$1" ]] || head -n 1 "$1" | grep -q "$marker"
}

start_daemon() {  # name, command...: runs in the background, records the PID
    local name="$1"
    shift
    "$@" </dev/null >"$state/$name.out" 2>&1 &
    echo "$name $!" >>"$state/pids"
}

fail() {
    echo "$*" >&2
    tail -n 20 "$state"/*.out "$state"/*.log >&2 2>/dev/null || true
    exit 1
}

wait_for() {  # what, seconds, daemon, test command...: polls until the test passes; fails early if the daemon died
    local what="$1" seconds="$2" daemon="$3"
    shift 3
    local pid deadline=$((SECONDS + seconds))
    pid="$(awk -v n="$daemon" '$1 == n {print $2}' "$state/pids")"
    until "$@" >/dev/null 2>&1; do
        [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null || fail "$daemon exited before $what"
        ((SECONDS < deadline)) || fail "no $what after $seconds s"
        sleep 0.2
    done
}

munge_works() { munge -n </dev/null | unmunge >/dev/null; }
node_idle() { [[ "$(timeout 5 sinfo -h -N -o %T 2>/dev/null)" == idle ]]; }

stop() {
    if command -v scancel >/dev/null && [[ -e "$state/pids" ]]; then
        timeout 10 scancel --partition="$(cat "$state/partition" 2>/dev/null || echo "$partition")" 2>/dev/null || true
        sleep 1
    fi
    if [[ -e "$state/pids" ]]; then
        # stop in reverse start order: slurmd, slurmctld, then munged
        tac "$state/pids" | while read -r name pid; do
            if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
                kill -KILL "$pid" 2>/dev/null || true
            fi
            echo "stopped $name ($pid)"
        done
        rm -f "$state/pids"
    fi
    for file in "$conf_dir/slurm.conf" "$conf_dir/gres.conf"; do
        if [[ -e "$file" ]] && ours "$file"; then rm -f "$file"; fi
    done
}

start() {
    for tool in slurmctld slurmd sinfo munged; do
        command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 3; }
    done
    [[ "$(id -u)" == 0 ]] || { echo "needs root" >&2; exit 3; }
    for file in "$conf_dir/slurm.conf" "$conf_dir/gres.conf"; do
        ours "$file" || { echo "$file exists and was not written by this script; refusing to replace it" >&2; exit 3; }
    done
    rm -f "$state/pids"
    echo "$partition" >"$state/partition"
    mkdir -p "$state/ctld" "$state/spool" "$state/dev" "$conf_dir"
    for i in 0 1; do
        [[ -e "$state/dev/fakegpu$i" ]] || mknod "$state/dev/fakegpu$i" c 1 3
    done

    # munge: reuse a running daemon, else start one as user munge
    if ! munge_works 2>/dev/null; then
        install -d -o munge -g munge -m 0755 /run/munge
        install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
        if [[ ! -s /etc/munge/munge.key ]]; then
            if command -v mungekey >/dev/null; then
                setpriv --reuid=munge --regid=munge --init-groups mungekey --create --keyfile=/etc/munge/munge.key
            else
                dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
            fi
            chown munge:munge /etc/munge/munge.key
            chmod 0400 /etc/munge/munge.key
        fi
        start_daemon munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground --force
        wait_for "munge credentials" 20 munged munge_works
    fi

    local host cpus memory
    host="$(hostname -s)"
    cpus="$(nproc --all)"  # the machine's, not OMP_NUM_THREADS (which GNU nproc reports when it is set)
    memory="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    sed -e "s|@HOST@|$host|g" -e "s|@STATE@|$state|g" -e "s|@CTLD_PORT@|$(free_port)|g" \
        -e "s|@SLURMD_PORT@|$(free_port)|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY@|$memory|g" \
        -e "s|@PARTITION@|$partition|g" "$here/slurm.conf.in" >"$conf_dir/slurm.conf"
    sed -e "s|@HOST@|$host|g" -e "s|@STATE@|$state|g" "$here/gres.conf.in" >"$conf_dir/gres.conf"
    cp "$conf_dir/slurm.conf" "$conf_dir/gres.conf" "$state/"

    start_daemon slurmctld slurmctld -D -c
    wait_for "answer from slurmctld" 30 slurmctld timeout 5 sinfo -h
    start_daemon slurmd slurmd -D
    wait_for "idle node" 60 slurmd node_idle
    echo "node $host idle (partition $partition)"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: cluster.sh start|stop STATE_DIR [PARTITION]" >&2; exit 2 ;;
esac
