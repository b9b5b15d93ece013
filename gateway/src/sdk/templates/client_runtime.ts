/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * What the client needs of a WebSocket: the browser's `WebSocket` and the `ws` package's both
 * have it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: any) => void): void;
}

/**
 * Opens a socket. `headers` are only honoured by implementations that can send them (`ws` in
 * Node.js); browsers cannot set headers on a WebSocket handshake.
 */
export type WebSocketFactory = (url: string, protocols: string[], headers: Record<string, string>) => WebSocketLike;

/** Why the gateway (or the network) closed the connection, by close code. */
export type CloseKind =
  | "normal"
  | "goingAway"
  | "protocolError"
  | "unsupportedData"
  | "noStatus"
  | "abnormal"
  | "invalidPayload"
  | "policyViolation"
  | "messageTooBig"
  | "internalError"
  | "tryAgainLater"
  | "application"
  | "other";

/**
 * The kind of a close code, as wsgate uses them: 1000 normal close (also `DELETE
 * @connections/{id}`), 1001 idle timeout, maximum duration or shutdown, 1002 protocol violation,
 * 1003 binary frame refused, 1005 no code, 1006 connection lost, 1007 invalid UTF-8, 1008 policy,
 * 1009 frame or message too big, 1011 ping timeout or internal error, 1013 slow consumer,
 * 3000-4999 a code given to `DELETE @connections/{id}?code=`.
 */
export function closeKind(code: number): CloseKind {
  switch (code) {
    case 1000:
      return "normal";
    case 1001:
      return "goingAway";
    case 1002:
      return "protocolError";
    case 1003:
      return "unsupportedData";
    case 1005:
      return "noStatus";
    case 1006:
      return "abnormal";
    case 1007:
      return "invalidPayload";
    case 1008:
      return "policyViolation";
    case 1009:
      return "messageTooBig";
    case 1011:
      return "internalError";
    case 1013:
      return "tryAgainLater";
    default:
      return code >= 3000 && code <= 4999 ? "application" : "other";
  }
}

/** The connection closed: its code, reason and kind. */
export class CloseError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly kind: CloseKind;

  constructor(code: number, reason: string) {
    super(`connection closed with ${code}${reason ? ` (${reason})` : ""}`);
    this.name = "CloseError";
    this.code = code;
    this.reason = reason;
    this.kind = closeKind(code);
  }
}

/** A message was sent while no connection was open. */
export class NotConnectedError extends Error {
  constructor() {
    super("not connected");
    this.name = "NotConnectedError";
  }
}

/** A two-way route's reply did not arrive within the request timeout. */
export class ReplyTimeoutError extends Error {
  readonly routeKey: string;

  constructor(routeKey: string, timeoutMs: number) {
    super(`no reply to ${routeKey} within ${timeoutMs} ms`);
    this.name = "ReplyTimeoutError";
    this.routeKey = routeKey;
  }
}

/** A message of an acknowledged route was refused for good: a nack that is not retryable. */
export class AckError extends Error {
  readonly id: string | number;
  readonly requestId: string;

  constructor(id: string | number, message: string, requestId: string) {
    super(`message ${JSON.stringify(id)} refused: ${message}`);
    this.name = "AckError";
    this.id = id;
    this.requestId = requestId;
  }
}

/** The gateway's error frames: `{"message": "Forbidden", "connectionId": "…", "requestId": "…"}`. */
export interface GatewayErrorFrame {
  message:
    | "Forbidden"
    | "Internal server error"
    | "Endpoint request timed out"
    | "Too Many Requests"
    | "Unsupported Media Type"
    | "Bad request body"
    | (string & {});
  connectionId: string;
  requestId?: string;
  messageId?: string;
}

/** Resending the messages of acknowledged routes (`ack:` in the configuration). */
export interface AckOptions {
  /** First delay before resending after a retryable nack or `pending` (default 500 ms). */
  retryBaseMs?: number;
  /** Largest such delay (default 15 000 ms). */
  retryMaxMs?: number;
  /** Most messages kept until their ack (default 1000); more are refused at once. */
  maxUnacked?: number;
}

