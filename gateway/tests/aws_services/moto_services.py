"""Sets up and reads back the AWS resources of the gateway's `type: aws` integration tests on a
running moto server.

Usage:
  moto_services.py --endpoint URL setup
      creates the SQS queues `chat`, `events-target` and `sns-target`, the Kinesis stream
      `chat`, an EventBridge rule on the default bus sending every `wsgate` event to
      `events-target`, the state machine `chat`, the DynamoDB table `messages` (key `id`), the
      SNS topic `chat` with `sns-target` subscribed, and prints their URLs and ARNs as JSON.
  moto_services.py --endpoint URL receive --queue-url URL --count N
      receives N messages (with all their attributes) and prints them.
  moto_services.py --endpoint URL records --stream NAME
      prints the records of every shard of the stream.
  moto_services.py --endpoint URL executions --arn ARN
      prints the input of every execution of the state machine.
  moto_services.py --endpoint URL items --table NAME
      prints the table's items.
"""

import argparse
import base64
import json
import time

import boto3

REGION = "us-east-1"


def session():
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


def setup(endpoint):
    s = session()
    sqs = s.client("sqs", endpoint_url=endpoint)
    urls = {
        name: sqs.create_queue(QueueName=name)["QueueUrl"]
        for name in ("chat", "events-target", "sns-target")
    }
    arn_of = lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    kinesis = s.client("kinesis", endpoint_url=endpoint)
    kinesis.create_stream(StreamName="chat", ShardCount=1)

    events = s.client("events", endpoint_url=endpoint)
    events.put_rule(Name="wsgate", EventPattern=json.dumps({"source": ["wsgate"]}))
    events.put_targets(
        Rule="wsgate", Targets=[{"Id": "queue", "Arn": arn_of(urls["events-target"])}]
    )

    iam = s.client("iam", endpoint_url=endpoint)
    role = iam.create_role(
        RoleName="wsgate-states",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    states = s.client("stepfunctions", endpoint_url=endpoint)
    machine = states.create_state_machine(
        name="chat",
        definition=json.dumps(
            {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
        ),
        roleArn=role,
    )["stateMachineArn"]

    dynamodb = s.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(
        TableName="messages",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    sns = s.client("sns", endpoint_url=endpoint)
    topic = sns.create_topic(Name="chat")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn_of(urls["sns-target"]))

    print(
        json.dumps(
            {
                "queue_url": urls["chat"],
                "events_queue_url": urls["events-target"],
                "sns_queue_url": urls["sns-target"],
                "state_machine_arn": machine,
                "topic_arn": topic,
            }
        ),
        flush=True,
    )


def receive(endpoint, queue_url, count):
    sqs = session().client("sqs", endpoint_url=endpoint)
    messages = []
    deadline = time.monotonic() + 10
    while len(messages) < count and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        )
        for message in answer.get("Messages", []):
            attributes = {
                name: value.get("StringValue")
                for name, value in message.get("MessageAttributes", {}).items()
            }
            messages.append(
                {"id": message["MessageId"], "body": message["Body"], "attributes": attributes}
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    print(json.dumps(messages), flush=True)


def records(endpoint, stream):
    kinesis = session().client("kinesis", endpoint_url=endpoint)
    found = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in kinesis.get_records(ShardIterator=iterator)["Records"]:
            found.append(
                {
                    "data": base64.b64encode(record["Data"]).decode(),
                    "partition_key": record["PartitionKey"],
                }
            )
    print(json.dumps(found), flush=True)


def executions(endpoint, arn):
    states = session().client("stepfunctions", endpoint_url=endpoint)
    inputs = []
    for execution in states.list_executions(stateMachineArn=arn)["executions"]:
        described = states.describe_execution(executionArn=execution["executionArn"])
        inputs.append(json.loads(described["input"]))
    print(json.dumps(inputs), flush=True)


def items(endpoint, table):
    dynamodb = session().client("dynamodb", endpoint_url=endpoint)
    print(json.dumps(dynamodb.scan(TableName=table)["Items"]), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup")
    receive_args = commands.add_parser("receive")
    receive_args.add_argument("--queue-url", required=True)
    receive_args.add_argument("--count", type=int, default=1)
    commands.add_parser("records").add_argument("--stream", required=True)
    commands.add_parser("executions").add_argument("--arn", required=True)
    commands.add_parser("items").add_argument("--table", required=True)
    args = parser.parse_args()
    if args.command == "setup":
        setup(args.endpoint)
    elif args.command == "receive":
        receive(args.endpoint, args.queue_url, args.count)
    elif args.command == "records":
        records(args.endpoint, args.stream)
    elif args.command == "executions":
        executions(args.endpoint, args.arn)
    elif args.command == "items":
        items(args.endpoint, args.table)


if __name__ == "__main__":
    main()
