#!/usr/bin/env bash
# jobdesk in the peer harness's table, in one session: scenarios enqueue, drain and latency
# for jobdesk (SQLite, synchronous=full and =normal) and the peers, repetitions outermost so
# that machine noise spreads over every library.
#
#   bench/run_peers.sh                                   # REPS=3 N=10000, ~20 min on 2 cores
#   REPS=1 N=2000 LIBS="jobdesk pgqueuer" bench/run_peers.sh   # a quick look
#
# It copies the harness (PEERS_SRC, default /work/shared/bench) to a temp dir, runs it with
# a venv holding the peers and jobdesk (PEERS_VENV, default /tmp/peers-venv; made if missing),
# and writes bench/results/peers-<time>.{jsonl,md,env.txt}.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS_SRC=${PEERS_SRC:-/work/shared/bench}
VENV=${PEERS_VENV:-/tmp/peers-venv}
REPS=${REPS:-3}
N=${N:-10000}
LIBS=${LIBS:-"jobdesk pgqueuer jobdesk_normal procrastinate celery rq"}
# rq's forking worker drains 10,000 jobs in ~2 minutes per repetition: left out by default
SKIP_VARIANTS=${SKIP_VARIANTS:-"rq:fork_x2"}

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # the peers exactly as the harness's run_anchors.sh installs them, plus jobdesk itself
  "$VENV/bin/pip" install -q "procrastinate>=3,<4" pgqueuer "celery[redis]" rq \
      "psycopg[binary]" psycopg-pool asyncpg
  "$VENV/bin/pip" install -q -e "$HERE/.."
fi

peers=$(mktemp -d /tmp/peers.XXXXXX)
cp -r "$PEERS_SRC/." "$peers"
chmod -R u+w "$peers"
ln -s "$VENV" "$peers/.venv"
cd "$peers" || exit 1
./setup_services.sh
export PYTHONPATH="$HERE" SKIP_INSTALL=1
PY=.venv/bin/python
mkdir -p results logs "$HERE/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo "harness copy: $peers"

{
  echo "date: $(date -Is)"
  echo "nproc: $(nproc)"
  echo "cpu: $(lscpu | grep 'Model name' | cut -d: -f2- | sed 's/^ *//')"
  echo "mem: $(free -g | awk '/Mem:/ {print $2" GiB"}')"
  echo "disk: $(df -h /tmp | awk 'NR==2 {print $1" "$2}')"
  echo "python: $($PY --version 2>&1)"
  echo "sqlite: $($PY -c 'import sqlite3; print(sqlite3.sqlite_version)')"
  echo "postgres: $(psql -h 127.0.0.1 -U root -d bench -qtAc 'select version()')"
  echo "redis: $(redis-server --version)"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  $PY -m pip freeze 2>/dev/null | grep -iE '^(procrastinate|pgqueuer|celery|rq|redis|psycopg|asyncpg|-e .*jobdesk|jobdesk)' | sed 's/^/pkg: /'
} > "$HERE/results/peers-$stamp.env.txt"
cat "$HERE/results/peers-$stamp.env.txt"

started=$(date +%s)
for rep in $(seq 1 "$REPS"); do
  for lib in $LIBS; do
    timeout 300 $PY bench.py "$lib" enqueue --rep "$rep" --n "$N"
    for v in $($PY -c "import lib_$lib as m; print(' '.join(m.VARIANTS))"); do
      case " $SKIP_VARIANTS " in *" $lib:$v "*) continue ;; esac
      timeout 300 $PY bench.py "$lib" drain --variant "$v" --rep "$rep" --n "$N"
      timeout 300 $PY bench.py "$lib" latency --variant "$v" --rep "$rep"
    done
  done
  echo "rep $rep done after $(( $(date +%s) - started )) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); total $(( $(date +%s) - started )) s" \
  >> "$HERE/results/peers-$stamp.env.txt"

cp results/results.jsonl "$HERE/results/peers-$stamp.jsonl"
"$HERE/../.venv/bin/python" "$HERE/peers_report.py" "$HERE/results/peers-$stamp.jsonl" \
  > "$HERE/results/peers-$stamp.md"
cat "$HERE/results/peers-$stamp.md"
