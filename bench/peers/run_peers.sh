#!/usr/bin/env bash
# jobdesk in the peer harness's table, in one session: scenarios enqueue, drain and latency
# for the jobdesk configurations and the peers, repetitions outermost so that machine noise
# spreads over every library. `make bench-peers` runs this.
#
#   bench/peers/run_peers.sh          # REPS=2 N=10000, the table of RESULTS.md: ~20 min on 2 cores
#   REPS=1 N=2000 LIBS="jobdesk_rt_pg pgqueuer" bench/peers/run_peers.sh   # a quick look
#   bench/peers/run_peers.sh cpu      # CPU per job per process (cpu_per_job.py; CPU_LIBS)
#
# Settings (environment):
#   JOBDESK_PEERS_HARNESS  the shared harness (default: ../shared/bench beside the repository)
#   PEERS_VENV             a venv with the peers and jobdesk (default: $TMPDIR/peers-venv; made if missing)
#   REPS, N, LIBS, SKIP_VARIANTS   repetitions, jobs per scenario, libraries, "lib:variant" to skip
#
# It copies the harness to a temp dir (the harness writes beside itself) and writes
# bench/results/peers-<time>.{env.txt,jsonl,md}.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPOSITORY=$(cd "$HERE/../.." && pwd)
TEMP=${TMPDIR:-/tmp}
HARNESS=${JOBDESK_PEERS_HARNESS:-"$REPOSITORY/../shared/bench"}
VENV=${PEERS_VENV:-"$TEMP/peers-venv"}
RESULTS="$REPOSITORY/bench/results"
REPS=${REPS:-2}
N=${N:-10000}
LIBS=${LIBS:-"jobdesk_rt_pg jobdesk_rt pgqueuer procrastinate celery rq"}
# rq's forking worker drains 10,000 jobs in ~2 minutes per repetition: left out by default
SKIP_VARIANTS=${SKIP_VARIANTS:-"rq:fork_x2"}

if [ ! -f "$HARNESS/bench.py" ]; then
  echo "no peer harness at $HARNESS (set JOBDESK_PEERS_HARNESS)" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # the peers exactly as the harness's run_anchors.sh installs them, plus jobdesk itself
  "$VENV/bin/pip" install -q "procrastinate>=3,<4" pgqueuer "celery[redis]" rq \
      "psycopg[binary]" psycopg-pool asyncpg
  "$VENV/bin/pip" install -q -e "$REPOSITORY"
fi

peers=$(mktemp -d "$TEMP/peers.XXXXXX")
cp -r "$HARNESS/." "$peers"
chmod -R u+w "$peers"
ln -s "$VENV" "$peers/.venv"
cd "$peers" || exit 1
./setup_services.sh
export PYTHONPATH="$HERE" SKIP_INSTALL=1
PY=.venv/bin/python
mkdir -p results logs "$RESULTS"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo "harness copy: $peers"

{
  echo "date: $(date -Is)"
  echo "commit: $(git -C "$REPOSITORY" rev-parse --short HEAD)$(git -C "$REPOSITORY" diff --quiet HEAD -- src || echo ' (src modified)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(lscpu | grep 'Model name' | cut -d: -f2- | sed 's/^ *//')"
  echo "mem: $(free -g | awk '/Mem:/ {print $2" GiB"}')"
  echo "disk: $(df -h "$TEMP" | awk 'NR==2 {print $1" "$2}')"
  echo "python: $($PY --version 2>&1)"
  echo "sqlite: $($PY -c 'import sqlite3; print(sqlite3.sqlite_version)')"
  echo "postgres: $(psql -h 127.0.0.1 -U root -d bench -qtAc 'select version()')"
  echo "redis: $(redis-server --version)"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  $PY -m pip freeze 2>/dev/null | grep -iE '^(procrastinate|pgqueuer|celery|rq|redis|psycopg|asyncpg)' | sed 's/^/pkg: /'
  echo "pkg: jobdesk from $($PY -c 'import jobdesk, os; print(os.path.dirname(jobdesk.__file__))')"
} > "$RESULTS/peers-$stamp.env.txt"
cat "$RESULTS/peers-$stamp.env.txt"

# `run_peers.sh cpu` (make bench-cpu): CPU per job per process instead of the rates
if [ "${1:-}" = cpu ]; then
  PYTHONPATH="$HERE:$PWD" exec $PY "$HERE/cpu_per_job.py" --reps "$REPS" --n "$N" --results "$RESULTS" --stamp "$stamp" \
    ${CPU_LIBS:+--libs "$CPU_LIBS"}
fi

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
  # issue 17's HTTP row: POST /api/v1/jobs on one `jobdesk serve`, beside this repetition's
  # library create_job rate (the enqueue scenario above); needs wrk (Debian's package)
  case " $LIBS " in *" jobdesk_rt_pg "*)
    if command -v wrk >/dev/null; then
      url=$($PY -c "from jobdesk_adapter import CONFIGURATIONS as c; print(c['jobdesk_rt_pg'].url)")
      timeout 300 $PY "$HERE/http_post.py" "$url" "$rep" results/results.jsonl
    else
      echo "wrk not installed: no HTTP POST row (apt-get install -y wrk)"
    fi ;;
  esac
  echo "rep $rep done after $(( $(date +%s) - started )) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); total $(( $(date +%s) - started )) s" \
  >> "$RESULTS/peers-$stamp.env.txt"

cp results/results.jsonl "$RESULTS/peers-$stamp.jsonl"
$PY "$HERE/peers_report.py" "$RESULTS/peers-$stamp.jsonl" > "$RESULTS/peers-$stamp.md"
cat "$RESULTS/peers-$stamp.md"