/** Reconnection: exponential backoff with equal jitter, from `baseMs` up to `maxMs`. */
export interface ReconnectOptions {
  /** Reconnect after a close the client did not ask for (default true). */
  enabled?: boolean;
  /** First delay (default 500 ms). */
  baseMs?: number;
  /** Largest delay (default 15 000 ms). */
  maxMs?: number;
  /** Attempts after one close before giving up (default: no limit). */
  maxAttempts?: number;
}

/** Where a client stands in a group with history: the last message it received. */
export interface Position {
  group: string;
  /** The history's epoch: offsets only mean something within one epoch. */
  epoch: string;
  /** The offset of the last message received. */
  offset: number;
}

/** A message of a group with history, unwrapped from the gateway's envelope. */
export interface GroupMessage<Push> extends Position {
  /** The payload, parsed as JSON. */
  data: Push;
}

/** The replay after a reconnect is complete: every message missed was delivered, once. */
export interface RecoveredSignal extends Position {
  type: "recovered";
  /** Messages replayed. */
  replayed: number;
}

/** Why the gateway could not replay what a reconnected client missed. */
export type NotRecoveredReason =
  | "epoch_changed"
  | "trimmed"
  | "too_far"
  | "unknown_offset"
  | "overflow"
  | "unavailable"
  | "no_history"
  | (string & {});

/**
 * The history did not cover what the client missed: refetch the state from the backend as of
 * `epoch`/`offset` (the current position, when known); live messages follow.
 */
export interface NotRecoveredSignal {
  type: "notRecovered";
  group: string;
  reason: NotRecoveredReason;
  epoch: string | null;
  offset: number | null;
}

/** Recovery on reconnect of the messages of groups with history (docs/recovery.md). */
export interface RecoverOptions {
  /** Positions to start from, e.g. kept from {@link Connection.positions} by an earlier page. */
  from?: Position[];
}

/** Handlers of what happens on the connection. */
export interface ClientHandlers<Push> {
  /** A message pushed by a backend (`POST @connections`, a group post, a broadcast). */
  onPush?: (message: Push) => void;
  /**
   * With `recover`: a message of a group with history, with its position (without this handler
   * its data goes to `onPush`).
   */
  onGroupMessage?: (message: GroupMessage<Push>) => void;
  /** With `recover`: the messages missed while disconnected were replayed. */
  onRecovered?: (signal: RecoveredSignal) => void;
  /** With `recover`: what was missed could not be replayed; refetch the state. */
  onNotRecovered?: (signal: NotRecoveredSignal) => void;
  /** A text frame that is not JSON, or a binary frame (also such payloads of group messages). */
  onRaw?: (data: unknown) => void;
  /** An error frame of the gateway. */
  onGatewayError?: (frame: GatewayErrorFrame) => void;
  /** A connection opened (the first one and every reconnection). */
  onOpen?: () => void;
  /** A connection closed; `reconnectInMs` is the delay before the next attempt, or null. */
  onClose?: (error: CloseError, reconnectInMs: number | null) => void;
}

interface Pending {
  resolve: (value: JsonValue) => void;
  reject: (error: Error) => void;
  timer: unknown;
}

interface Unacked {
  id: string | number;
  text: string;
  resolve: () => void;
  reject: (error: Error) => void;
  attempt: number;
  timer: unknown;
}

/** An acknowledged route's answer to one message. */
interface AckFrame {
  kind: "ack" | "pending" | "nack";
  id: string | number;
  retryable: boolean;
  message: string;
  requestId: string;
}

/** `{"ack":ID}`, `{"pending":ID}` or `{"nack":ID,"retryable":B,"message":"…","requestId":"…"}`. */
function ackFrame(value: { [key: string]: unknown }): AckFrame | null {
  const keys = Object.keys(value).sort().join(",");
  const id = value.ack ?? value.pending ?? value.nack;
  if (typeof id !== "string" && typeof id !== "number") {
    return null;
  }
  if (keys === "ack" || keys === "pending") {
    return { kind: keys, id, retryable: true, message: "", requestId: "" };
  }
  if (keys === "message,nack,requestId,retryable" && typeof value.retryable === "boolean") {
    return {
      kind: "nack",
      id,
      retryable: value.retryable,
      message: String(value.message),
      requestId: String(value.requestId),
    };
  }
  return null;
}

interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const timers = globalThis as unknown as Timers;

/** Exponential backoff with equal jitter: half the capped delay plus a random half. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  const capped = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(capped / 2 + Math.random() * (capped / 2));
}

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isGatewayError(value: unknown): value is GatewayErrorFrame {
  if (!isObject(value) || typeof value.message !== "string" || typeof value.connectionId !== "string") {
    return false;
  }
  return Object.keys(value).every((key) => ["message", "connectionId", "requestId", "messageId"].includes(key));
}

/** What a generated client tells the runtime about its API. */
export interface ApiDescription {
  /** The body field the route selection expression reads (`action` for `$request.body.action`). */
  routeField: string;
  /** The body field that carries the correlation id of a two-way request. */
  correlationField: string;
}

/** Where credentials go on the upgrade request. */
export interface Placement {
  headers: Record<string, string>;
  query: Record<string, string>;
  protocols: string[];
}

/** The options every generated client takes. */
export interface BaseOptions {
  /** Opens sockets (default: the global `WebSocket`). */
  webSocket?: WebSocketFactory;
  /** Extra headers on the upgrade request (Node.js `ws` only). */
  headers?: Record<string, string>;
  /** Extra query parameters on the upgrade request. */
  query?: Record<string, string>;
  /** Extra subprotocols offered. */
  protocols?: string[];
  /** Reconnection after an unexpected close. */
  reconnect?: ReconnectOptions;
  /** How long a two-way route's reply may take (default 30 000 ms). */
  requestTimeoutMs?: number;
  /** Resending the messages of acknowledged routes. */
  acks?: AckOptions;
  /**
   * Recovery on reconnect: connect with `envelope=1`, keep the last position of every group
   * with history, and on reconnect ask for what was missed (`recover=`). Off by default.
   */
  recover?: boolean | RecoverOptions;
}

/**
 * One logical connection to a wsgate stage: opens the socket, reconnects with backoff, sends
 * route messages, matches two-way replies to their requests by the correlation field.
 */
export class Connection<Push> {
  private socket: WebSocketLike | null = null;
  private wanted = false;
  private attempt = 0;
  private reconnectTimer: unknown = null;
  private readonly pending = new Map<string, Pending>();
  private readonly unacked = new Map<string, Unacked>();
  private readonly prefix = Math.random().toString(36).slice(2, 10);
  private counter = 0;
  private handlers: ClientHandlers<Push> = {};
  private readonly openWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private readonly recovering: boolean;
  private readonly positionOf = new Map<string, Position>();

  constructor(
    private readonly url: string,
    private readonly api: ApiDescription,
    private readonly placement: Placement,
    private readonly options: BaseOptions,
  ) {
    const recover = options.recover ?? false;
    this.recovering = recover !== false;
    if (typeof recover === "object") {
      for (const position of recover.from ?? []) {
        this.positionOf.set(position.group, { ...position });
      }
    }
  }

  /**
   * With `recover`: the last position of every group with history seen so far (keep them to
   * start a later client from them with `recover: { from }`).
   */
  get positions(): Position[] {
    return [...this.positionOf.values()].map((position) => ({ ...position }));
  }

  /** Sets the handlers (replacing earlier ones). */
  on(handlers: ClientHandlers<Push>): void {
    this.handlers = handlers;
  }

  /** True while a socket is open. */
  get connected(): boolean {
    return this.socket !== null && this.socket.readyState === 1;
  }

