//! The Python client package: `pyproject.toml`, `README.md` and `<name>/__init__.py` (the fixed
//! runtime of `templates/client_runtime.py`, then the API's TypedDicts and its client class),
//! with `py.typed`.

use std::fmt::Write as _;

use super::Files;
use super::api::{Api, Placement, Route};
use super::names::is_py_identifier;
use super::schema::{Def, Ty};
use super::typescript::{correlation_text, quoted, readme, recovery_text};

const RUNTIME: &str = include_str!("templates/client_runtime.py");

/// The Python of a type.
pub(crate) fn ty(ty: &Ty) -> String {
    match ty {
        Ty::Json => "JsonValue".into(),
        Ty::String => "str".into(),
        Ty::Number => "float".into(),
        Ty::Integer => "int".into(),
        Ty::Boolean => "bool".into(),
        Ty::Null => "None".into(),
        Ty::Literal(value) => literal(value),
        Ty::Array(item) => format!("list[{}]", self::ty(item)),
        Ty::Map(value) => format!("dict[str, {}]", self::ty(value)),
        Ty::Union(parts) => union(parts),
        Ty::Named(name) => name.clone(),
    }
}

/// `A | B`, with string and integer literals gathered into one `Literal[...]` (in place of the
/// first).
fn union(parts: &[Ty]) -> String {
    let literal_value = |t: &Ty| match t {
        Ty::Literal(serde_json::Value::String(s)) => Some(quoted(s)),
        Ty::Literal(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => {
            Some(n.to_string())
        }
        _ => None,
    };
    let literals: Vec<String> = parts.iter().filter_map(literal_value).collect();
    let mut out: Vec<String> = Vec::new();
    let mut placed = false;
    for part in parts {
        if literal_value(part).is_some() {
            if !placed {
                out.push(format!("Literal[{}]", literals.join(", ")));
                placed = true;
            }
        } else {
            out.push(ty(part));
        }
    }
    out.join(" | ")
}

fn literal(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Bool(true) => "Literal[True]".into(),
        serde_json::Value::Bool(false) => "Literal[False]".into(),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => format!("Literal[{n}]"),
        serde_json::Value::Number(_) => "float".into(),
        serde_json::Value::String(s) => format!("Literal[{}]", quoted(s)),
        _ => "JsonValue".into(),
    }
}

/// A docstring line (quotes and backslashes made harmless).
fn docstring(text: &str) -> String {
    text.replace('\\', "\\\\").replace("\"\"\"", "'''")
}

fn defs(out: &mut String, api: &Api) {
    for def in &api.defs.defs {
        match def {
            Def::Record {
                name,
                description,
                fields,
            } => {
                let class_form = fields.iter().all(|f| is_py_identifier(&f.name));
                let field_ty = |required: bool, t: &Ty| {
                    if required {
                        ty(t)
                    } else {
                        format!("NotRequired[{}]", ty(t))
                    }
                };
                if class_form {
                    let _ = writeln!(out, "\n\nclass {name}(TypedDict):");
                    if let Some(text) = description {
                        let _ = writeln!(out, "    \"\"\"{}\"\"\"", docstring(text));
                        if !fields.is_empty() {
                            out.push('\n');
                        }
                    }
                    if fields.is_empty() && description.is_none() {
                        out.push_str("    pass\n");
                    }
                    for field in fields {
                        let _ = writeln!(
                            out,
                            "    {}: {}",
                            field.name,
                            field_ty(field.required, &field.ty)
                        );
                        if let Some(text) = &field.description {
                            let _ = writeln!(out, "    \"\"\"{}\"\"\"", docstring(text));
                        }
                    }
                } else {
                    let _ = writeln!(out, "\n\n{name} = TypedDict(");
                    let _ = writeln!(out, "    {},", quoted(name));
                    out.push_str("    {\n");
                    for field in fields {
                        let _ = writeln!(
                            out,
                            "        {}: {},",
                            quoted(&field.name),
                            field_ty(field.required, &field.ty)
                        );
                    }
                    out.push_str("    },\n)\n");
                    if let Some(text) = description {
                        let _ = writeln!(out, "\"\"\"{}\"\"\"", docstring(text));
                    }
                }
            }
            Def::Alias {
                name,
                description,
                ty: aliased,
            } => {
                let _ = writeln!(out, "\n{name}: TypeAlias = {}", ty(aliased));
                if let Some(text) = description {
                    let _ = writeln!(out, "\"\"\"{}\"\"\"", docstring(text));
                }
            }
        }
    }
}

fn place(out: &mut String, option: &str, placement: &Placement, value: &str) {
    if matches!(placement, Placement::Cookie(_)) {
        return;
    }
    let _ = writeln!(out, "        if {option} is not None:");
    match placement {
        Placement::Header(name) => {
            let _ = writeln!(
                out,
                "            placed.headers[{}] = {value}",
                quoted(name)
            );
        }
        Placement::Query(name) => {
            let _ = writeln!(out, "            placed.query[{}] = {value}", quoted(name));
        }
        Placement::Subprotocol(prefix) => {
            let _ = writeln!(
                out,
                "            placed.protocols += [{} + {option}, \"wsgate\"]",
                quoted(prefix)
            );
        }
        Placement::Cookie(_) => {}
    }
}

