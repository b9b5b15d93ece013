//! Tests of the CloudFormation importer on a template using every `AWS::ApiGatewayV2::*`
//! resource it understands, and on what it reports instead of dropping.

use serde_json::json;

use super::{CfnOptions, import_cloudformation};
use crate::config::Config;

const TEMPLATE: &str = r#"
Parameters:
  Backend: {Type: String, Default: "http://10.0.0.5:3000"}
  Env: {Type: String}
Mappings:
  Limits: {prod: {Timeout: 5000}}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: orders
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.action
      ApiKeySelectionExpression: $request.header.x-api-key
      DisableSchemaValidation: true
  HttpApi:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: other, ProtocolType: HTTP}
  Auth:
    Type: AWS::ApiGatewayV2::Authorizer
    Properties:
      ApiId: !Ref Api
      Name: ticket
      AuthorizerType: REQUEST
      AuthorizerUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AuthFn.Arn}/invocations
      IdentitySource: [route.request.querystring.ticket]
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: $connect
      AuthorizationType: CUSTOM
      AuthorizerId: !Ref Auth
      Target: !Sub integrations/${ConnectInteg}
  ConnectInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: MOCK
      RequestTemplates: {$default: '{"statusCode": 200}'}
      TemplateSelectionExpression: \$default
  PlaceRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: place
      ModelSelectionExpression: $request.body.kind
      RequestModels: {$default: Order}
      RouteResponseSelectionExpression: $default
      RequestParameters: {route.request.header.x: {Required: true}}
      Target: !Join [/, [integrations, !Ref PlaceInteg]]
  PlaceResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {ApiId: !Ref Api, RouteId: !Ref PlaceRoute, RouteResponseKey: $default}
  PlaceInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: HTTP
      IntegrationMethod: PUT
      IntegrationUri: !Sub "${Backend}/orders"
      TimeoutInMillis: !FindInMap [Limits, prod, Timeout]
      PassthroughBehavior: NEVER
      RequestTemplates: {$default: '{"id": "$context.connectionId"}'}
      RequestParameters: {integration.request.header.x-connection: context.connectionId}
      ConnectionType: VPC_LINK
  PlaceIntegResponse:
    Type: AWS::ApiGatewayV2::IntegrationResponse
    Properties:
      ApiId: !Ref Api
      IntegrationId: !Ref PlaceInteg
      IntegrationResponseKey: /4\d\d/
      ResponseTemplates: {$default: '{"error": true}'}
  ProxyRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: integrations/ProxyInteg}
  ProxyInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: HTTP_PROXY
      IntegrationMethod: POST
      IntegrationUri: !If [IsProd, "http://a", "http://b"]
  QueueRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: enqueue, Target: integrations/QueueInteg}
  QueueInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS
      IntegrationUri: arn:aws:apigateway:eu-west-1:sqs:action/SendMessage
      CredentialsArn: arn:aws:iam::123456789012:role/x
      RequestTemplates: {$default: 'Action=SendMessage&QueueUrl=$util.urlEncode($stageVariables.queue)&MessageBody=$util.urlEncode($input.body)'}
  Order:
    Type: AWS::ApiGatewayV2::Model
    Properties:
      ApiId: !Ref Api
      Name: Order
      ContentType: application/json
      Schema: '{"type": "object", "required": ["symbol"]}'
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref Api
      StageName: prod
      StageVariables: {backend: !Ref Backend, queue: "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}
      DefaultRouteSettings: {ThrottlingRateLimit: 10}
  Domain:
    Type: AWS::ApiGatewayV2::DomainName
    Properties:
      DomainName: ws.example.com
      DomainNameConfigurations: [{CertificateArn: arn:aws:acm:x}]
  Mapping:
    Type: AWS::ApiGatewayV2::ApiMapping
    Properties: {ApiId: !Ref Api, DomainName: !Ref Domain, Stage: !Ref Stage, ApiMappingKey: v1}
  AuthFn:
    Type: AWS::Lambda::Function
    Properties: {FunctionName: authorize, Runtime: nodejs20.x}
  Imported:
    Type: AWS::SNS::Topic
    Condition: IsProd
"#;

fn options() -> CfnOptions {
    CfnOptions {
        region: "eu-west-1".into(),
        account_id: "123456789012".into(),
        ..CfnOptions::default()
    }
}

#[test]
fn every_resource_kind_is_imported() {
    let imported = import_cloudformation("t.yaml", TEMPLATE, &options()).expect("imports");
    let api = &imported.config["api"];
    assert_eq!(api["name"], "orders");
    assert_eq!(
        api["authorizers"]["ticket"]["uri"],
        "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:authorize/invocations"
    );
    let routes = &api["routes"];
    assert_eq!(routes["$connect"]["authorizer"], "ticket");
    assert_eq!(routes["$connect"]["authorization_type"], "CUSTOM");
    assert_eq!(routes["$connect"]["integration"]["type"], "mock");
    let place = &routes["place"];
    assert_eq!(place["route_response"], true);
    assert_eq!(place["request_models"], json!({"$default": "Order"}));
    assert_eq!(place["model_selection_expression"], "$request.body.kind");
    let integration = &place["integration"];
    assert_eq!(integration["type"], "http");
    assert_eq!(integration["method"], "PUT");
    assert_eq!(integration["uri"], "http://10.0.0.5:3000/orders");
    assert_eq!(integration["timeout"], "5000ms");
    assert_eq!(integration["passthrough_behavior"], "NEVER");
    assert_eq!(
        integration["integration_responses"]["/4\\d\\d/"]["response_templates"]["$default"],
        "{\"error\": true}"
    );
    assert_eq!(
        routes["enqueue"]["integration"],
        json!({"type": "aws", "service": "sqs", "action": "SendMessage", "region": "eu-west-1",
            "request_templates": {"$default": "Action=SendMessage&QueueUrl=$util.urlEncode($stageVariables.queue)&MessageBody=$util.urlEncode($input.body)"}})
    );
    assert_eq!(
        api["models"]["Order"]["schema"]["required"],
        json!(["symbol"])
    );
    assert_eq!(
        api["stages"]["prod"]["variables"]["backend"],
        "http://10.0.0.5:3000"
    );
    assert_eq!(
        imported.config["domains"],
        json!([{"name": "ws.example.com", "mappings": [{"path": "v1", "stage": "prod"}]}])
    );
    // `Fn::If` cannot be evaluated: the route whose integration needs it is left out, said so.
    assert!(routes.get("$default").is_none());
    let text = crate::spec::to_yaml(&imported.config, &[]).expect("YAML");
    Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[test]
fn what_cannot_be_expressed_is_reported_with_its_line() {
    let imported = import_cloudformation("t.yaml", TEMPLATE, &options()).expect("imports");
    let report: Vec<String> = imported.notes.iter().map(|n| n.render("t.yaml")).collect();
    let expected = [
        "t.yaml:7: Conditions: section not evaluated by the importer (ignored)",
        "t.yaml:17: Resources.Api.Properties.DisableSchemaValidation: no equivalent in wsgate (ignored)",
        "t.yaml:19: Resources.HttpApi: another API (not imported; choose it with --api)",
        "t.yaml:52: Resources.PlaceRoute.Properties.RequestParameters: no equivalent in wsgate (ignored)",
        "t.yaml:68: Resources.PlaceInteg.Properties.ConnectionType: VPC_LINK: wsgate reaches backends directly (ignored)",
        "t.yaml:78: Resources.ProxyRoute.Properties.Target: integrations/ProxyInteg names no imported integration (route $default not imported)",
        "t.yaml:85: Resources.ProxyInteg.Properties.IntegrationUri: Fn::If is not supported by the importer",
        "t.yaml:95: Resources.QueueInteg.Properties.CredentialsArn: wsgate signs with the credentials of its aws: section",
        "t.yaml:110: Resources.Stage.Properties.DefaultRouteSettings: no equivalent in wsgate's stage",
        "t.yaml:115: Resources.Domain.Properties.DomainNameConfigurations: certificates are PEM files in wsgate",
        "t.yaml:120: Resources.AuthFn: invoked by ARN arn:aws:lambda:eu-west-1:123456789012:function:authorize",
        "t.yaml:123: Resources.Imported: AWS::SNS::Topic is not part of a WebSocket API (not imported)",
        "t.yaml:124: Resources.Imported.Condition: conditions are not evaluated",
    ];
    for line in expected {
        assert!(
            report.iter().any(|r| r.starts_with(line)),
            "missing `{line}` in:\n{}",
            report.join("\n")
        );
    }
    assert!(
        report
            .iter()
            .any(|r| r.contains("route $default not imported")),
        "{report:?}"
    );
    // Sorted by line.
    let lines: Vec<usize> = imported.notes.iter().filter_map(|n| n.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn parameters_without_defaults_must_be_given() {
    let template = "Parameters:\n  Url: {Type: String}\nResources:\n  Api: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: a, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.a}}\n  R: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: $default, Target: integrations/I}}\n  I: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: HTTP_PROXY, IntegrationUri: !Ref Url}}\n";
    let error = import_cloudformation("t.yaml", template, &options()).expect_err("no route");
    assert!(error.to_string().contains("no route"), "{error}");
    let mut given = options();
    given
        .parameters
        .insert("Url".into(), "http://127.0.0.1:1/x".into());
    let imported = import_cloudformation("t.yaml", template, &given).expect("imports");
    assert_eq!(
        imported.config["api"]["routes"]["$default"]["integration"]["uri"],
        "http://127.0.0.1:1/x"
    );
    let mut unknown = options();
    unknown.parameters.insert("Nope".into(), "x".into());
    let error = import_cloudformation("t.yaml", template, &unknown).expect_err("unknown");
    assert!(error.to_string().contains("--parameter Nope"), "{error}");
}

#[test]
fn required_api_keys_and_iam_get_credentials_the_gateway_cannot_start_without() {
    let template = "Resources:\n  Api: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: a, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.a}}\n  R: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: $connect, ApiKeyRequired: true, AuthorizationType: AWS_IAM, Target: integrations/I}}\n  I: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: MOCK}}\n";
    let imported = import_cloudformation("t.yaml", template, &options()).expect("imports");
    assert_eq!(
        imported.config["api"]["routes"]["$connect"]["api_key_required"],
        true
    );
    assert_eq!(
        imported.config["api_keys"],
        json!([{"id": "imported", "value_env": crate::spec::IMPORTED_KEY_ENV, "usage_plan": "imported"}])
    );
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.message.contains(crate::spec::IMPORTED_KEY_ENV)),
        "{:?}",
        imported.notes
    );
    let text = crate::spec::to_yaml(&imported.config, &[]).expect("YAML");
    let config = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(config.api_keys.len(), 1);
    assert_eq!(
        config.iam.principals[0].secret_access_key_env.as_deref(),
        Some(crate::spec::IMPORTED_SECRET_ENV)
    );
}
