#!/usr/bin/env python3
"""IAM callers of wsgate through botocore and boto3, for gateway/tests/it/iam_*.rs.

`sign`: signs a WebSocket upgrade (GET; `--method` for other requests) with botocore, either as a presigned URL
(`SigV4QueryAuth`, the query form browsers and Amplify use) or with headers (`SigV4Auth`), and
prints {"url": ..., "headers": {...}} as one JSON line. `--date-offset` moves the signing clock
(negative: in the past) so expiry can be tested without waiting.

`manage`: runs boto3 `apigatewaymanagementapi` calls (`--op post:ID`, `get:ID`, `delete:ID`,
repeatable) and prints one JSON line: a list with, per call, {"status": N} or what the
ClientError carried (class, code, status, message).
"""

import argparse
import datetime
import json
import sys

try:
    import boto3
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
    from botocore.exceptions import ClientError
except ImportError as error:  # The Rust test checks this first; this is for manual runs.
    print(f"boto3 is not installed ({error}): pip install boto3", file=sys.stderr)
    sys.exit(2)


def credentials(args):
    return Credentials(args.access_key_id, args.secret_access_key, args.session_token)


def sign(args):
    if args.date_offset:
        real = botocore.auth.get_current_datetime
        shift = datetime.timedelta(seconds=args.date_offset)
        botocore.auth.get_current_datetime = lambda: real() + shift
    request = AWSRequest(method=args.method, url=args.url)
    if args.mode == "presign":
        signer = botocore.auth.SigV4QueryAuth(
            credentials(args), args.service, args.region, expires=args.expires
        )
    else:
        signer = botocore.auth.SigV4Auth(credentials(args), args.service, args.region)
    signer.add_auth(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
    return {"url": request.url, "headers": headers}


def manage(args):
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key_id,
        aws_secret_access_key=args.secret_access_key,
        aws_session_token=args.session_token,
        # One attempt each: a retried call would hide what the gateway answered first.
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )
    results = []
    for op in args.op:
        name, _, connection_id = op.partition(":")
        try:
            if name == "post":
                response = client.post_to_connection(ConnectionId=connection_id, Data=b"hi")
            elif name == "get":
                response = client.get_connection(ConnectionId=connection_id)
            elif name == "delete":
                response = client.delete_connection(ConnectionId=connection_id)
            else:
                raise ValueError(f"unknown op {name}")
            results.append({"status": response["ResponseMetadata"]["HTTPStatusCode"]})
        except ClientError as error:
            results.append(
                {
                    "raised": type(error).__name__,
                    "code": error.response.get("Error", {}).get("Code"),
                    "message": error.response.get("Error", {}).get("Message"),
                    "status": error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                }
            )
        except Exception as error:  # noqa: BLE001 - recorded for the Rust side to report
            results.append({"raised": type(error).__name__, "unexpected": repr(error)})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sign", "manage"):
        p = sub.add_parser(name)
        p.add_argument("--access-key-id", required=True)
        p.add_argument("--secret-access-key", required=True)
        p.add_argument("--session-token", default=None)
        p.add_argument("--region", default="us-east-1")
    s = sub.choices["sign"]
    s.add_argument("--url", required=True, help="http://host:port/stage (signed as the upgrade)")
    s.add_argument("--mode", choices=("presign", "header"), required=True)
    s.add_argument("--method", default="GET", help="GET (upgrades) or another callback method")
    s.add_argument("--service", default="execute-api")
    s.add_argument("--expires", type=int, default=300)
    s.add_argument("--date-offset", type=int, default=0, help="seconds added to the clock")
    m = sub.choices["manage"]
    m.add_argument("--endpoint", required=True, help="http://host:port/stage")
    m.add_argument("--op", action="append", required=True, help="post:ID, get:ID or delete:ID")
    args = parser.parse_args()
    result = sign(args) if args.command == "sign" else manage(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
