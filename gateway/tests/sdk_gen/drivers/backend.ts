// Drives the generated Node.js backend client of tests/sdk_gen/api.yaml against a live callback
// API (gateway/tests/it/sdk_gen.rs), bearer or SigV4 as the gateway is configured: post, get,
// groups, a group post, a broadcast, listings, a DELETE with a close code, then a post to the
// closed connection. Prints one JSON line with the answers.
import { CallbackError, NotesBackend, type CallbackAuth } from "./backend/src/index.js";

const [httpBase, authJson, connectionId] = process.argv.slice(2);
if (httpBase === undefined || authJson === undefined || connectionId === undefined) {
  throw new Error("usage: driver HTTP_BASE AUTH_JSON CONNECTION_ID");
}
const backend = new NotesBackend(httpBase, "prod", JSON.parse(authJson) as CallbackAuth);

await backend.post(connectionId, "hello from node");
const info = await backend.get(connectionId);
await backend.join(connectionId, "room:1");
const groups = await backend.groupsOf(connectionId);
const groupPost = await backend.postToGroup("room:1", { g: 1 });
const broadcast = await backend.broadcast(new TextEncoder().encode("to all"));
const members = await backend.members("room:1", { maxResults: 10 });
const connections = await backend.connections();
await backend.leave(connectionId, "room:1");
const after = await backend.groupsOf(connectionId);
await backend.delete(connectionId, { code: 4001, reason: "bye" });
let gone: string | null = null;
try {
  await backend.post(connectionId, "late");
} catch (error) {
  if (error instanceof CallbackError && error.gone) gone = error.errorType;
  else throw error;
}
console.log(
  JSON.stringify({
    sourceIp: info.identity.sourceIp,
    groups,
    groupPost,
    broadcast,
    members,
    connectionCount: connections.connectionCount,
    after,
    gone,
  }),
);
