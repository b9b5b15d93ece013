// Drives the generated TypeScript client of tests/sdk_gen/api.yaml against a live gateway
// (gateway/tests/it/sdk_gen.rs): connect with an API key and a subprotocol token, a typed
// one-way send, typed two-way replies, a push through the generated backend client (bearer),
// a reconnection after the backend closes the connection with DELETE @connections, and an
// acknowledged route (resolved on the ack; sent while the connection is down, it goes out on the
// next one; a nack that is not retryable rejects with AckError).
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { WebSocket } from "ws";

import { NotesBackend } from "./backend/src/index.js";
import { AckError, CloseError, NotesClient, type JsonValue, type Note } from "./client/src/index.js";

const [wsBase, httpBase, bearer, apiKey] = process.argv.slice(2);
if (wsBase === undefined || httpBase === undefined || bearer === undefined || apiKey === undefined) {
  throw new Error("usage: driver WS_BASE HTTP_BASE BEARER API_KEY");
}

const pushes: JsonValue[] = [];
const closes: CloseError[] = [];
let opens = 0;
let wake: () => void = () => undefined;

function until(check: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10000);
    const test = (): void => {
      if (check()) {
        clearTimeout(timer);
        resolve();
      }
    };
    wake = test;
    test();
  });
}

function assert(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

const client = new NotesClient(wsBase, {
  stage: "prod",
  apiKey,
  token: "good-token",
  webSocket: (url, protocols, headers) => new WebSocket(url, protocols, { headers }),
  reconnect: { baseMs: 50, maxMs: 200 },
  requestTimeoutMs: 5000,
});
client.on({
  onPush: (message) => {
    pushes.push(message);
    wake();
  },
  onOpen: () => {
    opens += 1;
    wake();
  },
  onClose: (error, reconnectInMs) => {
    if (reconnectInMs !== null) closes.push(error);
    wake();
  },
});

await client.connect();
client.addnote({ title: "first", tags: ["a", "b"], priority: "high", place: { lat: 1.5, lon: 2 } });
const note: Note = await client.getnote({ id: 7 });
assert(note.id === 7 && note.title === "note 7", `getnote reply ${JSON.stringify(note)}`);
const first = (await client.whoami()) as { connectionId: string };

const backend = new NotesBackend(httpBase, "prod", { kind: "bearer", token: bearer });
await backend.post(first.connectionId, { kind: "push", n: 1 });
await until(() => pushes.length === 1, "the push");

await client.archive({ note: 1 });
await backend.delete(first.connectionId);
await until(() => closes.length === 1, "the close");
// Sent while no connection is open: kept until the next one, then acknowledged.
const whileAway = client.archive({ note: 2 });
const waiting = client.unacknowledged;
await until(() => opens === 2, "the reconnection");
await whileAway;
let refused = "";
try {
  await client.archive({ note: 3, reject: true });
} catch (error) {
  if (error instanceof AckError) refused = error.message;
}
const second = (await client.whoami()) as { connectionId: string };
assert(second.connectionId !== first.connectionId, "a new connection");

client.close();
console.log(
  JSON.stringify({
    note,
    push: pushes[0],
    first: first.connectionId,
    second: second.connectionId,
    close: { code: closes[0]?.code, kind: closes[0]?.kind },
    archive: { waiting, refused, unacknowledged: client.unacknowledged },
  }),
);
