"""Recomputes the SigV4 signature of requests the gateway sent to a Lambda endpoint, with
botocore (an implementation independent of the gateway's signer).

Reads one JSON object per line on stdin: {"method", "host", "path", "query", "headers": [[name,
value], ...], "body_b64"}, as the test's HTTP server received them (path and query raw, as on the
wire). Writes one JSON object per line: {"ok": bool, "detail": str, "signed_headers": [...]}.
"""

import argparse
import base64
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def verify(request, credentials, region):
    headers = {name.lower(): value for name, value in request["headers"]}
    authorization = headers.get("authorization", "")
    prefix = "AWS4-HMAC-SHA256 "
    if not authorization.startswith(prefix):
        return {"ok": False, "detail": "no SigV4 authorization header"}
    parts = dict(
        item.strip().split("=", 1) for item in authorization[len(prefix):].split(",")
    )
    signed = parts["SignedHeaders"].split(";")
    amz_date = headers.get("x-amz-date", "")
    scope = f"{credentials.access_key}/{amz_date[:8]}/{region}/lambda/aws4_request"
    if parts["Credential"] != scope:
        return {"ok": False, "detail": f"credential scope {parts['Credential']} != {scope}"}
    for required in ("host", "x-amz-date"):
        if required not in signed:
            return {"ok": False, "detail": f"{required} is not signed"}
    if credentials.token and (
        "x-amz-security-token" not in signed
        or headers.get("x-amz-security-token") != credentials.token
    ):
        return {"ok": False, "detail": "the session token is missing or not signed"}
    url = f"http://{request['host']}{request['path']}"
    if request.get("query"):
        url += "?" + request["query"]
    body = base64.b64decode(request["body_b64"])
    # Only the headers the request says it signed take part, as on the AWS side.
    aws_request = AWSRequest(
        method=request["method"],
        url=url,
        data=body,
        headers={name: headers[name] for name in signed if name in headers},
    )
    aws_request.context["timestamp"] = amz_date
    auth = SigV4Auth(credentials, "lambda", region)
    canonical = auth.canonical_request(aws_request)
    string_to_sign = auth.string_to_sign(aws_request, canonical)
    expected = auth.signature(string_to_sign, aws_request)
    if expected != parts["Signature"]:
        return {
            "ok": False,
            "detail": f"signature mismatch; botocore's canonical request:\n{canonical}",
        }
    return {"ok": True, "detail": "", "signed_headers": signed}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--secret-access-key", required=True)
    parser.add_argument("--session-token")
    parser.add_argument("--region", required=True)
    args = parser.parse_args()
    credentials = Credentials(args.access_key_id, args.secret_access_key, args.session_token)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            result = verify(json.loads(line), credentials, args.region)
        except Exception as error:  # report, never hang the test
            result = {"ok": False, "detail": f"verifier error: {error!r}"}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
