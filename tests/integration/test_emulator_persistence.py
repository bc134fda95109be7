"""The local stack's AWS emulator keeps what it acknowledged: DynamoDB items (and their index entries),
S3 objects with their metadata, queued SQS messages (a delay keeps what was left of it), secrets and
parameters survive a SIGKILL of the emulator and come back when it starts again on the same folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chalicelib.cli.devstack import free_port

TABLE = {
    "TableName": "things",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "S"},
                             {"AttributeName": "gk", "AttributeType": "N"}],
    "GlobalSecondaryIndexes": [{"IndexName": "by-gk", "Projection": {"ProjectionType": "ALL"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "gk", "KeyType": "RANGE"}]}],
    "BillingMode": "PAY_PER_REQUEST",
}


class Emulator:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.proc: subprocess.Popen | None = None

    def start(self) -> dict:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli.emulator", "--port", str(self.port),
                                      "--data", str(self.data)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        assert ready["ready"] is True
        return ready

    def client(self, service: str):
        """A client of the emulator's HTTP endpoint, never of the in-process moto other tests of this worker run."""
        import boto3
        from moto.core.models import botocore_stubber

        session = boto3.session.Session()
        session._session.unregister("before-send", botocore_stubber)
        return session.client(service, region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{self.port}",
                              aws_access_key_id="testing", aws_secret_access_key="testing")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def emulator(tmp_path) -> Iterator[Emulator]:
    running = Emulator(tmp_path / "data")
    yield running
    if running.proc is not None and running.proc.poll() is None:
        running.kill()


def test_everything_acknowledged_is_back_after_a_kill(emulator):
    emulator.start()
    ddb, s3, sqs = emulator.client("dynamodb"), emulator.client("s3"), emulator.client("sqs")
    ddb.create_table(**TABLE)
    for n in range(30):
        ddb.put_item(TableName="things", Item={"pk": {"S": "p"}, "sk": {"S": f"s{n:02d}"}, "gk": {"N": str(30 - n)},
                                               "note": {"M": {"n": {"N": str(n)}, "tags": {"SS": ["a", "b"]}}}})
    ddb.update_item(TableName="things", Key={"pk": {"S": "p"}, "sk": {"S": "s00"}},
                    UpdateExpression="ADD #c :one", ExpressionAttributeNames={"#c": "count"},
                    ExpressionAttributeValues={":one": {"N": "1"}})
    ddb.delete_item(TableName="things", Key={"pk": {"S": "p"}, "sk": {"S": "s29"}})
    s3.create_bucket(Bucket="files")
    s3.put_object(Bucket="files", Key="a/b.json", Body=b'{"x": 1}', ContentType="application/json",
                  Metadata={"owner": "t1"})
    s3.put_object(Bucket="files", Key="gone", Body=b"x")
    s3.delete_object(Bucket="files", Key="gone")
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="first")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=120)
    taken = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
    sqs.send_message(QueueUrl=url, MessageBody="done")
    done = [m for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"] if m["Body"] == "done"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=done[0]["ReceiptHandle"])
    emulator.client("secretsmanager").create_secret(Name="app/key", SecretString="s3cr3t")
    emulator.client("ssm").put_parameter(Name="/app/flag", Value="on", Type="String")
    emulator.kill()

    restored = emulator.start()
    assert (restored["objects"], restored["messages"]) == (1, 2)
    ddb, s3, sqs = emulator.client("dynamodb"), emulator.client("s3"), emulator.client("sqs")
    ddb.create_table(**TABLE)  # what provisioning does on every start: the items reattach to the table
    items = ddb.query(TableName="things", KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "p"}})["Items"]
    assert [i["sk"]["S"] for i in items] == [f"s{n:02d}" for n in range(29)]
    assert items[0]["count"] == {"N": "1"} and items[3]["note"]["M"]["n"] == {"N": "3"}
    by_index = ddb.query(TableName="things", IndexName="by-gk", KeyConditionExpression="pk = :p AND gk < :g",
                         ExpressionAttributeValues={":p": {"S": "p"}, ":g": {"N": "4"}})["Items"]
    assert [i["sk"]["S"] for i in by_index] == ["s28", "s27"]  # gk 2, 3 in index order
    body = s3.get_object(Bucket="files", Key="a/b.json")
    assert body["Body"].read() == b'{"x": 1}' and body["ContentType"] == "application/json"
    assert body["Metadata"] == {"owner": "t1"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="files").get("Contents", [])] == ["a/b.json"]
    url = sqs.get_queue_url(QueueName="work")["QueueUrl"]
    visible = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in visible] == [taken["Body"]]  # in flight at the kill: visible again
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])[
        "Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"  # "later" still waits out its delay
    assert emulator.client("secretsmanager").get_secret_value(SecretId="app/key")["SecretString"] == "s3cr3t"
    assert emulator.client("ssm").get_parameter(Name="/app/flag")["Parameter"]["Value"] == "on"


def test_a_cancelled_transaction_leaves_nothing_on_disk(emulator):
    emulator.start()
    ddb = emulator.client("dynamodb")
    ddb.create_table(**TABLE)
    ddb.put_item(TableName="things", Item={"pk": {"S": "p"}, "sk": {"S": "taken"}, "gk": {"N": "1"}})
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "things", "Item": {"pk": {"S": "p"}, "sk": {"S": "new"}, "gk": {"N": "2"}}}},
            {"Put": {"TableName": "things", "Item": {"pk": {"S": "p"}, "sk": {"S": "taken"}, "gk": {"N": "3"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    emulator.kill()
    emulator.start()
    ddb = emulator.client("dynamodb")
    ddb.create_table(**TABLE)
    items = ddb.query(TableName="things", KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "p"}})["Items"]
    assert [(i["sk"]["S"], i["gk"]["N"]) for i in items] == [("taken", "1")]


def test_restart_reads_only_the_small_service_state(emulator):
    emulator.start()
    ddb = emulator.client("dynamodb")
    ddb.create_table(**TABLE)
    with ddb_batch(ddb) as put:
        for n in range(3000):
            put({"pk": {"S": f"p{n % 10}"}, "sk": {"S": f"s{n:05d}"}, "gk": {"N": str(n)}, "pad": {"S": "x" * 200}})
    emulator.kill()
    began = time.monotonic()
    ready = emulator.start()
    # DynamoDB items stay in their SQLite file: a restart reads none of them (its time, measured side by side
    # with 53,400 stored deltas, is bench/localstack.py's; here only a hang guard).
    assert ready["ready"] and time.monotonic() - began < 15
    ddb = emulator.client("dynamodb")
    ddb.create_table(**TABLE)
    assert ddb.describe_table(TableName="things")["Table"]["ItemCount"] == 3000


@contextmanager
def ddb_batch(ddb) -> Iterator:
    """Puts in BatchWriteItem requests of 25."""
    pending: list[dict] = []

    def flush() -> None:
        if pending:
            ddb.batch_write_item(RequestItems={"things": list(pending)})
            pending.clear()

    def put(item: dict) -> None:
        pending.append({"PutRequest": {"Item": item}})
        if len(pending) == 25:
            flush()

    yield put
    flush()
