//! `wsgate reload`: asks the gateway running with a configuration file to re-read it, through
//! the admin API (`POST /@admin/api/reload`) on the callback listener (`callback.listen`, else
//! the main listener), on loopback when the listener is bound to every address. The answer
//! carries the refusal's one line, so the command prints what the gateway logged. Needs the
//! admin API (on by default when the callback API trusts loopback callers only; with bearer
//! callers `admin.enabled: true` and the token in `WSGATE_RELOAD_TOKEN`). `SIGHUP` does the
//! same without an answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// How long the command waits for the gateway's answer.
const TIMEOUT: Duration = Duration::from_secs(60);

/// `wsgate reload` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ReloadArgs {
    /// The gateway's base URL, e.g. `https://gw.internal:9090` (default: from the configuration).
    #[arg(long)]
    url: Option<String>,
    /// Bearer token for a callback API with `callback.auth` bearer tokens.
    #[arg(long, env = "WSGATE_RELOAD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Runs `wsgate reload` for the gateway running with the file at `path`: 0 reloaded, 1 refused
/// (the reason printed), 2 the gateway could not be asked. The file is not validated here: the
/// gateway does it, with its own environment.
pub(crate) fn run(path: &Path, args: &ReloadArgs) -> ExitCode {
    let url = match gateway_url(args.url.as_deref(), path) {
        Ok(url) => url,
        Err(code) => return code,
    };
    match runtime() {
        Ok(runtime) => runtime.block_on(ask(&url, args.token.as_deref(), args.url.is_none())),
        Err(code) => code,
    }
}

/// The base URL of the gateway to ask (without a final `/`): `given`, else the listeners of
/// the configuration file at `path`; the exit code (1, with the reason printed) when neither
/// says.
pub(crate) fn gateway_url(given: Option<&str>, path: &Path) -> Result<String, ExitCode> {
    let url = match given {
        Some(url) => url.to_string(),
        None => match crate::config::load_tree(path).map(|tree| default_url(&tree)) {
            Ok(Some(url)) => url,
            Ok(None) => {
                eprintln!(
                    "error: config key `listen`: not an address in {}; give --url",
                    path.display()
                );
                return Err(ExitCode::from(1));
            }
            Err(error) => {
                eprintln!("error: {error}");
                return Err(ExitCode::from(1));
            }
        },
    };
    Ok(url.trim_end_matches('/').to_string())
}

/// A runtime for one command's requests, or exit code 2 (the reason printed).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the runtime: {error}");
            ExitCode::from(2)
        })
}

async fn ask(url: &str, token: Option<&str>, from_file: bool) -> ExitCode {
    // Without a token nothing secret is sent, and the gateway is this machine's: its
    // certificate (made for the public name) is not checked against `127.0.0.1`.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .tls_danger_accept_invalid_certs(token.is_none())
        .build();
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot build the HTTP client: {error}");
            return ExitCode::from(2);
        }
    };
    let mut request = client
        .post(format!("{url}/@admin/api/reload"))
        .header("x-wsgate-admin", "1");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            eprintln!("error: cannot reach the gateway at {url}: {error}");
            if from_file {
                // The file's listeners are asked; an edited `listen` is not bound until the reload.
                eprintln!(
                    "hint: the address comes from the file; if its `listen` or `callback.listen` changed since the gateway read it, give --url with the address in force or send SIGHUP"
                );
            }
            return ExitCode::from(2);
        }
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        let deployment = &body["deployment"];
        println!(
            "reloaded: deployment {} (hash {})",
            deployment["id"].as_str().unwrap_or("?"),
            deployment["hash"].as_str().unwrap_or("?")
        );
        return ExitCode::SUCCESS;
    }
    match body["message"].as_str() {
        Some(message) if status.as_u16() == 409 || status.as_u16() == 422 => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Some(message) => {
            eprintln!("error: the gateway at {url} answered {status}: {message}");
            ExitCode::from(2)
        }
        None if status.as_u16() == 404 => {
            eprintln!(
                "error: the gateway at {url} serves no admin API (admin.enabled); send it SIGHUP instead"
            );
            ExitCode::from(2)
        }
        None => {
            eprintln!("error: the gateway at {url} answered {status}");
            ExitCode::from(2)
        }
    }
}

/// The callback listener of the configuration `tree` (else its main listener), with a listener
/// bound to every address asked on loopback; `https` when TLS is on. `None`: no address.
pub(crate) fn default_url(tree: &Value) -> Option<String> {
    let listen = |at: &Value| at.as_str().and_then(|a| a.parse::<SocketAddr>().ok());
    let addr = match tree.pointer("/callback/listen") {
        Some(callback) if !callback.is_null() => listen(callback)?,
        _ => listen(tree.get("listen")?)?,
    };
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let tls = tree.get("tls").is_some_and(|t| !t.is_null());
    let scheme = if tls { "https" } else { "http" };
    Some(format!("{scheme}://{}", SocketAddr::new(ip, addr.port())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_callback_listener_on_loopback() {
        let main = serde_json::json!({ "listen": "0.0.0.0:8080", "api": "not checked" });
        assert_eq!(default_url(&main).unwrap(), "http://127.0.0.1:8080");
        let separate = serde_json::json!({
            "listen": "0.0.0.0:8080",
            "callback": { "listen": "[::]:9090" },
            "tls": { "cert_file": "c.pem" },
        });
        assert_eq!(default_url(&separate).unwrap(), "https://[::1]:9090");
        assert_eq!(default_url(&serde_json::json!({ "listen": 8080 })), None);
    }
}
