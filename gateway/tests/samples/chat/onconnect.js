// $connect of the chat app: remembers the new connection's id in the table named by TABLE_NAME.
// Written for wsgate's tests in the shape of the AWS serverless chat sample's handler (Node.js,
// AWS SDK for JavaScript v3); it runs as a Lambda function would, knowing nothing of wsgate.

const { DynamoDBClient, PutItemCommand } = require('@aws-sdk/client-dynamodb');

const ddb = new DynamoDBClient({ region: process.env.AWS_REGION });

exports.handler = async (event) => {
  const putParams = {
    TableName: process.env.TABLE_NAME,
    Item: {
      connectionId: { S: event.requestContext.connectionId },
    },
  };

  try {
    await ddb.send(new PutItemCommand(putParams));
  } catch (err) {
    return { statusCode: 500, body: 'Failed to connect: ' + JSON.stringify(err) };
  }

  return { statusCode: 200, body: 'Connected.' };
};
