#!/usr/bin/env python3
"""Posts to a connection the way AWS's samples do: a boto3 `apigatewaymanagementapi` client
built with endpoint_url=f"https://{domainName}/{stage}" from the fields of a CONNECT event.

Called by gateway/tests/it/tls.rs with the event's `requestContext` as JSON on stdin and the
test's certificate as the trusted CA; prints one JSON line with the endpoint used and the status
of post_to_connection and get_connection.
"""

import argparse
import json
import sys

try:
    import boto3
    from botocore.config import Config
except ImportError as error:  # The Rust test needs boto3; this is for manual runs.
    print(f"boto3 is not installed ({error}): pip install boto3", file=sys.stderr)
    sys.exit(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ca-file", required=True, help="PEM file of the CA to trust")
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--secret-access-key", required=True)
    parser.add_argument("--data", required=True, help="what to post (UTF-8)")
    args = parser.parse_args()

    context = json.load(sys.stdin)
    domain_name = context["domainName"]
    stage = context["stage"]
    connection_id = context["connectionId"]
    endpoint = f"https://{domain_name}/{stage}"

    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=args.access_key_id,
        aws_secret_access_key=args.secret_access_key,
        verify=args.ca_file,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )
    post = client.post_to_connection(ConnectionId=connection_id, Data=args.data.encode())
    get = client.get_connection(ConnectionId=connection_id)
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "post": post["ResponseMetadata"]["HTTPStatusCode"],
                "get": get["ResponseMetadata"]["HTTPStatusCode"],
            }
        )
    )


if __name__ == "__main__":
    main()
