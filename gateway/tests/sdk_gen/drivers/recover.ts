// Drives the generated TypeScript client's recovery (gateway/tests/it/sdk_gen.rs): the backend's
// $connect joins a client that opted in (`envelope` or `recover` in the query) to the group
// `feed`, which keeps history. The client receives two group posts, the backend closes it
// (DELETE @connections), three posts go out while it is away, and on reconnect it asks for what
// it missed: the three come first, once, then the `recovered` signal, then live posts. A second
// client starting from a position of another epoch gets `notRecovered` (epoch_changed).
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { WebSocket } from "ws";

import { NotesBackend } from "./backend/src/index.js";
import {
  NotesClient,
  type GroupMessage,
  type JsonValue,
  type NotRecoveredSignal,
  type RecoveredSignal,
} from "./client/src/index.js";

const [wsBase, httpBase, bearer, apiKey] = process.argv.slice(2);
if (wsBase === undefined || httpBase === undefined || bearer === undefined || apiKey === undefined) {
  throw new Error("usage: recover WS_BASE HTTP_BASE BEARER API_KEY");
}

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

const events: string[] = [];
const messages: GroupMessage<JsonValue>[] = [];
const recovered: RecoveredSignal[] = [];
const notRecovered: NotRecoveredSignal[] = [];
let opens = 0;
let closes = 0;

const options = {
  stage: "prod" as const,
  apiKey,
  token: "good-token",
  webSocket: (url: string, protocols: string[], headers: Record<string, string>) =>
    new WebSocket(url, protocols, { headers }),
  // Long enough for the posts made while the client is away to happen before it is back.
  reconnect: { baseMs: 1500, maxMs: 1500 },
  requestTimeoutMs: 5000,
};
const client = new NotesClient(wsBase, { ...options, recover: true });
client.on({
  onGroupMessage: (message) => {
    messages.push(message);
    events.push(`message ${message.offset}`);
    wake();
  },
  onRecovered: (signal) => {
    recovered.push(signal);
    events.push(`recovered ${signal.offset}`);
    wake();
  },
  onNotRecovered: (signal) => {
    notRecovered.push(signal);
    wake();
  },
  onOpen: () => {
    opens += 1;
    wake();
  },
  onClose: () => {
    closes += 1;
    wake();
  },
});

const backend = new NotesBackend(httpBase, "prod", { kind: "bearer", token: bearer });
await client.connect();
const first = (await client.whoami()) as { connectionId: string };
await backend.postToGroup("feed", { n: 1 });
await backend.postToGroup("feed", { n: 2 });
await until(() => messages.length === 2, "the first two messages");

await backend.delete(first.connectionId);
await until(() => closes === 1, "the close");
for (const n of [3, 4, 5]) await backend.postToGroup("feed", { n });
assert(opens === 1, "the posts went out while the client was away");
await until(() => opens === 2 && recovered.length === 1, "the reconnection and its recovery");
const last = await backend.postToGroup("feed", { n: 6 });
await until(() => messages.length === 6, "the live message after the recovery");
const positions = client.positions;
client.close();

// Another client that starts from a position of an epoch that does not exist.
const stale = new NotesClient(wsBase, {
  ...options,
  recover: { from: [{ group: "feed", epoch: "stale", offset: 1 }] },
});
const staleSignals: NotRecoveredSignal[] = [];
stale.on({
  onNotRecovered: (signal) => {
    staleSignals.push(signal);
    wake();
  },
});
await stale.connect();
await until(() => staleSignals.length === 1, "notRecovered");
const stalePositions = stale.positions;
stale.close();

console.log(
  JSON.stringify({
    data: messages.map((m) => m.data),
    offsets: messages.map((m) => m.offset),
    epochs: [...new Set(messages.map((m) => m.epoch))],
    events,
    recovered: recovered[0],
    notRecovered: notRecovered.length,
    lastPost: last,
    positions,
    stale: staleSignals[0],
    stalePositions,
  }),
);
