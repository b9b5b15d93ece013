//! The TypeScript client package: `package.json`, `tsconfig.json`, `README.md` and `src/index.ts`
//! (the fixed runtime of `templates/client_runtime.ts`, then the API's types and its client class).

use std::fmt::Write as _;

use super::Files;
use super::api::{Api, Placement, Route};
use super::names::is_ts_identifier;
use super::schema::{Def, Ty};

const RUNTIME: &str = include_str!("templates/client_runtime.ts");
pub(crate) const TSCONFIG: &str = include_str!("templates/tsconfig.json");
/// The formatting the sources follow (`prettier --check .` passes).
pub(crate) const PRETTIER: &str = "{ \"printWidth\": 120 }\n";

/// Names the runtime defines (models must not take them).
pub(crate) const RESERVED: &[&str] = &[
    "JsonValue",
    "JsonObject",
    "WebSocketLike",
    "WebSocketFactory",
    "CloseKind",
    "CloseError",
    "NotConnectedError",
    "ReplyTimeoutError",
    "AckError",
    "AckOptions",
    "AckFrame",
    "Unacked",
    "GatewayErrorFrame",
    "ReconnectOptions",
    "Position",
    "GroupMessage",
    "RecoveredSignal",
    "NotRecoveredReason",
    "NotRecoveredSignal",
    "RecoverOptions",
    "ClientHandlers",
    "ApiDescription",
    "Placement",
    "BaseOptions",
    "Connection",
    "Stage",
    "Push",
    "CallbackError",
    "CallbackErrorType",
    "CallbackAuth",
    "Credentials",
    "ConnectionInfo",
    "PostResult",
    "GroupPage",
    "ConnectionPage",
    "PushBody",
];

/// A `/** … */` comment at `indent` (nothing for no text).
pub(crate) fn doc(out: &mut String, indent: &str, text: Option<&str>) {
    if let Some(text) = text {
        let _ = writeln!(out, "{indent}/** {} */", text.replace("*/", "*\\/"));
    }
}

/// A JSON string literal (valid in TypeScript and Python).
pub(crate) fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The TypeScript of a type.
pub(crate) fn ty(ty: &Ty) -> String {
    match ty {
        Ty::Json => "JsonValue".into(),
        Ty::String => "string".into(),
        Ty::Number | Ty::Integer => "number".into(),
        Ty::Boolean => "boolean".into(),
        Ty::Null => "null".into(),
        Ty::Literal(value) => value.to_string(),
        Ty::Array(item) => match item.as_ref() {
            Ty::Union(_) => format!("({})[]", self::ty(item)),
            other => format!("{}[]", self::ty(other)),
        },
        Ty::Map(value) => format!("Record<string, {}>", self::ty(value)),
        Ty::Union(parts) => parts.iter().map(self::ty).collect::<Vec<_>>().join(" | "),
        Ty::Named(name) => name.clone(),
    }
}

fn defs(out: &mut String, api: &Api) {
    for def in &api.defs.defs {
        match def {
            Def::Record {
                name,
                description,
                fields,
            } => {
                doc(out, "", description.as_deref());
                if fields.is_empty() {
                    let _ = writeln!(out, "export interface {name} {{}}\n");
                    continue;
                }
                let _ = writeln!(out, "export interface {name} {{");
                for field in fields {
                    doc(out, "  ", field.description.as_deref());
                    let key = if is_ts_identifier(&field.name) {
                        field.name.clone()
                    } else {
                        quoted(&field.name)
                    };
                    let optional = if field.required { "" } else { "?" };
                    let _ = writeln!(out, "  {key}{optional}: {};", ty(&field.ty));
                }
                out.push_str("}\n\n");
            }
            Def::Alias {
                name,
                description,
                ty: aliased,
            } => {
                doc(out, "", description.as_deref());
                let _ = writeln!(out, "export type {name} = {};\n", ty(aliased));
            }
        }
    }
}

