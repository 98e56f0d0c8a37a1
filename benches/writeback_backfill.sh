#!/bin/bash
# Backfill of a 20,000-row table into one view, without and with write-back (whose views write
# only conditional single writes): time to the end of the pass, process start included, and
# rowcast's CPU. Run from the repository root after `cargo build --release`, with the local
# services started (`bash deploy/local-services.sh start`; restart DynamoDB Local before).
set -e
B=${ROWCAST_BIN:-$PWD/target/release/rowcast}
M="mysql -h127.0.0.1 -urowcast_admin -prowcast"
$M -e "DROP DATABASE IF EXISTS rc_wbperf; CREATE DATABASE rc_wbperf; CREATE TABLE rc_wbperf.notes (id INT PRIMARY KEY, body VARCHAR(40))"
python3 -c "
rows=','.join(f\"({i},'note number {i}')\" for i in range(1,20001))
print(f'INSERT INTO rc_wbperf.notes VALUES {rows};')" | $M
for mode in plain writeback; do
  d=${TMPDIR:-/tmp}/rowcast-wbperf/$mode; rm -rf $d; mkdir -p $d/views
  wb=""; [ $mode = writeback ] && wb=$'[writeback]\nenabled = true\nattributes = ["body"]'
  cat > $d/views/notes.toml <<V
name = "notes"
table = "wbperf_${mode}_$$"
source = "rc_wbperf.notes"
[key]
pk = "N#{id}"
sk = "NOTE"
[attributes]
body = "body"
$wb
V
  cat > $d/rowcast.toml <<C
views = ["views/*.toml"]
[source]
url = "mysql://rowcast:rowcast@127.0.0.1:3306"
server_id = 7$RANDOM
[dynamodb]
endpoint_url = "http://127.0.0.1:8000"
region = "us-east-1"
[metrics]
listen = "127.0.0.1:19187"
[api]
listen = "127.0.0.1:19188"
[checkpoint]
table = "wbperf_control_${mode}_$$"
C
  (cd $d && $B tables --config rowcast.toml create >/dev/null 2>&1)
  start=$(date +%s.%N)
  (cd $d && exec $B run --config rowcast.toml > run.log 2>&1) &
  pid=$!
  until curl -s 127.0.0.1:19187/readyz 2>/dev/null | grep -q "^ready" && ! curl -s 127.0.0.1:19187/readyz | grep -q backfilling; do sleep 0.1; done
  end=$(date +%s.%N)
  cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
  kill -TERM $pid; wait $pid || true
  echo "$mode: backfill of 20000 rows $(echo "$end - $start" | bc) s, $(echo "20000 / ($end - $start)" | bc) rows/s, rowcast cpu $cpu s"
done
