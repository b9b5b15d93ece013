// $disconnect of the chat app: forgets the connection's id. Written for wsgate's tests in the
// shape of the AWS serverless chat sample's handler (Node.js, AWS SDK for JavaScript v3).

const { DynamoDBClient, DeleteItemCommand } = require('@aws-sdk/client-dynamodb');

const ddb = new DynamoDBClient({ region: process.env.AWS_REGION });

exports.handler = async (event) => {
  const deleteParams = {
    TableName: process.env.TABLE_NAME,
    Key: {
      connectionId: { S: event.requestContext.connectionId },
    },
  };

  try {
    await ddb.send(new DeleteItemCommand(deleteParams));
  } catch (err) {
    return { statusCode: 500, body: 'Failed to disconnect: ' + JSON.stringify(err) };
  }

  return { statusCode: 200, body: 'Disconnected.' };
};
