#!/usr/bin/env python3
"""Drives wsgate's callback API with the official AWS SDK for Python (boto3).

Called by gateway/tests/aws_sdk.rs against a running gateway: each step's outcome goes into one
JSON object, printed as the last line of stdout, which the Rust test asserts on step by step.
A step that raises something unexpected is recorded as such instead of stopping the run.
"""

import argparse
import datetime
import json
import sys

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError as error:  # The Rust test checks this first; this is for manual runs.
    print(f"boto3 is not installed ({error}): pip install boto3", file=sys.stderr)
    sys.exit(2)

REGION = "us-east-1"
# One over Amazon API Gateway's 128 KiB limit on a posted message.
TOO_LARGE = 131072 + 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="http://host:port/stage")
    parser.add_argument("--connection-id", required=True)
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--secret-access-key", required=True)
    parser.add_argument("--text-hex", required=True, help="a UTF-8 payload, hex")
    parser.add_argument("--binary-hex", required=True, help="a non-UTF-8 payload, hex")
    parser.add_argument("--last-words", required=True, help="posted right before the delete")
    return parser.parse_args()


def management_client(endpoint, access_key_id, secret_access_key):
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        # One attempt each: a retried call would hide what the gateway answered first.
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


def status_of(response):
    return response["ResponseMetadata"]["HTTPStatusCode"]


def client_error(error):
    """What a ClientError carried: the exception class name, the error code and HTTP status."""
    return {
        "raised": type(error).__name__,
        "code": error.response.get("Error", {}).get("Code"),
        "status": error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
    }


def unexpected(error):
    return {"raised": type(error).__name__, "unexpected": repr(error)}


def step(results, name, action):
    try:
        results[name] = action()
    except Exception as error:  # noqa: BLE001 - recorded for the Rust side to report
        results[name] = unexpected(error)


def main():
    args = parse_args()
    cid = args.connection_id
    client = management_client(args.endpoint, args.access_key_id, args.secret_access_key)
    results = {"boto3_version": boto3.__version__}

    def post(data):
        return {"status": status_of(client.post_to_connection(ConnectionId=cid, Data=data))}

    step(results, "post_text", lambda: post(bytes.fromhex(args.text_hex)))
    step(results, "post_binary", lambda: post(bytes.fromhex(args.binary_hex)))

    def forbidden(access_key_id, secret_access_key):
        other = management_client(args.endpoint, access_key_id, secret_access_key)
        try:
            other.post_to_connection(ConnectionId=cid, Data=b"must not be delivered")
        except ClientError as error:
            return client_error(error)
        return {"raised": None}

    step(results, "wrong_secret",
         lambda: forbidden(args.access_key_id, args.secret_access_key + "x"))
    step(results, "unknown_key",
         lambda: forbidden("AKIDUNKNOWN", args.secret_access_key))

    def too_large():
        try:
            client.post_to_connection(ConnectionId=cid, Data=b"x" * TOO_LARGE)
        except client.exceptions.PayloadTooLargeException as error:
            return client_error(error)
        except ClientError as error:
            return {**client_error(error), "expected": "PayloadTooLargeException"}
        return {"raised": None}

    step(results, "too_large", too_large)

    def get():
        response = client.get_connection(ConnectionId=cid)
        connected_at = response.get("ConnectedAt")
        last_active_at = response.get("LastActiveAt")
        identity = response.get("Identity", {})
        return {
            "status": status_of(response),
            "connected_at_is_datetime": isinstance(connected_at, datetime.datetime),
            "last_active_at_is_datetime": isinstance(last_active_at, datetime.datetime),
            "connected_at_ms": int(connected_at.timestamp() * 1000) if connected_at else None,
            "last_active_at_ms": int(last_active_at.timestamp() * 1000) if last_active_at else None,
            "source_ip": identity.get("SourceIp"),
            "user_agent": identity.get("UserAgent"),
        }

    step(results, "get", get)
    # Last words, then the delete straight after: the client must get both, in that order.
    step(results, "post_last", lambda: post(args.last_words.encode()))
    step(results, "delete",
         lambda: {"status": status_of(client.delete_connection(ConnectionId=cid))})

    def post_after_delete():
        try:
            client.post_to_connection(ConnectionId=cid, Data=b"too late")
        except client.exceptions.GoneException as error:
            return client_error(error)
        except ClientError as error:
            return {**client_error(error), "expected": "GoneException"}
        return {"raised": None}

    step(results, "post_after_delete", post_after_delete)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
