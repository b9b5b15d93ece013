//! The admin page in headless Chromium (WebDriver through chromedriver): it loads, its figures
//! move while messages flow, and its "disconnect" button closes a connection (whose
//! `$disconnect` runs once). An ignored test renders `docs/img/admin.png`:
//! `cargo test -p wsgate --test it admin_browser::screenshot -- --ignored`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `scripts/test.sh` installs them); `CHROME_BIN` and `CHROMEDRIVER` name other binaries.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

const HINT: &str = "install chromium and chromedriver (Debian: `apt-get install chromium \
                    chromium-driver`) or set CHROME_BIN and CHROMEDRIVER";
/// Upper bound on one wait for the page.
const WAIT: Duration = Duration::from_secs(20);

/// `$var`, else the first of `names` on `PATH`.
fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{} not found; {HINT}", names[0]))
}

/// A headless Chromium under a chromedriver on an ephemeral port (both ended on drop).
struct Browser {
    client: Client,
    _driver: Child,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Self {
        let driver_program = program("CHROMEDRIVER", &["chromedriver"]);
        let chrome = program(
            "CHROME_BIN",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let mut driver = Command::new(&driver_program)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HINT}", driver_program.display()));
        let mut lines = BufReader::new(driver.stdout.take().expect("stdout")).lines();
        let port = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver starts");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot start headless Chromium: {e}; {HINT}"));
        Self {
            client,
            _driver: driver,
        }
    }

    /// The text of the element `#id`.
    async fn text(&self, id: &str) -> String {
        let script =
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;";
        match self.client.execute(script, vec![json!(id)]).await {
            Ok(Value::String(text)) => text,
            _ => String::new(),
        }
    }

    /// Waits until `#id`'s text satisfies `done`.
    async fn wait_text(&self, id: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.text(id).await;
            if done(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "#{id} never showed {what} (shows {text:?}; status {:?})",
                self.text("status").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Sends `sendmessage` frames on `ws` every 20 ms until `stop` (at most for `WAIT`).
fn load(mut ws: Ws, stop: Arc<AtomicBool>, fail_every: usize) -> tokio::task::JoinHandle<Ws> {
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < WAIT {
            n += 1;
            let text = if fail_every > 0 && n.is_multiple_of(fail_every) {
                "fail"
            } else {
                "hi"
            };
            send_text(
                &mut ws,
                &format!(r#"{{"action":"sendmessage","text":"{text}"}}"#),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ws
    })
}

fn number(text: &str) -> f64 {
    text.trim_end_matches(['k', 'M']).parse().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_live_figures_and_disconnects() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut watched, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let loader = connect(&gw.ws_url("/prod")).await;
    let browser = Browser::start(1280, 1000).await;
    browser
        .client
        .goto(&gw.http_url("/@admin"))
        .await
        .expect("page opens");
    browser
        .wait_text("conn-node", "2 connections", |t| t == "2")
        .await;
    // The cluster table shows what the node serves (a memory store: this node alone).
    let hash = gw.gateway().deployment().hash;
    browser
        .wait_text("nodes", "this node's deployment", |t| {
            t.contains(hash.as_str())
        })
        .await;

    // Messages flow: the rate and the total move on the page.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(loader, Arc::clone(&stop), 0);
    browser
        .wait_text("rate-in", "a message rate", |t| number(t) > 0.0)
        .await;
    let first = number(&browser.text("total-in").await);
    browser
        .wait_text("total-in", "a growing total", |t| number(t) > first)
        .await;
    stop.store(true, Ordering::Relaxed);
    let _loader = running.await.expect("load task");

    // Disconnect the watched connection from its row.
    let button = browser
        .client
        .find(Locator::Css(&format!(
            "tr[data-id='{id}'] button.disconnect"
        )))
        .await
        .expect("the connection's row has a disconnect button");
    button.click().await.expect("click");
    assert_eq!(expect_close(&mut watched).await.0, 1000);
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["connectionId"], id.as_str());
    browser
        .wait_text("conn-node", "1 connection", |t| t == "1")
        .await;
    browser.close().await;
    // Exactly one $disconnect: nothing else reached the backend's /disconnect.
    while let Some(r) = backend.try_next().await {
        assert_ne!(r.path, "/disconnect", "a second $disconnect");
    }
}

/// Renders `docs/img/admin.png` (run by hand; see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/img/admin.png"]
async fn screenshot() {
    let backend = Backend::start(|r| {
        if String::from_utf8_lossy(&r.body).contains("fail") {
            Reply::lambda(502, None)
        } else {
            Reply::lambda(200, None)
        }
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let client = http();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, group) in ["lobby", "lobby", "lobby", "support"].iter().enumerate() {
        let (ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
        let r = client
            .put(gw.http_url(&format!("/prod/@connections/{id}/groups/{group}")))
            .send()
            .await
            .expect("join");
        assert_eq!(r.status(), 204);
        tasks.push(load(ws, Arc::clone(&stop), if i == 0 { 25 } else { 0 }));
    }
    // The test backend records every request in a bounded channel: keep it drained.
    let backend = Arc::new(backend);
    let drain = Arc::clone(&backend);
    tokio::spawn(async move {
        loop {
            drain.next().await;
        }
    });
    let browser = Browser::start(1280, 1500).await;
    browser
        .client
        .goto(&gw.http_url("/@admin"))
        .await
        .expect("page opens");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let png = browser.client.screenshot().await.expect("screenshot");
    stop.store(true, Ordering::Relaxed);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/admin.png");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("docs/img");
    std::fs::write(&path, png).expect("write the screenshot");
    browser.close().await;
}
