"""Does a consistent snapshot see every commit before the binlog position it reports?

MariaDB reports a snapshot's binlog position (`binlog_snapshot_position` after `START
TRANSACTION WITH CONSISTENT SNAPSHOT`); rowcast merges a snapshot read's rows into the change
stream there (see the README, How it works, Backfill). This counts the snapshots that do not see
a commit written before their position.

A writer commits N updates of one row (`n = 1`, then `n = 2`, ...), plain or as XA
transactions; three readers take snapshots meanwhile, each noting the binlog end before it
(`SHOW MASTER STATUS`), the position its snapshot reports and the row it sees. The binlog is
then read to learn which update ends where. A snapshot is counted when it sees an older `n` than
the last update before its position, and again (`before the snapshot began`) when that update
ended before the binlog end noted before the snapshot began.

    python3 -m venv target/bench-venv && target/bench-venv/bin/pip install pymysql
    target/bench-venv/bin/python benches/snapshot_position.py 3000 plain
    target/bench-venv/bin/python benches/snapshot_position.py 3000 xa

Against the server `bash deploy/local-services.sh start` runs (database `snapshot_position`,
dropped and made again).
"""

import sys
import threading

import pymysql

SERVER = dict(host="127.0.0.1", user="rowcast_admin", password="rowcast", autocommit=True)


def main():
    updates, mode = int(sys.argv[1]), sys.argv[2]
    admin = pymysql.connect(**SERVER).cursor()
    admin.execute("DROP DATABASE IF EXISTS snapshot_position")
    admin.execute("CREATE DATABASE snapshot_position")
    admin.execute("CREATE TABLE snapshot_position.t (id INT PRIMARY KEY, n INT) ENGINE=InnoDB")
    admin.execute("INSERT INTO snapshot_position.t VALUES (1, 0)")
    admin.execute("FLUSH BINARY LOGS")
    admin.execute("SHOW MASTER STATUS")
    binlog = admin.fetchone()[0]
    seen = []
    done = threading.Event()

    def write():
        cursor = pymysql.connect(database="snapshot_position", **SERVER).cursor()
        for n in range(1, updates + 1):
            if mode == "xa":
                xid = f"'u{n}'"
                for statement in (f"XA START {xid}", f"UPDATE t SET n = {n} WHERE id = 1",
                                  f"XA END {xid}", f"XA PREPARE {xid}", f"XA COMMIT {xid}"):
                    cursor.execute(statement)
            else:
                cursor.execute(f"UPDATE t SET n = {n} WHERE id = 1")
        done.set()

    def read():
        cursor = pymysql.connect(database="snapshot_position", **SERVER).cursor()
        while not done.is_set():
            cursor.execute("SHOW MASTER STATUS")
            end_before = cursor.fetchone()[1]
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cursor.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {name.lower(): value for name, value in cursor.fetchall()}
            cursor.execute("SELECT n FROM t WHERE id = 1")
            n = cursor.fetchone()[0]
            cursor.execute("COMMIT")
            if status["binlog_snapshot_file"] == binlog:
                seen.append((end_before, int(status["binlog_snapshot_position"]), n))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Where each update's commit ends in the binlog: its Xid event, or its XA COMMIT.
    admin.execute(f"SHOW BINLOG EVENTS IN '{binlog}'")
    ends, n = [], 0
    for _, _, kind, _, end, info in admin.fetchall():
        if (mode == "xa" and info.startswith("XA COMMIT")) or (mode != "xa" and kind == "Xid"):
            n += 1
            ends.append((end, n))

    def committed_by(position):
        return max((n for end, n in ends if end <= position), default=0)

    missed = sum(1 for _, position, n in seen if n < committed_by(position))
    missed_before = sum(1 for before, _, n in seen if n < committed_by(before))
    print(f"{mode}: {len(seen)} snapshots, {len(ends)} commits; {missed} saw an older row than "
          f"their position says, {missed_before} of them a commit that ended before the "
          f"snapshot began")
    admin.execute("DROP DATABASE snapshot_position")


if __name__ == "__main__":
    main()
