#!/usr/bin/env bash
# Runs the spike scenarios (accept ceiling, presale, sold-out storm, worker scaling, many campaigns,
# two drops, waiting-room storm) against a fresh rushline stack on this machine and writes the
# report to loadtest/report/.
#
#   SCALE=0.25 loadtest/spike.sh      multiply every request count (default 1 = issue 4's sizes)
#   SCENARIO=sold-out-storm           run one scenario (smoke, accept, presale, sold-out-storm,
#                                     worker-scaling, many-campaigns, two-drops,
#                                     waiting-room-storm; the old names s1, s2, s3, s4 still work;
#                                     default all)
#   WORKERS=2                         worker processes while not paused/scaling (default 2)
#   DECIDE=instant                    create every campaign with "decide": "instant" (the accept
#                                     step decides, the API answers 200; default queued)
#   SKIP_BUILD=1                      use the release binaries already in target/release
#   BIN_DIR=/some/release             take the binaries from there instead (implies SKIP_BUILD):
#                                     runs two builds back to back for a before/after comparison
#   KEEP_DB=1                         keep the run's database and Redis keys (default: dropped)
#   RUSHLINE_SKIP_INSTALL=1           use the Redis/PostgreSQL already running (see scripts/setup)
#
# What it does: scripts/setup (Redis + PostgreSQL), a release build, a database of its own
# (rushline_spike_<time>, created with the contract's role) and a Redis key namespace of its own,
# rushline-api on a free loopback port with a generated admin token, then rushline-loadtest
# `all`, which starts and stops the rushline-worker processes itself (pause, 1/2/4 workers).
# Exit status: non-zero when any guarantee was violated.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE="${SCALE:-1}"
WORKERS="${WORKERS:-2}"
DECIDE="${DECIDE:-queued}"
REPORT_DIR=loadtest/report
mkdir -p "$REPORT_DIR"

scripts/setup
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
BIN_DIR="${BIN_DIR:-target/release}"
if [ -z "${SKIP_BUILD:-}" ] && [ "$BIN_DIR" = target/release ]; then cargo build --release --locked --bins; fi

# A free loopback port: bash's /dev/tcp fails to connect where nothing listens.
port=""
for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || { echo "no free loopback port found" >&2; exit 1; }

run_id="$(date +%Y%m%d%H%M%S)"
database="rushline_spike_${run_id}"
admin_url="${RUSHLINE_DATABASE_URL:-postgres://rushline:rushline@127.0.0.1:5432/rushline}"
psql "$admin_url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$database\"" >/dev/null
export RUSHLINE_DATABASE_URL="${admin_url%/*}/$database"
export RUSHLINE_KEY_NAMESPACE="spike${run_id}"
export RUSHLINE_HTTP_ADDR="127.0.0.1:$port"
RUSHLINE_ADMIN_TOKEN=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
export RUSHLINE_ADMIN_TOKEN
export RUST_LOG="${RUST_LOG:-warn}"
# Short enough that S2 can check Redis memory shrinks back once refused requests' status
# records expire (the default is 600 s).
export RUSHLINE_STATUS_TTL_SECS="${RUSHLINE_STATUS_TTL_SECS:-30}"

api_pid=""
cleanup() {
    trap - INT TERM EXIT
    if [ -n "$api_pid" ]; then
        kill -TERM "$api_pid" 2>/dev/null || true
        wait "$api_pid" 2>/dev/null || true
    fi
    if [ -z "${KEEP_DB:-}" ]; then
        # Plain DROP (not WITH (FORCE), which a non-superuser cannot use while autovacuum works
        # there); retried while the stopped processes' connections close.
        for _ in $(seq 1 20); do
            if psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$database\"" >/dev/null 2>&1; then
                break
            fi
            sleep 0.5
        done
        # The run's own Redis namespace (idempotency keys would otherwise stay 25 h).
        if command -v redis-cli >/dev/null 2>&1; then
            redis-cli -u "${RUSHLINE_REDIS_URL:-redis://127.0.0.1:6379}" --scan \
                --pattern "rushline:$RUSHLINE_KEY_NAMESPACE:*" |
                xargs -r -n 500 redis-cli -u "${RUSHLINE_REDIS_URL:-redis://127.0.0.1:6379}" unlink \
                    >/dev/null || true
        fi
    fi
}
trap cleanup INT TERM EXIT

"$BIN_DIR/rushline-api" >"$REPORT_DIR/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 300); do
    if curl -fsS "http://$RUSHLINE_HTTP_ADDR/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$api_pid" 2>/dev/null; then
        echo "rushline-api exited; last lines of $REPORT_DIR/api.log:" >&2
        tail -n 20 "$REPORT_DIR/api.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "rushline-api on http://$RUSHLINE_HTTP_ADDR (pid $api_pid), database $database, scale $SCALE"

status=0
"$BIN_DIR/rushline-loadtest" \
    --api-url "http://$RUSHLINE_HTTP_ADDR" \
    --api-pid "$api_pid" \
    --workers "$WORKERS" \
    --worker-bin "$BIN_DIR/rushline-worker" \
    --report-dir "$REPORT_DIR" \
    --decide "$DECIDE" \
    "${SCENARIO:-all}" --scale "$SCALE" || status=$?
echo "report: $REPORT_DIR/report.json, $REPORT_DIR/*.svg, $REPORT_DIR/summary.txt"
exit "$status"