fn method(out: &mut String, route: &Route) {
    let key = if route.key == "$default" {
        "None".to_string()
    } else {
        quoted(&route.key)
    };
    let params = ty(&route.params);
    let (signature, body) = if route.params_optional {
        (
            format!("message: {params} | None = None"),
            "message if message is not None else {}".to_string(),
        )
    } else {
        (format!("message: {params}"), "message".to_string())
    };
    let models = if route.models.is_empty() {
        String::new()
    } else {
        format!(" Request model: {}.", route.models.join(", "))
    };
    let name = &route.py_method;
    if route.two_way {
        let reply = ty(&route.reply);
        // An acknowledged two-way route whose id is a top-level field gets the correlation id
        // as its id, so its ack frame is recognised. Its call is written one argument a line
        // (as `ruff format` keeps it, with the trailing comma), then returned.
        let (call, value) = match route.ack.as_deref() {
            Some([field]) => (
                format!(
                    "reply = {}\n        ",
                    exploded(
                        "await self.request",
                        &[key.clone(), body.clone(), quoted(field)]
                    )
                ),
                "reply".to_string(),
            ),
            _ => (String::new(), format!("await self.request({key}, {body})")),
        };
        let value = if route.reply == Ty::Json {
            value
        } else {
            format!("cast({reply}, {value})")
        };
        let _ = writeln!(
            out,
            "\n    async def {name}(self, {signature}) -> {reply}:\n        \"\"\"Sends a `{}` message and returns its reply (two-way route).{models}\"\"\"\n        {call}return {value}",
            docstring(&route.key)
        );
    } else if let Some(path) = &route.ack {
        let fields: Vec<String> = path.iter().map(|f| quoted(f)).collect();
        let path_arg = format!("[{}]", fields.join(", "));
        let _ = writeln!(
            out,
            "\n    async def {name}(self, {signature}) -> None:\n        \"\"\"Sends a `{}` message; returns once the gateway acknowledged it.\n\n        Acknowledged route, id at `$.{}`: filled in when absent; kept and resent\n        until acknowledged.{models}\n        \"\"\"\n        await {}",
            docstring(&route.key),
            docstring(&path.join(".")),
            exploded("self.send_acked", &[key, body, path_arg])
        );
    } else {
        let _ = writeln!(
            out,
            "\n    async def {name}(self, {signature}) -> None:\n        \"\"\"Sends a `{}` message (one-way).{models}\"\"\"\n        await self.send({key}, {body})",
            docstring(&route.key)
        );
    }
}

/// `function(` then each argument on a line of its own with a trailing comma, then `)`, at a
/// method body's indentation: the form `ruff format` keeps whatever the lengths.
fn exploded(function: &str, args: &[String]) -> String {
    let mut out = format!("{function}(\n");
    for arg in args {
        let _ = writeln!(out, "            {arg},");
    }
    out.push_str("        )");
    out
}

/// The stage `Literal`.
pub(crate) fn stage_type(api: &Api) -> String {
    if api.stages.is_empty() {
        return "str".into();
    }
    let stages: Vec<String> = api.stages.iter().map(|s| quoted(s)).collect();
    format!("Literal[{}]", stages.join(", "))
}

