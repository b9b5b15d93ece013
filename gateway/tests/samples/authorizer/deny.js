// A REQUEST authorizer that denies every request with an explicit Deny policy on the method ARN
// (HTTP 403 to the client), in the callback style of the Developer Guide's samples.

exports.handler = function (event, context, callback) {
  callback(null, {
    principalId: 'me',
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: event.methodArn }],
    },
  });
};
