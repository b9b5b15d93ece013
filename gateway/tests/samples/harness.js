// A small Lambda runtime for the tests: serves the Lambda Invoke API as the Runtime Interface
// Emulator does (`POST /2015-03-31/functions/{name}/invocations`), runs the named handler module
// with (event, context, callback) like the Node.js runtime (async, promise-returning and
// callback-style handlers), and answers its result as JSON, or a function error as Lambda does:
// 200 with `X-Amz-Function-Error: Unhandled` and `{"errorType", "errorMessage", "trace"}`.
//
// Usage: node harness.js [PORT]   (or PORT in the environment; 0 or none picks a free port).
// Prints `ready http://127.0.0.1:{port}` on standard output once it accepts requests.

'use strict';

const http = require('http');
const crypto = require('crypto');
const path = require('path');

const FUNCTIONS = {
  onconnect: 'chat/onconnect.js',
  ondisconnect: 'chat/ondisconnect.js',
  sendmessage: 'chat/sendmessage.js',
  authorizer: 'authorizer/index.js',
  deny: 'authorizer/deny.js',
};

const INVOKE = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;
const TIMEOUT_MS = 30000;

// The error body of the Node.js runtime: an Error's name, message and stack; for anything else
// (`callback("Unauthorized")`) its type and text.
function errorBody(error) {
  if (error instanceof Error) {
    return {
      errorType: error.name,
      errorMessage: error.message,
      trace: String(error.stack || '').split('\n'),
    };
  }
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

function context(name, requestId) {
  const deadline = Date.now() + TIMEOUT_MS;
  return {
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION || 'us-east-1'}:000000000000:function:${name}`,
    memoryLimitInMB: '128',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: requestId,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

// Runs `handler` to its outcome: `{ result }` or `{ error }`.
function invoke(handler, event, ctx) {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome) => {
      if (!settled) {
        settled = true;
        resolve(outcome);
      }
    };
    const callback = (error, result) => {
      if (error !== undefined && error !== null) {
        settle({ error });
      } else {
        settle({ result });
      }
    };
    ctx.done = callback;
    ctx.succeed = (result) => callback(null, result);
    ctx.fail = (error) => callback(error);
    let returned;
    try {
      returned = handler(event, ctx, callback);
    } catch (error) {
      settle({ error });
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then((result) => settle({ result }), (error) => settle({ error }));
    }
  });
}

function answer(response, status, headers, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

async function serve(request, response) {
  const requestId = crypto.randomUUID();
  const ids = { 'x-amzn-RequestId': requestId };
  const match = INVOKE.exec(request.url.split('?')[0]);
  if (request.method !== 'POST' || !match) {
    answer(response, 404, { ...ids, 'x-amzn-ErrorType': 'UnknownOperationException' }, {
      Type: 'User',
      message: `No operation at ${request.method} ${request.url}`,
    });
    return;
  }
  const name = decodeURIComponent(match[1]);
  const file = FUNCTIONS[name];
  if (!file) {
    answer(response, 404, { ...ids, 'x-amzn-ErrorType': 'ResourceNotFoundException' }, {
      Type: 'User',
      message: `Function not found: ${name}`,
    });
    return;
  }
  const chunks = [];
  for await (const chunk of request) {
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let event;
  try {
    event = text.length === 0 ? {} : JSON.parse(text);
  } catch (error) {
    answer(response, 400, { ...ids, 'x-amzn-ErrorType': 'InvalidRequestContentException' }, {
      Type: 'User',
      message: `Could not parse request body into json: ${error.message}`,
    });
    return;
  }
  const { handler } = require(path.join(__dirname, file));
  const outcome = await invoke(handler, event, context(name, requestId));
  const headers = { ...ids, 'X-Amz-Executed-Version': '$LATEST' };
  // One line per finished invocation, for tests to wait on.
  if ('error' in outcome) {
    const body = errorBody(outcome.error);
    console.log(`done ${name} ${requestId} error ${JSON.stringify(body.errorMessage)}`);
    answer(response, 200, { ...headers, 'X-Amz-Function-Error': 'Unhandled' }, body);
    return;
  }
  const result = JSON.stringify(outcome.result === undefined ? null : outcome.result);
  console.log(`done ${name} ${requestId} ok ${result.slice(0, 200)}`);
  answer(response, 200, headers, result);
}

const server = http.createServer((request, response) => {
  serve(request, response).catch((error) => {
    console.error('harness failure', error);
    if (!response.headersSent) {
      answer(response, 500, {}, { message: 'harness failure' });
    } else {
      response.destroy();
    }
  });
});

server.keepAliveTimeout = 120000;

const port = Number(process.argv[2] || process.env.PORT || 0);
server.listen(port, '127.0.0.1', () => {
  console.log(`ready http://127.0.0.1:${server.address().port}`);
});
