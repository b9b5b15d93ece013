// A REQUEST authorizer for $connect, written for wsgate's tests in the shape of the API Gateway
// Developer Guide's WebSocket authorizer sample (Node.js, callback style): it allows a request
// whose HeaderAuth1 header, QueryString1 query parameter and StageVar1 stage variable hold the
// expected values, and otherwise fails with the error "Unauthorized" (HTTP 401 to the client).

exports.handler = function (event, context, callback) {
  console.log('Received event:', JSON.stringify(event, null, 2));

  // The request parameters of the authorizer's input.
  var headers = event.headers;
  var queryStringParameters = event.queryStringParameters;
  var stageVariables = event.stageVariables;
  var requestContext = event.requestContext;

  // The parts of the method ARN: arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{route}.
  var arnParts = event.methodArn.split(':');
  var apiGatewayArnParts = arnParts[5].split('/');
  var awsAccountId = arnParts[4];
  var region = arnParts[3];
  var apiId = apiGatewayArnParts[0];
  var stage = apiGatewayArnParts[1];
  var route = apiGatewayArnParts[2];
  console.log('Authorizing', route, 'of', apiId, stage, 'in', region, awsAccountId, requestContext.connectionId);

  if (headers.HeaderAuth1 === 'headerValue1'
      && queryStringParameters.QueryString1 === 'queryValue1'
      && stageVariables.StageVar1 === 'stageValue1') {
    callback(null, generateAllow('me', event.methodArn));
  } else {
    callback('Unauthorized');
  }
};

// An IAM policy for execute-api:Invoke on `resource`, with a context of a string, a number and a
// boolean (which API Gateway passes on as strings).
var generatePolicy = function (principalId, effect, resource) {
  var authResponse = {};
  authResponse.principalId = principalId;
  if (effect && resource) {
    var policyDocument = {};
    policyDocument.Version = '2012-10-17';
    policyDocument.Statement = [];
    var statementOne = {};
    statementOne.Action = 'execute-api:Invoke';
    statementOne.Effect = effect;
    statementOne.Resource = resource;
    policyDocument.Statement[0] = statementOne;
    authResponse.policyDocument = policyDocument;
  }
  authResponse.context = {
    stringKey: 'stringval',
    numberKey: 123,
    booleanKey: true,
  };
  return authResponse;
};

var generateAllow = function (principalId, resource) {
  return generatePolicy(principalId, 'Allow', resource);
};

var generateDeny = function (principalId, resource) {
  return generatePolicy(principalId, 'Deny', resource);
};
