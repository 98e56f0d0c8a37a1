#!/usr/bin/env bash
# The main job on a fresh machine: starts MariaDB and DynamoDB Local, loads the example schema
# (a restaurant menu service), creates the DynamoDB tables, runs `rowcast run` on config/ and
# views/, makes changes and shows them arriving. The daemon then keeps running until Ctrl-C
# (SIGTERM drains and checkpoints). ROWCAST_DEMO_EXIT=1 stops it after the showcase.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/local-services.sh start
# A fresh DynamoDB Local: no checkpoint from an earlier demo (see ENVIRONMENT notes in README).
bash deploy/local-services.sh restart-dynamodb
command -v cargo >/dev/null 2>&1 || { echo "cargo is needed (https://rustup.rs)" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
cargo build --release --quiet

export ROWCAST_MYSQL_PASSWORD=rowcast
BIN=target/release/rowcast
CONFIG=config/rowcast.toml
SQL=(mariadb -h127.0.0.1 -P3306 -urowcast_admin -prowcast)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "example schema and data (menu: channels, categories, products, substitutions, customers, orders)"
"${SQL[@]}" -e "DROP DATABASE IF EXISTS menu"
"${SQL[@]}" < deploy/sql/menu.sql
"${SQL[@]}" < deploy/sql/menu-data.sql

say "rowcast tables create, check --connect"
$BIN tables --config "$CONFIG" create
$BIN check --connect --config "$CONFIG"

say "rowcast run (log: target/demo-rowcast.log)"
$BIN run --config "$CONFIG" 2> target/demo-rowcast.log &
DAEMON=$!
trap 'kill -TERM $DAEMON 2>/dev/null; wait $DAEMON' INT TERM
for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9187/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs http://127.0.0.1:9187/readyz
for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9187/readyz | grep -q backfilling || break
  sleep 0.2
done
say "the existing rows were backfilled (menu_views)"
$BIN scan --config "$CONFIG" --table menu_views

say "changes in MariaDB (deploy/sql/menu-changes.sql)"
"${SQL[@]}" < deploy/sql/menu-changes.sql
sleep 1

say "menu_views: one Query on pk = CHANNEL#WEB pages through the WEB menu in display order"
$BIN query --config "$CONFIG" --table menu_views --pk 'CHANNEL#WEB' --page-size 2
say "shop_views: orders (customers is a lazy view: no profiles until asked for or changed)"
$BIN scan --config "$CONFIG" --table shop_views

say "fill on miss: the lazy customers view reads Ada's profile from MariaDB when asked"
curl -fs "http://127.0.0.1:9188/v1/views/customers/item?pk=CUSTOMER%231&sk=PROFILE"; echo
curl -s -o /dev/null -w "unknown customer: HTTP %{http_code}\n" "http://127.0.0.1:9188/v1/views/customers/item?pk=CUSTOMER%2399&sk=PROFILE"

say "a price changes every second; the product item and its category's embedded list follow"
for price in 11.50 12.00 8.25; do
  "${SQL[@]}" menu -e "UPDATE products SET price = $price WHERE id = 2"
  sleep 1
  $BIN scan --config "$CONFIG" --table menu_views | grep -E '"sk":"PRODUCT#00000002"|"category_id":2,'
done

say "write-back: an application marks order 2 delivered in DynamoDB (UpdateItem); rowcast writes it to MariaDB"
curl -fs -X POST http://127.0.0.1:8000/ -H 'Content-Type: application/x-amz-json-1.0' \
  -H 'X-Amz-Target: DynamoDB_20120810.UpdateItem' \
  -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
  -d '{"TableName":"shop_views","Key":{"pk":{"S":"CUSTOMER#2"},"sk":{"S":"ORDER#0000000002"}},"UpdateExpression":"SET #s = :s","ExpressionAttributeNames":{"#s":"status"},"ExpressionAttributeValues":{":s":{"S":"delivered"}}}' >/dev/null
for _ in $(seq 1 50); do
  [ "$("${SQL[@]}" -N -e "SELECT status FROM menu.orders WHERE id = 2")" = delivered ] && break
  sleep 0.2
done
"${SQL[@]}" -e "SELECT id, customer_id, status FROM menu.orders WHERE id = 2"
sleep 1
$BIN scan --config "$CONFIG" --table shop_views | grep '"sk":"ORDER#0000000002"'
say "the by_status index of shop_views (a GSI declared by [[index]] in views/customer_orders.toml)"
$BIN query --config "$CONFIG" --table shop_views --index by_status --pk 'STATUS#delivered'

say "metrics (http://127.0.0.1:9187/metrics)"
curl -fs http://127.0.0.1:9187/metrics | grep -E '^rowcast_(rows_total|items_written_total|replication_lag_seconds|checkpoint_transaction_seq|dead_letters_total|join_queries_total|join_refresh_reads_total|writeback_stream_records_total)' || true

if [ "${ROWCAST_DEMO_EXIT:-0}" = 1 ]; then
  kill -TERM $DAEMON
  wait $DAEMON
  say "rowcast stopped (SIGTERM: drained and checkpointed)"
  exit 0
fi
say "rowcast keeps running: change rows in MariaDB (${SQL[*]} menu) and scan the views; Ctrl-C stops it"
wait $DAEMON
