#!/usr/bin/env bash
# The chaos scenario (issue: crash safety): a spike while workers and the API are SIGKILLed and
# PostgreSQL and Redis crash and come back, then every guarantee is checked request by request.
# All processes are started by the test itself on loopback (private Redis and PostgreSQL
# servers, the real rushline-api and rushline-worker binaries).
#
#   RUSHLINE_CHAOS_RUNS       consecutive runs (default 5)
#   RUSHLINE_CHAOS_REQUESTS   requests per run (default 3000)
#   RUSHLINE_CHAOS_SECS       how long each spike lasts (default 15)
#
# CI runs a short version (one run, 1,500 requests over 10 s) as part of scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup
export RUSHLINE_CHAOS_RUNS="${RUSHLINE_CHAOS_RUNS:-5}"
export RUSHLINE_CHAOS_REQUESTS="${RUSHLINE_CHAOS_REQUESTS:-3000}"
export RUSHLINE_CHAOS_SECS="${RUSHLINE_CHAOS_SECS:-15}"
cargo build --release --locked --bins
cargo test --release --locked -p rushline-api --test api chaos -- --nocapture 2>&1 |
    grep -E '^chaos:|test result|panicked|violations'
