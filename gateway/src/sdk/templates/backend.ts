import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The API's stages. */
export type Stage = __STAGE__;

/** AWS credentials (SigV4, service `execute-api`). */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** How the callback API is authenticated (`callback.auth` of the gateway). */
export type CallbackAuth =
  { kind: "none" } | { kind: "bearer"; token: string } | { kind: "sigv4"; region: string; credentials: Credentials };

/** The error names of the callback API (`x-amzn-ErrorType`). */
export type CallbackErrorType =
  | "GoneException"
  | "ForbiddenException"
  | "PayloadTooLargeException"
  | "LimitExceededException"
  | "BadRequestException"
  | "ServiceUnavailableException"
  | "AccessDeniedException"
  | "MissingAuthenticationTokenException"
  | "IncompleteSignatureException"
  | "UnrecognizedClientException"
  | "InvalidSignatureException"
  | (string & {});

/** A callback API call failed: its HTTP status, error name and message. */
export class CallbackError extends Error {
  readonly status: number;
  readonly errorType: CallbackErrorType;

  constructor(status: number, errorType: CallbackErrorType, message: string) {
    super(`${status} ${errorType}: ${message}`);
    this.name = "CallbackError";
    this.status = status;
    this.errorType = errorType;
  }

  /** The connection is unknown or closed (410). */
  get gone(): boolean {
    return this.status === 410;
  }
}

/** `GET @connections/{id}`. */
export interface ConnectionInfo {
  connectedAt: string;
  lastActiveAt: string;
  identity: { sourceIp: string; userAgent?: string; [key: string]: JsonValue | undefined };
}

/** The answer of a group post or a broadcast. */
export interface PostResult {
  deliveredLocal: number;
  droppedLocal: number;
  published: boolean;
  remoteNodes: number;
  /** A post to a group with history: its position (`epoch`, `offset`). */
  epoch?: string;
  offset?: number;
}

/** A page of a group's members. */
export interface GroupPage {
  group: string;
  memberCount: number;
  members: string[];
  nextToken?: string;
}

/** A page of the stage's connections. */
export interface ConnectionPage {
  connectionCount: number;
  connections: string[];
  nextToken?: string;
}

/** A message body: text and bytes go as they are, anything else as JSON. */
export type PushBody = string | Uint8Array | JsonValue;

interface Answer {
  status: number;
  text: string;
}

function encodePath(segment: string): string {
  return encodeURIComponent(segment);
}

/**
 * The callback API of one stage: push to connections, read and close them, manage groups,
 * post to groups and broadcast. `endpoint` is the callback API's base URL without the stage,
 * e.g. `https://gateway.example.com` (`http://127.0.0.1:9080` for `callback.listen`).
 */
export class __CLASS__ {
  private readonly base: URL;
  private readonly signer: SignatureV4 | null;

  constructor(
    endpoint: string,
    readonly stage: Stage,
    private readonly auth: CallbackAuth,
  ) {
    this.base = new URL(endpoint);
    this.signer =
      auth.kind === "sigv4"
        ? new SignatureV4({
            service: "execute-api",
            region: auth.region,
            credentials: auth.credentials,
            sha256: Sha256,
          })
        : null;
  }

  /** Sends `body` to one connection (`POST @connections/{id}`). */
  async post(connectionId: string, body: PushBody): Promise<void> {
    await this.call("POST", ["@connections", connectionId], {}, body);
  }

  /** The connection's times and identity (`GET @connections/{id}`). */
  async get(connectionId: string): Promise<ConnectionInfo> {
    return JSON.parse((await this.call("GET", ["@connections", connectionId], {})).text) as ConnectionInfo;
  }

  /** Closes a connection (`DELETE @connections/{id}`), with close code 1000 or 3000-4999. */
  async delete(connectionId: string, close?: { code: number; reason?: string }): Promise<void> {
    const query: Record<string, string> = {};
    if (close !== undefined) {
      query.code = String(close.code);
      if (close.reason !== undefined) query.reason = close.reason;
    }
    await this.call("DELETE", ["@connections", connectionId], query);
  }

