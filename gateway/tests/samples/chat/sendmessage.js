// The chat app's `sendmessage` route: posts `data` of the message to every connection in the
// table through the API Gateway management API at https://{domainName}/{stage}, and deletes the
// connections that are gone (410). Written for wsgate's tests in the shape of the AWS serverless
// chat sample's handler (Node.js, AWS SDK for JavaScript v3).

const { DynamoDBClient, ScanCommand, DeleteItemCommand } = require('@aws-sdk/client-dynamodb');
const {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} = require('@aws-sdk/client-apigatewaymanagementapi');

const ddb = new DynamoDBClient({ region: process.env.AWS_REGION });

const { TABLE_NAME } = process.env;

exports.handler = async (event) => {
  let connectionData;

  try {
    connectionData = await ddb.send(
      new ScanCommand({ TableName: TABLE_NAME, ProjectionExpression: 'connectionId' }),
    );
  } catch (e) {
    return { statusCode: 500, body: e.stack };
  }

  const apigwManagementApi = new ApiGatewayManagementApiClient({
    endpoint: 'https://' + event.requestContext.domainName + '/' + event.requestContext.stage,
  });

  const postData = JSON.parse(event.body).data;

  const postCalls = connectionData.Items.map(async ({ connectionId }) => {
    try {
      await apigwManagementApi.send(
        new PostToConnectionCommand({ ConnectionId: connectionId.S, Data: postData }),
      );
    } catch (e) {
      if (e.$metadata && e.$metadata.httpStatusCode === 410) {
        console.log(`Found stale connection, deleting ${connectionId.S}`);
        await ddb.send(new DeleteItemCommand({ TableName: TABLE_NAME, Key: { connectionId } }));
      } else {
        throw e;
      }
    }
  });

  try {
    await Promise.all(postCalls);
  } catch (e) {
    return { statusCode: 500, body: e.stack };
  }

  return { statusCode: 200, body: 'Data sent.' };
};