/// The package's `__init__.py`.
pub(crate) fn client_source(api: &Api) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\"\"\"Typed WebSocket client of the API {}.\n\nGenerated by `wsgate sdk python`; do not edit, generate it again.\n\"\"\"\n\nfrom __future__ import annotations\n",
        quoted(&api.name)
    );
    out.push_str(RUNTIME);
    defs(&mut out, api);
    let _ = writeln!(
        out,
        "\n\nStage: TypeAlias = {}\n\"\"\"The API's stages.\"\"\"\n\nPush: TypeAlias = JsonValue\n\"\"\"A message pushed by a backend: any JSON.\"\"\"",
        stage_type(api)
    );
    let class = &api.class;
    let _ = writeln!(
        out,
        "\n\nclass {class}(Connection):\n    \"\"\"A client of the API {}.\n\n    One method per message route; the route field `{route}` is set by the client.\n    Two-way routes return the reply whose `{corr}` equals the one the client put\n    in the request: the backend must copy the request's `{corr}` into its reply.\n    \"\"\"\n",
        quoted(&api.name),
        route = api.route_field,
        corr = api.correlation_field
    );
    let mut params = vec![
        "base_url: str".to_string(),
        "*".into(),
        format!("stage: Stage = {}", quoted(api.default_stage())),
    ];
    if api.api_key.is_some() {
        params.push("api_key: str | None = None".into());
    }
    if api.token.is_some() {
        params.push("token: str | None = None".into());
    }
    params.extend([
        "headers: Mapping[str, str] | None = None".into(),
        "query: Mapping[str, str] | None = None".into(),
        "protocols: list[str] | None = None".into(),
        "reconnect: Reconnect | None = None".into(),
        "request_timeout: float = 30.0".into(),
        "acks: AckOptions | None = None".into(),
        "recover: bool = False".into(),
        "recover_from: Sequence[Position] = ()".into(),
    ]);
    out.push_str("    def __init__(\n        self,\n");
    for param in &params {
        let _ = writeln!(out, "        {param},");
    }
    out.push_str("    ) -> None:\n");
    out.push_str("        \"\"\"`base_url`: the gateway's ws:// or wss:// origin; the stage is appended.\"\"\"\n");
    out.push_str("        placed = Placement()\n");
    if let Some(placement) = &api.api_key {
        place(&mut out, "api_key", placement, "api_key");
    }
    if let Some(token) = &api.token {
        let value = if token.bearer {
            "\"Bearer \" + token"
        } else {
            "token"
        };
        place(&mut out, "token", &token.placement, value);
    }
    let _ = writeln!(
        out,
        "        super().__init__(\n            base_url.rstrip(\"/\") + \"/\" + stage,\n            {},\n            {},\n            placed,\n            headers=headers,\n            query=query,\n            protocols=protocols,\n            reconnect=reconnect,\n            request_timeout=request_timeout,\n            acks=acks,\n            recover=recover,\n            recover_from=recover_from,\n        )",
        quoted(&api.route_field),
        quoted(&api.correlation_field)
    );
    for route in &api.routes {
        method(&mut out, route);
    }
    out
}

/// The `pyproject.toml` of a package.
pub(crate) fn pyproject(
    api: &Api,
    description: &str,
    dependencies: &[&str],
    typing: &[&str],
) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|d| quoted(d))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let deps = list(dependencies);
    let extras = if typing.is_empty() {
        String::new()
    } else {
        format!(
            "\n[project.optional-dependencies]\ntyping = [{}]\n",
            list(typing)
        )
    };
    format!(
        "[project]\nname = \"{name}\"\nversion = \"0.0.0\"\ndescription = {description}\nrequires-python = \">=3.11\"\ndependencies = [{deps}]\n{extras}\n[build-system]\nrequires = [\"setuptools>=68\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[tool.setuptools.package-data]\n{name} = [\"py.typed\"]\n\n[tool.mypy]\nstrict = true\n",
        name = api.py_name,
        description = quoted(description)
    )
}

/// The README's section on acknowledged routes (none without them).
fn acks_text(api: &Api) -> String {
    let acked: Vec<String> = (api.routes.iter())
        .filter(|r| r.ack.is_some())
        .map(|r| format!("`{}`", r.py_method))
        .collect();
    if acked.is_empty() {
        return String::new();
    }
    format!(
        "\n## Acknowledged routes\n\n{} {} acknowledged by the gateway (`ack:` in the configuration): the\nmethod fills in the message id when the body has none, returns once the gateway answers\n`{{\"ack\": id}}`, and keeps the message until then: it is sent again after a reconnect, and\nafter a retryable nack or `{{\"pending\": id}}` (with backoff, `acks=AckOptions(...)`); the\ngateway drops copies it has seen, so each reaches the backend once. A nack that is not\nretryable raises `AckError`; closing the client raises its `CloseError` where a call still\nwaits. `client.unacknowledged` counts the messages waiting.\n",
        acked.join(", "),
        if acked.len() == 1 { "is" } else { "are" }
    )
}

/// Every file of the client package.
pub(crate) fn client(api: &Api) -> Files {
    let mut files = Files::new();
    files.insert(
        "pyproject.toml".into(),
        pyproject(
            api,
            &format!("Typed WebSocket client of the API {}.", api.name),
            &["websockets>=13,<16"],
            &[],
        ),
    );
    files.insert(format!("{}/__init__.py", api.py_name), client_source(api));
    files.insert(format!("{}/py.typed", api.py_name), String::new());
    let usage = format!(
        "## Use\n\n```python\nfrom {pkg} import {class}, Handlers\n\nclient = {class}(\"wss://gateway.example.com\", stage=\"{stage}\")\nclient.on(Handlers(on_push=print))\nawait client.connect()\n```\n\n",
        pkg = api.py_name,
        class = api.class,
        stage = api.default_stage()
    );
    files.insert(
        "README.md".into(),
        readme(
            api,
            &format!("{} (Python)", api.class),
            &(usage
                + &correlation_text(api)
                + &acks_text(api)
                + &recovery_text(
                    "`recover=True`",
                    "`on_group_message`, `on_recovered`, `on_not_recovered`",
                    "`client.positions`, then `recover_from=positions`",
                )),
        ),
    );
    files
}