  /** Puts a connection in a group. */
  async join(connectionId: string, group: string): Promise<void> {
    await this.call("PUT", ["@connections", connectionId, "groups", group], {});
  }

  /** Takes a connection out of a group. */
  async leave(connectionId: string, group: string): Promise<void> {
    await this.call("DELETE", ["@connections", connectionId, "groups", group], {});
  }

  /** The groups of a connection. */
  async groupsOf(connectionId: string): Promise<string[]> {
    const answer = await this.call("GET", ["@connections", connectionId, "groups"], {});
    return (JSON.parse(answer.text) as { groups: string[] }).groups;
  }

  /** Sends `body` to every member of a group, except `exclude`. */
  async postToGroup(group: string, body: PushBody, exclude?: string): Promise<PostResult> {
    const query: Record<string, string> = exclude === undefined ? {} : { exclude };
    return JSON.parse((await this.call("POST", ["@groups", group], query, body)).text) as PostResult;
  }

  /** Sends `body` to every connection of the stage, except `exclude`. */
  async broadcast(body: PushBody, exclude?: string): Promise<PostResult> {
    const query: Record<string, string> = exclude === undefined ? {} : { exclude };
    return JSON.parse((await this.call("POST", ["@broadcast"], query, body)).text) as PostResult;
  }

  /** One page of a group's members. */
  async members(group: string, page: { maxResults?: number; nextToken?: string } = {}): Promise<GroupPage> {
    return JSON.parse((await this.call("GET", ["@groups", group], pageQuery(page))).text) as GroupPage;
  }

  /** One page of the stage's connections. */
  async connections(page: { maxResults?: number; nextToken?: string } = {}): Promise<ConnectionPage> {
    return JSON.parse((await this.call("GET", ["@connections"], pageQuery(page))).text) as ConnectionPage;
  }

  private async call(method: string, path: string[], query: Record<string, string>, body?: PushBody): Promise<Answer> {
    const prefix = this.base.pathname.replace(/\/+$/, "");
    const pathname = `${prefix}/${[this.stage, ...path].map(encodePath).join("/")}`;
    const bytes = body === undefined ? undefined : encodeBody(body);
    const headers: Record<string, string> = { host: this.base.host };
    if (bytes !== undefined) headers["content-type"] = "application/octet-stream";
    if (this.auth.kind === "bearer") headers.authorization = `Bearer ${this.auth.token}`;
    let signed = headers;
    if (this.signer !== null) {
      const request = await this.signer.sign({
        method,
        protocol: this.base.protocol,
        hostname: this.base.hostname,
        port: this.base.port === "" ? undefined : Number(this.base.port),
        path: pathname,
        query,
        headers,
        body: bytes,
      });
      signed = request.headers;
    }
    const search = new URLSearchParams(query).toString();
    const url = `${this.base.protocol}//${this.base.host}${pathname}${search === "" ? "" : `?${search}`}`;
    const { host: _host, ...sent } = signed;
    void _host;
    const response = await fetch(url, { method, headers: sent, body: bytes });
    const text = await response.text();
    if (!response.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // Not JSON: the body is the message.
      }
      throw new CallbackError(response.status, response.headers.get("x-amzn-errortype") ?? "UnknownError", message);
    }
    return { status: response.status, text };
  }
}

function pageQuery(page: { maxResults?: number; nextToken?: string }): Record<string, string> {
  const query: Record<string, string> = {};
  if (page.maxResults !== undefined) query.maxResults = String(page.maxResults);
  if (page.nextToken !== undefined) query.nextToken = page.nextToken;
  return query;
}

function encodeBody(body: PushBody): Uint8Array {
  if (body instanceof Uint8Array) return body;
  return new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
}
