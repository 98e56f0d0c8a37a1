#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs and starts MariaDB and DynamoDB Local
# (deploy/local-services.sh), gives the tests a fresh DynamoDB Local, then runs unit tests,
# integration tests against the real services, and compiles the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/local-services.sh start
# DynamoDB Local slows down as stream-enabled tables accumulate: start each run fresh.
bash deploy/local-services.sh restart-dynamodb
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is needed (https://rustup.rs)" >&2
  exit 1
fi
export ROWCAST_TEST_MYSQL_URL=${ROWCAST_TEST_MYSQL_URL:-mysql://rowcast_admin:rowcast@127.0.0.1:3306}
export ROWCAST_TEST_DYNAMODB=${ROWCAST_TEST_DYNAMODB:-http://127.0.0.1:8000}
# Benchmarks compile and run once in test mode (the end-to-end driver only under `cargo bench`).
# The tests are built with the `failpoints` feature: named crash points (src/util/failpoint.rs).
cargo test --benches
cargo test --features failpoints --lib --bins --tests -- --test-threads="${ROWCAST_TEST_THREADS:-4}" "$@"
