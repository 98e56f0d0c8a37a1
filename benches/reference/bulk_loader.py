"""The bulk loader a user would write instead of rowcast's backfill: 4 processes, each reads its
share of the table's rows (id modulo 4) from MySQL and writes them with boto3 BatchWriteItem, 25
items a request, resending what DynamoDB leaves unprocessed. The e2e bench (benches/e2e.rs)
runs it on the same rows as rowcast's backfill and prints the rows/s it reached.

usage: bulk_loader.py MYSQL_HOST MYSQL_PORT USER PASSWORD DATABASE TABLE DYNAMODB_URL DDB_TABLE
"""
import sys
import time
from multiprocessing import Pool

import boto3
import pymysql

PROCESSES = 4


def load(args):
    share, (host, port, user, password, database, table, endpoint, ddb_table) = args
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    conn = pymysql.connect(host=host, port=int(port), user=user, password=password, database=database)
    written = 0
    with conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(
            f"SELECT id, owner, balance, state FROM {table} WHERE MOD(id, %s) = %s", (PROCESSES, share)
        )
        batch = []
        for row_id, owner, balance, state in cursor:
            batch.append(
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"PRE#{owner}"},
                            "sk": {"S": f"ACC#{row_id:08d}"},
                            "balance": {"N": str(balance)},
                            "state": {"S": state},
                        }
                    }
                }
            )
            if len(batch) == 25:
                written += write(ddb, ddb_table, batch)
                batch = []
        if batch:
            written += write(ddb, ddb_table, batch)
    return written


def write(ddb, ddb_table, batch):
    pending = {ddb_table: batch}
    while pending:
        out = ddb.batch_write_item(RequestItems=pending)
        pending = {t: r for t, r in out.get("UnprocessedItems", {}).items() if r}
        if pending:
            time.sleep(0.05)
    return len(batch)


def main():
    settings = tuple(sys.argv[1:9])
    started = time.monotonic()
    with Pool(PROCESSES) as pool:
        written = sum(pool.map(load, [(share, settings) for share in range(PROCESSES)]))
    seconds = time.monotonic() - started
    print(f"{written} {seconds:.3f}", flush=True)


if __name__ == "__main__":
    main()