  /**
   * Opens the connection; resolves once it is open, rejects with a {@link CloseError} when the
   * first attempt fails (reconnection then goes on in the background unless disabled).
   */
  connect(): Promise<void> {
    this.wanted = true;
    if (this.connected) {
      return Promise.resolve();
    }
    const opened = new Promise<void>((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    if (this.socket === null && this.reconnectTimer === null) {
      this.open();
    }
    return opened;
  }

  /** Closes the connection for good (no reconnection); pending requests are rejected. */
  close(code = 1000, reason = ""): void {
    this.wanted = false;
    if (this.reconnectTimer !== null) {
      timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      socket.close(code, reason);
    }
    this.failPending(new CloseError(code, reason));
    this.failUnacked(new CloseError(code, reason));
  }

  /** Sends a message to `routeKey` (the route field is set; `null` sends the body as is). */
  send(routeKey: string | null, body: object): void {
    const message: { [key: string]: unknown } = { ...body };
    if (routeKey !== null) {
      message[this.api.routeField] = routeKey;
    }
    this.write(JSON.stringify(message));
  }

  /**
   * Sends a two-way message and resolves with the reply that echoes its correlation id. On an
   * acknowledged route, `ackField` (a top-level field) gets the same id, so the ack frame is
   * recognised and dropped.
   */
  request(routeKey: string | null, body: object, ackField?: string): Promise<JsonValue> {
    const id = `${this.prefix}-${++this.counter}`;
    const message: { [key: string]: unknown } = { ...body, [this.api.correlationField]: id };
    if (ackField !== undefined && message[ackField] === undefined) {
      message[ackField] = id;
    }
    if (routeKey !== null) {
      message[this.api.routeField] = routeKey;
    }
    const timeoutMs = this.options.requestTimeoutMs ?? 30000;
    return new Promise<JsonValue>((resolve, reject) => {
      const timer = timers.setTimeout(() => {
        this.pending.delete(id);
        reject(new ReplyTimeoutError(routeKey ?? "$default", timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.write(JSON.stringify(message));
      } catch (error) {
        timers.clearTimeout(timer);
        this.pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /**
   * Sends a message of an acknowledged route and resolves once the gateway acknowledged it.
   * The message id at `idPath` is filled in when absent (a string unique to this client). The
   * message is kept until its ack: sent again after a reconnect, and after a retryable nack or
   * `pending` (with backoff); a nack that is not retryable rejects with {@link AckError}. A
   * message sent while no connection is open goes out once one is.
   */
  sendAcked(routeKey: string | null, body: object, idPath: string[]): Promise<void> {
    const message: { [key: string]: unknown } = { ...body };
    if (routeKey !== null) {
      message[this.api.routeField] = routeKey;
    }
    let holder = message;
    for (const field of idPath.slice(0, -1)) {
      const inner = holder[field];
      holder[field] = isObject(inner) ? { ...inner } : {};
      holder = holder[field] as { [key: string]: unknown };
    }
    const last = idPath[idPath.length - 1] ?? "id";
    const given = holder[last];
    const id = typeof given === "string" || typeof given === "number" ? given : `${this.prefix}-${++this.counter}`;
    holder[last] = id;
    const key = JSON.stringify(id);
    if (this.unacked.size >= (this.options.acks?.maxUnacked ?? 1000) || this.unacked.has(key)) {
      return Promise.reject(new Error(`message ${key} not sent: too many unacknowledged messages, or one with its id`));
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Unacked = { id, text: JSON.stringify(message), resolve, reject, attempt: 0, timer: null };
      this.unacked.set(key, entry);
      if (this.connected) {
        this.socket?.send(entry.text);
      }
    });
  }

  /** Messages sent on acknowledged routes and not acknowledged yet. */
  get unacknowledged(): number {
    return this.unacked.size;
  }

  private resendUnacked(): void {
    for (const entry of this.unacked.values()) {
      if (entry.timer !== null) {
        timers.clearTimeout(entry.timer);
        entry.timer = null;
      }
      this.socket?.send(entry.text);
    }
  }

  private failUnacked(error: Error): void {
    for (const [key, entry] of this.unacked) {
      if (entry.timer !== null) timers.clearTimeout(entry.timer);
      this.unacked.delete(key);
      entry.reject(error);
    }
  }

  /** Handles an ack, nack or pending frame; false when it is none of this client's. */
  private acknowledged(value: { [key: string]: unknown }): boolean {
    const frame = ackFrame(value);
    if (frame === null) {
      return false;
    }
    const key = JSON.stringify(frame.id);
    const entry = this.unacked.get(key);
    if (entry === undefined) {
      // A late answer to one of this client's messages (acknowledged already) is dropped.
      return typeof frame.id === "string" && frame.id.startsWith(`${this.prefix}-`);
    }
    if (frame.kind === "ack") {
      if (entry.timer !== null) timers.clearTimeout(entry.timer);
      this.unacked.delete(key);
      entry.resolve();
    } else if (frame.kind === "nack" && !frame.retryable) {
      if (entry.timer !== null) timers.clearTimeout(entry.timer);
      this.unacked.delete(key);
      entry.reject(new AckError(frame.id, frame.message, frame.requestId));
    } else if (entry.timer === null) {
      const acks = this.options.acks ?? {};
      const delay = backoffDelay(entry.attempt, acks.retryBaseMs ?? 500, acks.retryMaxMs ?? 15000);
      entry.attempt += 1;
      entry.timer = timers.setTimeout(() => {
        entry.timer = null;
        // While disconnected, the next open resends it.
        if (this.unacked.get(key) === entry && this.connected) {
          this.socket?.send(entry.text);
        }
      }, delay);
    }
    return true;
  }

  private write(text: string): void {
    if (this.socket === null || this.socket.readyState !== 1) {
      throw new NotConnectedError();
    }
    this.socket.send(text);
  }

  private target(): string {
    const query: Record<string, string> = { ...this.placement.query, ...(this.options.query ?? {}) };
    if (this.recovering) {
      const positions = [...this.positionOf.values()].map((p) => `${p.group}:${p.epoch}:${p.offset}`);
      if (positions.length > 0) {
        query.recover = positions.join(",");
      } else {
        query.envelope = "1";
      }
    }
    const pairs = Object.keys(query)
      .sort()
      .map((key) => `${encodeURIComponent(key)}=${encodeURIComponent(query[key] ?? "")}`);
    if (pairs.length === 0) {
      return this.url;
    }
    return `${this.url}${this.url.includes("?") ? "&" : "?"}${pairs.join("&")}`;
  }

  private open(): void {
    this.reconnectTimer = null;
    const factory = this.options.webSocket ?? defaultWebSocket;
    const protocols = [...this.placement.protocols, ...(this.options.protocols ?? [])];
    const headers = { ...this.placement.headers, ...(this.options.headers ?? {}) };
    let socket: WebSocketLike;
    try {
      socket = factory(this.target(), protocols, headers);
    } catch (error) {
      this.closed(null, 1006, error instanceof Error ? error.message : String(error));
      return;
    }
    this.socket = socket;
    let closed = false;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.resendUnacked();
      for (const waiter of this.openWaiters.splice(0)) waiter.resolve();
      this.handlers.onOpen?.();
    });
    socket.addEventListener("message", (event: { data: unknown }) => {
      if (this.socket !== socket) return;
      this.receive(event.data);
    });
    socket.addEventListener("close", (event: { code?: number; reason?: string }) => {
      if (closed) return;
      closed = true;
      this.closed(socket, event.code ?? 1005, event.reason ?? "");
    });
    // An error is followed by a close; the close decides what happens next.
    socket.addEventListener("error", () => undefined);
  }

  private closed(socket: WebSocketLike | null, code: number, reason: string): void {
    if (socket !== null && this.socket !== socket) return;
    this.socket = null;
    const error = new CloseError(code, reason);
    this.failPending(error);
    const reconnect = this.options.reconnect ?? {};
    const maxAttempts = reconnect.maxAttempts ?? Number.POSITIVE_INFINITY;
    let delay: number | null = null;
    if (this.wanted && reconnect.enabled !== false && this.attempt < maxAttempts) {
      delay = backoffDelay(this.attempt, reconnect.baseMs ?? 500, reconnect.maxMs ?? 15000);
      this.attempt += 1;
      this.reconnectTimer = timers.setTimeout(() => this.open(), delay);
    } else {
      this.wanted = false;
      this.failUnacked(error);
    }
    for (const waiter of this.openWaiters.splice(0)) waiter.reject(error);
    this.handlers.onClose?.(error, delay);
  }

  private failPending(error: Error): void {
    for (const [id, pending] of this.pending) {
      timers.clearTimeout(pending.timer);
      this.pending.delete(id);
      pending.reject(error);
    }
  }

  private receive(data: unknown): void {
    if (typeof data !== "string") {
      this.handlers.onRaw?.(data);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      this.handlers.onRaw?.(data);
      return;
    }
    if (isObject(value)) {
      if (this.recovering && this.recoveryFrame(value)) {
        return;
      }
      if (this.acknowledged(value)) {
        return;
      }
      const id = value[this.api.correlationField];
      const pending = typeof id === "string" ? this.pending.get(id) : undefined;
      if (typeof id === "string" && pending !== undefined) {
        timers.clearTimeout(pending.timer);
        this.pending.delete(id);
        pending.resolve(value as JsonValue);
        return;
      }
      if (isGatewayError(value)) {
        this.handlers.onGatewayError?.(value);
        return;
      }
    }
    this.handlers.onPush?.(value as Push);
  }

  /** Handles an envelope or a recovery signal; false when the frame is neither. */
  private recoveryFrame(value: { [key: string]: unknown }): boolean {
    const { type, group, epoch, offset } = value;
    if (typeof group !== "string") {
      return false;
    }
    const keys = Object.keys(value).sort().join(",");
    if (
      type === "notRecovered" &&
      keys === "epoch,group,offset,reason,type" &&
      typeof value.reason === "string" &&
      (typeof epoch === "string" || epoch === null) &&
      (typeof offset === "number" || offset === null)
    ) {
      // The position to refetch the state as of (and to recover from next time), if known.
      if (typeof epoch === "string" && typeof offset === "number") {
        this.positionOf.set(group, { group, epoch, offset });
      } else {
        this.positionOf.delete(group);
      }
      this.handlers.onNotRecovered?.({ type, group, reason: value.reason, epoch, offset });
      return true;
    }
    if (typeof epoch !== "string" || typeof offset !== "number") {
      return false;
    }
    if (type === "recovered" && keys === "epoch,group,offset,replayed,type" && typeof value.replayed === "number") {
      this.advancePosition(group, epoch, offset);
      this.handlers.onRecovered?.({ type, group, epoch, offset, replayed: value.replayed });
      return true;
    }
    if (
      type !== "message" ||
      (keys !== "data,epoch,group,offset,type" && keys !== "dataBase64,epoch,group,offset,type")
    ) {
      return false;
    }
    const known = this.positionOf.get(group);
    if (known !== undefined && known.epoch === epoch && offset <= known.offset) {
      return true; // Received already.
    }
    this.positionOf.set(group, { group, epoch, offset });
    if (typeof value.dataBase64 === "string") {
      this.handlers.onRaw?.(decodeBase64(value.dataBase64));
      return true;
    }
    const text = String(value.data);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      this.handlers.onRaw?.(text);
      return true;
    }
    if (this.handlers.onGroupMessage !== undefined) {
      this.handlers.onGroupMessage({ group, epoch, offset, data: data as Push });
    } else {
      this.handlers.onPush?.(data as Push);
    }
    return true;
  }

  /** Moves the position of `group` forward to `offset` of `epoch` (a new epoch replaces it). */
  private advancePosition(group: string, epoch: string, offset: number): void {
    const known = this.positionOf.get(group);
    if (known === undefined || known.epoch !== epoch || known.offset < offset) {
      this.positionOf.set(group, { group, epoch, offset });
    }
  }
}

/** The bytes of a base64 string (a binary payload of a group message). */
function decodeBase64(text: string): Uint8Array {
  const atob = (globalThis as unknown as { atob: (data: string) => string }).atob;
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function defaultWebSocket(url: string, protocols: string[]): WebSocketLike {
  const native = (globalThis as { WebSocket?: new (url: string, protocols?: string[]) => WebSocketLike }).WebSocket;
  if (native === undefined) {
    throw new Error("no global WebSocket: pass options.webSocket (e.g. from the ws package)");
  }
  return new native(url, protocols);
}
