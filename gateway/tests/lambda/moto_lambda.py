"""Sets up Lambda functions on a running moto server (Lambda without Docker: moto answers an
invocation from a queue of results) for the gateway's Lambda ARN test.

Usage: moto_lambda.py --endpoint URL --function NAME --alias ALIAS --result JSON [--result ...]
Prints {"arn": <unqualified function ARN>} on success.
"""

import argparse
import io
import json
import urllib.request
import zipfile

import boto3

REGION = "us-east-1"


def post(endpoint, path, payload):
    request = urllib.request.Request(
        endpoint + path,
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--function", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--result", action="append", default=[])
    args = parser.parse_args()
    # Lambda without Docker: invocations take their results from a queue.
    post(args.endpoint, "/moto-api/config", {"lambda": {"use_docker": False}})
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    iam = session.client("iam", endpoint_url=args.endpoint)
    role = iam.create_role(
        RoleName=f"{args.function}-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return None\n")
    client = session.client("lambda", endpoint_url=args.endpoint)
    function = client.create_function(
        FunctionName=args.function,
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": code.getvalue()},
        Publish=True,
    )
    client.create_alias(
        FunctionName=args.function, Name=args.alias, FunctionVersion=function["Version"]
    )
    for result in args.result:
        post(
            args.endpoint,
            "/moto-api/static/lambda-simple/response",
            {"results": [result], "region": REGION},
        )
    # The unqualified ARN (arn:aws:lambda:region:account:function:name), without a version.
    arn = ":".join(function["FunctionArn"].split(":")[:7])
    print(json.dumps({"arn": arn}), flush=True)


if __name__ == "__main__":
    main()
