"""Sets up and inspects the SQS queues of the gateway's `type: sqs` consumer tests on a running
moto server.

Usage:
  sqs_queue.py --endpoint URL create --name NAME [--fifo]
      creates the queue (`NAME.fifo` with --fifo) and prints its URL.
  sqs_queue.py --endpoint URL send --queue-url URL
      sends the messages of the JSON list read from stdin, in order, each
      {"body": text, "attributes": {name: value}, "group": id (FIFO queues)}.
  sqs_queue.py --endpoint URL count --queue-url URL
      prints how many messages are visible and how many are in flight.
"""

import argparse
import json
import sys

import boto3

REGION = "us-east-1"


def client(endpoint):
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client("sqs", endpoint_url=endpoint)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--fifo", action="store_true")
    send = commands.add_parser("send")
    send.add_argument("--queue-url", required=True)
    count = commands.add_parser("count")
    count.add_argument("--queue-url", required=True)
    args = parser.parse_args()
    sqs = client(args.endpoint)
    if args.command == "create":
        if args.fifo:
            url = sqs.create_queue(
                QueueName=args.name + ".fifo",
                Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
            )["QueueUrl"]
        else:
            url = sqs.create_queue(QueueName=args.name)["QueueUrl"]
        print(json.dumps({"queue_url": url}))
    elif args.command == "send":
        messages = json.load(sys.stdin)
        for i, message in enumerate(messages):
            request = {
                "QueueUrl": args.queue_url,
                "MessageBody": message["body"],
                "MessageAttributes": {
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in message.get("attributes", {}).items()
                },
            }
            if "group" in message:
                request["MessageGroupId"] = message["group"]
                request["MessageDeduplicationId"] = str(i)
            sqs.send_message(**request)
        print(json.dumps({"sent": len(messages)}))
    else:
        attributes = sqs.get_queue_attributes(
            QueueUrl=args.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        print(
            json.dumps(
                {
                    "visible": int(attributes["ApproximateNumberOfMessages"]),
                    "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
                }
            )
        )


if __name__ == "__main__":
    main()
