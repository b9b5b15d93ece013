"""The unmodified boto3 apigatewayv2 client against wsgate's management API.

build ENDPOINT BACKEND_URL
    finds the gateway's API, adds an HTTP_PROXY integration to BACKEND_URL and a two-way route
    `hello` targeting it, deploys to stage `prod`, and tries the refusals; prints what it saw.
rollback ENDPOINT API_ID STAGE DEPLOYMENT_ID
    points STAGE at DEPLOYMENT_ID (UpdateStage) and prints the stage.
probe ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY
    signs with that key: lists the APIs and creates a MOCK integration; prints "ok" or the
    error code of each.

The last output line is JSON.
"""

import json
import sys

import boto3
from botocore.config import Config


def client(endpoint, key="AKIDEXAMPLE", secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"):
    return boto3.client(
        "apigatewayv2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def error_of(call):
    """The error code and HTTP status a call raised, or None."""
    try:
        call()
    except client("http://unused").exceptions.ClientError as error:
        return {
            "code": error.response["Error"]["Code"],
            "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
            "message": error.response["Error"].get("Message", ""),
        }
    return None


def build(endpoint, backend):
    api = client(endpoint)
    apis = api.get_apis()["Items"]
    api_id = apis[0]["ApiId"]
    before = {s["StageName"]: s.get("DeploymentId") for s in api.get_stages(ApiId=api_id)["Items"]}
    integration = api.create_integration(
        ApiId=api_id,
        IntegrationType="HTTP_PROXY",
        IntegrationUri=backend,
        IntegrationMethod="POST",
        TimeoutInMillis=5000,
    )
    route = api.create_route(
        ApiId=api_id,
        RouteKey="hello",
        Target="integrations/" + integration["IntegrationId"],
    )
    api.create_route_response(
        ApiId=api_id, RouteId=route["RouteId"], RouteResponseKey="$default"
    )
    updated = api.update_route(
        ApiId=api_id, RouteId=route["RouteId"], RouteResponseSelectionExpression="$default"
    )
    fetched = api.get_route(ApiId=api_id, RouteId=route["RouteId"])
    keys = sorted(r["RouteKey"] for r in api.get_routes(ApiId=api_id)["Items"])
    deployment = api.create_deployment(
        ApiId=api_id, StageName="prod", Description="adds hello"
    )
    stage = api.get_stage(ApiId=api_id, StageName="prod")
    listed = [d["DeploymentId"] for d in api.get_deployments(ApiId=api_id)["Items"]]
    errors = {
        "create_api": error_of(
            lambda: api.create_api(Name="second", ProtocolType="WEBSOCKET",
                                   RouteSelectionExpression="$request.body.action")
        ),
        "duplicate_route": error_of(
            lambda: api.create_route(ApiId=api_id, RouteKey="hello",
                                     Target="integrations/" + integration["IntegrationId"])
        ),
        "unknown_route": error_of(lambda: api.get_route(ApiId=api_id, RouteId="nope123")),
        "unknown_api": error_of(lambda: api.get_routes(ApiId="nope123")),
        "bad_integration": error_of(
            lambda: api.create_integration(ApiId=api_id, IntegrationType="VPC_LINK")
        ),
        "integration_in_use": error_of(
            lambda: api.delete_integration(ApiId=api_id,
                                           IntegrationId=integration["IntegrationId"])
        ),
        "unknown_stage": error_of(
            lambda: api.create_deployment(ApiId=api_id, StageName="nope")
        ),
    }
    print(json.dumps({
        "apiId": api_id,
        "name": apis[0]["Name"],
        "protocolType": apis[0]["ProtocolType"],
        "apiCount": len(apis),
        "before": before,
        "routeKey": fetched["RouteKey"],
        "target": fetched["Target"],
        "selection": updated.get("RouteResponseSelectionExpression"),
        "routeKeys": keys,
        "deploymentId": deployment["DeploymentId"],
        "deploymentStatus": deployment["DeploymentStatus"],
        "stageDeployment": stage.get("DeploymentId"),
        "listed": listed,
        "errors": errors,
    }))


def rollback(endpoint, api_id, stage, deployment):
    updated = client(endpoint).update_stage(
        ApiId=api_id, StageName=stage, DeploymentId=deployment
    )
    print(json.dumps({"stageName": updated["StageName"],
                      "deploymentId": updated.get("DeploymentId")}))


def probe(endpoint, key, secret):
    api = client(endpoint, key, secret)

    def outcome(call):
        error = error_of(call)
        return "ok" if error is None else error["code"]

    listed = {}

    def get():
        listed["apis"] = api.get_apis()["Items"]

    got = outcome(get)
    api_id = listed["apis"][0]["ApiId"] if listed.get("apis") else "chat"
    created = outcome(lambda: api.create_integration(ApiId=api_id, IntegrationType="MOCK"))
    print(json.dumps({"get": got, "create": created}))


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "probe":
        probe(*sys.argv[2:5])
    else:
        rollback(*sys.argv[2:6])
