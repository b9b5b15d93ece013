//! The chat page in a real browser: headless Chromium driven over WebDriver (chromedriver) opens
//! the page in two windows, joins under two names, each sees the other's message, and a
//! connection the gateway drops comes back by itself.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (Debian: `apt-get install chromium
//! chromium-driver`); `CHROMEDRIVER` and `CHROME_BIN` name other binaries. Without them the test
//! fails and says so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use wsgate_example_chat::{Options, Running, STAGE, start};

/// Upper bound on any one wait for the page.
const WAIT: Duration = Duration::from_secs(20);
/// How often the page is looked at while waiting.
const POLL: Duration = Duration::from_millis(50);

const INSTALL_HINT: &str = "the browser test needs Chromium and chromedriver: install them \
     (Debian: `apt-get install chromium chromium-driver`) or point CHROME_BIN and CHROMEDRIVER \
     at them";

/// `$VAR` when set, else the first of `names` found on `PATH`.
fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A chromedriver on an ephemeral loopback port, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start(program: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}; {INSTALL_HINT}", program.display()))?;
        let stdout = child.stdout.take().context("chromedriver stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // "ChromeDriver was started successfully on port 41235."
        let port = timeout(WAIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return Ok(rest.trim_end_matches('.').trim().parse::<u16>()?);
                }
            }
            bail!("chromedriver exited before it was ready")
        })
        .await
        .context("chromedriver did not start in time")??;
        // Keep reading so chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn chrome_capabilities(binary: &Path) -> Capabilities {
    let options = json!({
        "binary": binary,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1024,768",
        ],
    });
    let mut capabilities = Capabilities::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    capabilities
}

/// What the current window shows: status line and messages (for failure messages).
async fn page_state(client: &Client) -> String {
    let script = r#"
        const status = document.getElementById('status');
        const items = Array.from(document.querySelectorAll('#messages li'), li => li.textContent);
        return { status: status && status.textContent, messages: items };
    "#;
    match client.execute(script, vec![]).await {
        Ok(state) => state.to_string(),
        Err(error) => format!("(cannot read the page: {error})"),
    }
}

/// Polls `script` (which returns a boolean) in the current window until it is true or `WAIT`
/// passes.
async fn wait_until(
    client: &Client,
    what: &str,
    script: &str,
    args: Vec<Value>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        if client.execute(script, args.clone()).await? == Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {WAIT:?} waiting for {what}; the page shows {}",
                page_state(client).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_connected(client: &Client, name: &str) -> anyhow::Result<()> {
    wait_until(
        client,
        &format!("{name} to be connected"),
        "return document.getElementById('status').dataset.state === 'connected';",
        vec![],
    )
    .await
}

async fn wait_message(client: &Client, from: &str, text: &str) -> anyhow::Result<()> {
    wait_until(
        client,
        &format!("the message {text:?} from {from}"),
        r#"
            const [from, text] = arguments;
            return Array.from(document.querySelectorAll('#messages li.message')).some(li =>
                li.querySelector('.from').textContent === from &&
                li.querySelector('.text').textContent === text);
        "#,
        vec![json!(from), json!(text)],
    )
    .await
}

async fn join(client: &Client, name: &str) -> anyhow::Result<()> {
    client
        .find(Locator::Id("name"))
        .await?
        .send_keys(name)
        .await?;
    client.find(Locator::Id("join")).await?.click().await?;
    wait_connected(client, name).await
}

async fn say(client: &Client, text: &str) -> anyhow::Result<()> {
    client
        .find(Locator::Id("message"))
        .await?
        .send_keys(text)
        .await?;
    client.find(Locator::Id("send")).await?.click().await?;
    Ok(())
}

async fn chat_in_two_windows(client: &Client, running: &Running) -> anyhow::Result<()> {
    let page = running.page_url();
    let first = client.window().await?;
    client.goto(&page).await?;
    join(client, "alice").await?;

    let second = client.new_window(false).await?.handle;
    client.switch_to_window(second.clone()).await?;
    client.goto(&page).await?;
    join(client, "bob").await?;

    let mut members = running.members();
    timeout(WAIT, members.wait_for(|m| m.len() == 2))
        .await
        .context("the backend did not record both members")??;

    client.switch_to_window(first.clone()).await?;
    say(client, "hello from alice").await?;
    client.switch_to_window(second.clone()).await?;
    wait_message(client, "alice", "hello from alice").await?;

    say(client, "hi alice, bob here").await?;
    client.switch_to_window(first.clone()).await?;
    wait_message(client, "bob", "hi alice, bob here").await?;
    // The sender sees its own message too, as every member does.
    wait_message(client, "alice", "hello from alice").await?;

    // When the gateway drops alice, her page reconnects by itself under a new connection id.
    let dropped = members
        .borrow()
        .iter()
        .find(|(_, member)| member.name == "alice")
        .map(|(id, _)| id.clone())
        .context("alice is a member")?;
    let url = format!(
        "http://{}/{STAGE}/@connections/{dropped}",
        running.gateway_addr()
    );
    let deleted = reqwest::Client::new().delete(url).send().await?;
    anyhow::ensure!(
        deleted.status() == 204,
        "DELETE answered {}",
        deleted.status()
    );
    // Typed while the connection is gone (or going): kept by the client until acknowledged,
    // sent again on the next connection, delivered once.
    say(client, "said while away").await?;
    timeout(
        WAIT,
        members.wait_for(|m| {
            m.iter()
                .any(|(id, member)| member.name == "alice" && *id != dropped)
        }),
    )
    .await
    .context("alice did not reconnect")??;
    wait_connected(client, "alice").await?;
    say(client, "back again").await?;
    client.switch_to_window(second).await?;
    wait_message(client, "alice", "back again").await?;
    let copies = client
        .execute(
            r#"return Array.from(document.querySelectorAll('#messages li.message .text'))
                .filter(t => t.textContent === 'said while away').length;"#,
            vec![],
        )
        .await?;
    anyhow::ensure!(
        copies == json!(1),
        "the message sent while away arrived {copies} times; the page shows {}",
        page_state(client).await
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browser_windows_chat() {
    let driver_program = find_program("CHROMEDRIVER", &["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver not found; {INSTALL_HINT}"));
    let browser = find_program(
        "CHROME_BIN",
        &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
    )
    .unwrap_or_else(|| panic!("Chromium not found; {INSTALL_HINT}"));

    let running = start(Options::ephemeral()).await.expect("example starts");
    let driver = ChromeDriver::start(&driver_program)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(chrome_capabilities(&browser))
        .connect(&driver.url)
        .await
        .unwrap_or_else(|error| panic!("cannot start headless Chromium: {error}; {INSTALL_HINT}"));

    let outcome = chat_in_two_windows(&client, &running).await;

    let _ = client.close().await;
    driver.stop().await;
    running.shutdown().await;
    if let Err(error) = outcome {
        panic!("{error:#}");
    }
}
