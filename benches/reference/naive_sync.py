"""The program a user would write instead of rowcast: python-mysql-replication follows the
binlog from its current end and boto3 puts (or deletes) one item per row event, as it arrives.
The latency bench (benches/latency.rs) runs it beside rowcast on the same workload.

usage: naive_sync.py MYSQL_HOST MYSQL_PORT USER PASSWORD DATABASE TABLE SERVER_ID DYNAMODB_URL DDB_TABLE
"""
import sys

import boto3
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent


def key(row):
    return {"pk": {"S": f"OWNER#{row['owner']}"}, "sk": {"S": f"ACC#{row['id']:08d}"}}


def main():
    host, port, user, password, database, table, server_id, endpoint, ddb_table = sys.argv[1:10]
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    stream = BinLogStreamReader(
        connection_settings={"host": host, "port": int(port), "user": user, "passwd": password},
        server_id=int(server_id),
        blocking=True,
        resume_stream=True,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[database],
        only_tables=[table],
    )
    print("following", flush=True)
    for event in stream:
        for row in event.rows:
            if isinstance(event, DeleteRowsEvent):
                ddb.delete_item(TableName=ddb_table, Key=key(row["values"]))
                continue
            values = row["after_values"] if isinstance(event, UpdateRowsEvent) else row["values"]
            item = key(values)
            item["balance"] = {"N": str(values["balance"])}
            item["state"] = {"S": values["state"]}
            ddb.put_item(TableName=ddb_table, Item=item)


if __name__ == "__main__":
    main()