/// The stage union type.
pub(crate) fn stage_type(api: &Api) -> String {
    if api.stages.is_empty() {
        return "string".into();
    }
    api.stages
        .iter()
        .map(|s| quoted(s))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn placement_doc(placement: &Placement) -> String {
    match placement {
        Placement::Header(name) => {
            format!("sent in the `{name}` header (Node.js only: browsers cannot set headers)")
        }
        Placement::Query(name) => format!("sent as the query parameter `{name}`"),
        Placement::Subprotocol(prefix) => format!(
            "offered as the subprotocol `{prefix}<token>`, beside `wsgate` which the gateway selects"
        ),
        Placement::Cookie(name) => format!(
            "read from the cookie `{name}`: set it yourself (browsers send the page's cookies)"
        ),
    }
}

fn place(out: &mut String, option: &str, placement: &Placement, value: &str) {
    let _ = writeln!(out, "  if (options.{option} !== undefined) {{");
    match placement {
        Placement::Header(name) => {
            let _ = writeln!(out, "    placed.headers[{}] = {value};", quoted(name));
        }
        Placement::Query(name) => {
            let _ = writeln!(out, "    placed.query[{}] = {value};", quoted(name));
        }
        Placement::Subprotocol(prefix) => {
            let _ = writeln!(
                out,
                "    placed.protocols.push(`{}${{{value}}}`, \"wsgate\");",
                prefix.replace('`', "\\`").replace("${", "\\${")
            );
        }
        Placement::Cookie(_) => {}
    }
    out.push_str("  }\n");
}

fn method(out: &mut String, route: &Route) {
    let key = if route.key == "$default" {
        "null".to_string()
    } else {
        quoted(&route.key)
    };
    let params = ty(&route.params);
    let default = if route.params_optional { " = {}" } else { "" };
    let models = if route.models.is_empty() {
        String::new()
    } else {
        format!(" Request model: {}.", route.models.join(", "))
    };
    let fields = |path: &[String]| {
        path.iter()
            .map(|f| quoted(f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if route.two_way {
        doc(
            out,
            "  ",
            Some(&format!(
                "Sends a `{}` message and resolves with its reply (two-way route).{models}",
                route.key
            )),
        );
        let reply = ty(&route.reply);
        let _ = writeln!(
            out,
            "  async {}(message: {params}{default}): Promise<{reply}> {{",
            route.ts_method
        );
        // An acknowledged two-way route whose id is a top-level field gets the correlation id
        // as its id, so its ack frame is recognised.
        let ack_field = match route.ack.as_deref() {
            Some([field]) => format!(", {}", quoted(field)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "    return (await this.request({key}, message{ack_field})) as unknown as {reply};"
        );
    } else if let Some(path) = &route.ack {
        doc(
            out,
            "  ",
            Some(&format!(
                "Sends a `{}` message and resolves once the gateway acknowledged it (acknowledged route, id at `$.{}`: filled in when absent; kept and resent until acknowledged).{models}",
                route.key,
                path.join(".")
            )),
        );
        let _ = writeln!(
            out,
            "  {}(message: {params}{default}): Promise<void> {{",
            route.ts_method
        );
        let _ = writeln!(
            out,
            "    return this.sendAcked({key}, message, [{}]);",
            fields(path)
        );
    } else {
        doc(
            out,
            "  ",
            Some(&format!(
                "Sends a `{}` message (one-way).{models}",
                route.key
            )),
        );
        let _ = writeln!(
            out,
            "  {}(message: {params}{default}): void {{",
            route.ts_method
        );
        let _ = writeln!(out, "    this.send({key}, message);");
    }
    out.push_str("  }\n");
}

/// The `src/index.ts` of the client package.
pub(crate) fn client_source(api: &Api) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Generated by `wsgate sdk typescript` from the configuration of the API {}.\n// Do not edit: generate it again.\n",
        quoted(&api.name)
    );
    out.push_str(RUNTIME);
    out.push('\n');
    defs(&mut out, api);
    let class = &api.class;
    let _ = writeln!(
        out,
        "/** The API's stages. */\nexport type Stage = {};\n",
        stage_type(api)
    );
    out.push_str(
        "/** A message pushed by a backend: any JSON. */\nexport type Push = JsonValue;\n\n",
    );
    let _ = writeln!(out, "/** The options of {{@link {class}}}. */");
    let _ = writeln!(
        out,
        "export interface {class}Options extends BaseOptions {{"
    );
    let _ = writeln!(
        out,
        "  /** The stage (default `{}`). */\n  stage?: Stage;",
        api.default_stage()
    );
    if let Some(placement) = &api.api_key {
        let _ = writeln!(
            out,
            "  /** API key, {}. */\n  apiKey?: string;",
            placement_doc(placement)
        );
    }
    if let Some(token) = &api.token {
        let bearer = if token.bearer {
            " as `Bearer <token>`"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  /** Token of the `$connect` authorizer `{}`, {}{bearer}. */\n  token?: string;",
            token.authorizer,
            placement_doc(&token.placement)
        );
    }
    out.push_str("}\n\n");
    let _ = writeln!(
        out,
        "function placement(options: {class}Options): Placement {{\n  const placed: Placement = {{ headers: {{}}, query: {{}}, protocols: [] }};"
    );
    if let Some(placement) = &api.api_key {
        place(&mut out, "apiKey", placement, "options.apiKey");
    }
    if let Some(token) = &api.token {
        let value = if token.bearer {
            "`Bearer ${options.token}`"
        } else {
            "options.token"
        };
        place(&mut out, "token", &token.placement, value);
    }
    out.push_str("  return placed;\n}\n\n");
    let _ = writeln!(
        out,
        "const API: ApiDescription = {{ routeField: {}, correlationField: {} }};\n",
        quoted(&api.route_field),
        quoted(&api.correlation_field)
    );
    let _ = writeln!(
        out,
        "/**\n * A client of the API {name}: one method per message route; the route field `{route}` is set\n * by the client. Two-way routes resolve with the reply whose `{corr}` equals the one the\n * client put in the request: the backend must copy the request body's `{corr}` into its reply.\n */",
        name = quoted(&api.name),
        route = api.route_field,
        corr = api.correlation_field
    );
    let _ = writeln!(out, "export class {class} extends Connection<Push> {{");
    let _ = writeln!(
        out,
        "  /** `baseUrl`: the gateway's `ws://` or `wss://` origin (`wss://chat.example.com`); the stage is appended. */\n  constructor(baseUrl: string, options: {class}Options = {{}}) {{\n    super(`${{baseUrl.replace(/\\/+$/, \"\")}}/${{options.stage ?? {}}}`, API, placement(options), options);\n  }}",
        quoted(api.default_stage())
    );
    for route in &api.routes {
        out.push('\n');
        method(&mut out, route);
    }
    out.push_str("}\n");
    out
}

fn package_json(
    api: &Api,
    description: &str,
    dependencies: &[(&str, &str)],
    dev_dependencies: &[(&str, &str)],
) -> String {
    let map = |list: &[(&str, &str)]| {
        let mut map = serde_json::Map::new();
        for (name, version) in list {
            map.insert((*name).into(), (*version).into());
        }
        map
    };
    let deps = map(dependencies);
    let mut dev = map(&[("prettier", "^3.10.2"), ("typescript", "^5.9.3")]);
    dev.extend(map(dev_dependencies));
    let package = serde_json::json!({
        "name": api.npm_name,
        "version": "0.0.0",
        "private": true,
        "description": description,
        "type": "module",
        "main": "dist/index.js",
        "types": "dist/index.d.ts",
        "scripts": { "build": "tsc -p ." },
        "dependencies": deps,
        "devDependencies": dev
    });
    serde_json::to_string_pretty(&package).unwrap_or_default() + "\n"
}

/// The README both TypeScript packages share the shape of.
pub(crate) fn readme(api: &Api, title: &str, body: &str) -> String {
    format!(
        "# {title}\n\nGenerated by `wsgate` from the configuration of the API `{}`; do not edit, generate it again.\n\n{body}",
        api.name
    )
}

/// The correlation of two-way replies, explained (both languages' READMEs).
pub(crate) fn correlation_text(api: &Api) -> String {
    format!(
        "## Two-way routes\n\nA method of a two-way route (`route_response: true`) adds the field `{corr}` to the message\nbody, a string unique on the connection, and resolves with the first message that comes back\nwith the same `{corr}` at the top level of its JSON object. The backend must therefore echo it:\nread `{corr}` from the request body and put it, unchanged, in its reply body\n(`{{\"{corr}\": \"…\", …}}`). A reply without it is delivered to the push handler instead, and\nthe request fails with a timeout. Requests still waiting when the connection closes fail with\nthe close error. Any other JSON message is a push; the gateway's own error frames\n(`{{\"message\": \"Forbidden\", \"connectionId\": …}}`) go to the gateway-error handler.\n\n## Closes and reconnection\n\nA close the client did not ask for (a `DELETE @connections/{{id}}`, an idle timeout, a lost\nnetwork) is reported with its code and kind (1000 normal, 1001 going away, 1009 too big,\n1011 internal or ping timeout, 1013 slow consumer, 3000–4999 application) and the client\nreconnects with exponential backoff and equal jitter (from 500 ms up to 15 s by default).\n",
        corr = api.correlation_field
    )
}

/// Recovery of group messages across reconnects, explained (both languages' READMEs): the
/// option that turns it on, the handlers and the getter of the positions, as each names them.
pub(crate) fn recovery_text(option: &str, handlers: &str, positions: &str) -> String {
    format!(
        "\n## Recovery across reconnects\n\nWith {option} the client connects with `envelope=1`. Messages of groups that keep\nhistory (`groups.history` in the gateway's configuration) arrive with their group, epoch and\noffset; the client keeps the last position of every such group and reconnects with\n`recover=GROUP:EPOCH:OFFSET,...`, so the gateway first replays, once and in order, what was\nmissed, then signals `recovered`. When its history no longer covers the gap it signals\n`notRecovered` with a reason and the current position instead: refetch the state from the\nbackend. Handlers: {handlers}\n(without a group-message handler, the data goes to the push handler). To start a later\nclient where this one stopped: {positions}.\n"
    )
}

/// Every file of the client package.
pub(crate) fn client(api: &Api) -> Files {
    let mut files = Files::new();
    files.insert(
        "package.json".into(),
        package_json(
            api,
            &format!("Typed WebSocket client of the API {}.", api.name),
            &[],
            &[],
        ),
    );
    files.insert("tsconfig.json".into(), TSCONFIG.into());
    files.insert(".prettierrc.json".into(), PRETTIER.into());
    files.insert("src/index.ts".into(), client_source(api));
    let usage = format!(
        "## Use\n\n```ts\nimport {{ {class} }} from \"{pkg}\";\n\nconst client = new {class}(\"wss://gateway.example.com\", {{ stage: \"{stage}\" }});\nclient.on({{ onPush: (message) => console.log(message), onClose: (error) => console.log(error.kind) }});\nawait client.connect();\n```\n\nIn Node.js pass a socket factory, e.g. with the `ws` package:\n`webSocket: (url, protocols, headers) => new WebSocket(url, protocols, {{ headers }})`.\n\n",
        class = api.class,
        pkg = api.npm_name,
        stage = api.default_stage()
    );
    let acked: Vec<String> = (api.routes.iter())
        .filter(|r| r.ack.is_some())
        .map(|r| format!("`{}`", r.ts_method))
        .collect();
    let acks = if acked.is_empty() {
        String::new()
    } else {
        format!(
            "\n## Acknowledged routes\n\n{} {} acknowledged by the gateway (`ack:` in the configuration): the\nmethod fills in the message id when the body has none, resolves once the gateway answers\n`{{\"ack\": id}}`, and keeps the message until then: it is sent again after a reconnect, and\nafter a retryable nack or `{{\"pending\": id}}` (with backoff, `acks` in the options); the gateway\ndrops copies it has seen, so each reaches the backend once. A nack that is not retryable\nrejects with `AckError`; closing the client rejects what is still waiting.\n",
            acked.join(", "),
            if acked.len() == 1 { "is" } else { "are" }
        )
    };
    files.insert(
        "README.md".into(),
        readme(
            api,
            &format!("{} (TypeScript)", api.class),
            &(usage
                + &correlation_text(api)
                + &acks
                + &recovery_text(
                    "`recover: true`",
                    "`onGroupMessage`, `onRecovered`, `onNotRecovered`",
                    "`client.positions`, then `recover: { from: positions }`",
                )),
        ),
    );
    files
}

/// The backend package's `package.json`.
pub(crate) fn backend_package_json(api: &Api) -> String {
    package_json(
        api,
        &format!(
            "Typed callback API client of the API {} (bearer or SigV4).",
            api.name
        ),
        &[
            ("@aws-crypto/sha256-js", "^5.2.0"),
            ("@smithy/signature-v4", "^5.7.5"),
        ],
        &[("@types/node", "^20.19.43")],
    )
}
