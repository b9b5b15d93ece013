//! The dashboard page in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! opens the page, which connects, and every chart receives and draws points; when the gateway
//! drops the page's connection it reconnects by itself and the points keep coming. Then the
//! network is lost (a TCP proxy between the browser and the gateway drops the connection and
//! refuses new ones) while the publisher goes on; once it is back the page recovers what it
//! missed from the group's history: every update's sequence number is received and plotted
//! exactly once, with no gap. Run on the in-memory store and on two nodes on Redis (page on one
//! node, publisher on the other).
//!
//! Needs `chromium` and `chromedriver` on `PATH` (Debian: `apt-get install chromium
//! chromium-driver`); `CHROMEDRIVER` and `CHROME_BIN` name other binaries. Without them the test
//! fails and says so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use wsgate_example_dashboard::{Options, Running, STAGE, dialable, start};

mod netcut;

use netcut::Proxy;

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
            "--window-size=1200,900",
        ],
    });
    let mut capabilities = Capabilities::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    capabilities
}

/// What the page shows (for failure messages).
async fn page_state(client: &Client) -> String {
    let script = r#"
        const d = window.dashboard || {};
        const points = {};
        for (const c of document.querySelectorAll('canvas')) points[c.id] = c.dataset.points;
        return { status: document.getElementById('status').textContent,
                 received: d.received, reconnects: d.reconnects, recovered: d.recovered,
                 replayed: d.replayed, notRecovered: d.notRecovered, lastSeq: d.lastSeq, points };
    "#;
    match client.execute(script, vec![]).await {
        Ok(state) => state.to_string(),
        Err(error) => format!("(cannot read the page: {error})"),
    }
}

/// Polls `script` (which returns a boolean) until it is true or `WAIT` passes.
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

/// Every series has a chart with at least `min` points drawn and coloured pixels on it.
const CHARTS_DRAWN: &str = r#"
    const [min] = arguments;
    const canvases = Array.from(document.querySelectorAll('canvas'));
    if (canvases.length < 4) return false;
    return canvases.every(c => {
        if (Number(c.dataset.points) < min || c.width === 0) return false;
        const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
        return false;
    });
"#;

async fn received(client: &Client) -> anyhow::Result<u64> {
    let value = client
        .execute("return window.dashboard.received;", vec![])
        .await?;
    value.as_u64().context("received is a number")
}

/// What the page received and plotted: every update's sequence number in arrival order, and
/// each chart's points (as drawn) by sequence number.
const SEQUENCES: &str = r#"
    const plotted = {};
    for (const c of document.querySelectorAll('canvas')) {
        plotted[c.id] = (c.dataset.seqs || '').split(',').filter(s => s !== '').map(Number);
    }
    const d = window.dashboard;
    return { seqs: d.seqs, plotted, recovered: d.recovered, replayed: d.replayed,
             notRecovered: d.notRecovered };
"#;

/// `seqs` holds every number of `from..=to` exactly once, in order, with nothing between.
fn contiguous(seqs: &[u64], from: u64, to: u64) -> anyhow::Result<()> {
    for pair in seqs.windows(2) {
        anyhow::ensure!(
            pair[1] == pair[0] + 1,
            "{} follows {}: a gap or a repeat in {seqs:?}",
            pair[1],
            pair[0]
        );
    }
    let (first, last) = (seqs.first().copied(), seqs.last().copied());
    anyhow::ensure!(
        first.is_some_and(|f| f <= from) && last.is_some_and(|l| l >= to),
        "{from}..={to} is not covered by {seqs:?}"
    );
    Ok(())
}

/// Cuts the network between the page and the gateway while updates go on, then restores it:
/// the page recovers what it missed, and every update is received and plotted exactly once.
async fn lose_the_network(client: &Client, running: &Running, proxy: &Proxy) -> anyhow::Result<()> {
    let recovered_before = client
        .execute("return window.dashboard.recovered;", vec![])
        .await?;
    let mut published = running.published();
    proxy.cut();
    wait_until(
        client,
        "the page to see its connection lost",
        "return document.getElementById('status').dataset.state !== 'connected';",
        vec![],
    )
    .await?;
    let at_cut = *published.borrow();
    // Ten updates go out meanwhile, and the page tries to reconnect at least once, in vain.
    timeout(WAIT, published.wait_for(|n| *n >= at_cut + 10))
        .await
        .context("updates while the network is down")??;
    timeout(WAIT, proxy.refused().wait_for(|n| *n >= 1))
        .await
        .context("a reconnection attempt while the network is down")??;
    let at_restore = *published.borrow();
    proxy.restore();
    wait_until(
        client,
        "the page to reconnect and recover",
        "return window.dashboard.recovered > arguments[0] && document.getElementById('status').dataset.state === 'connected';",
        vec![recovered_before],
    )
    .await?;
    wait_until(
        client,
        "live updates after the recovery",
        "return window.dashboard.lastSeq >= arguments[0] + 3;",
        vec![json!(at_restore)],
    )
    .await?;
    // Let the charts draw what arrived.
    wait_until(
        client,
        "the charts to draw the last update",
        "const last = String(window.dashboard.lastSeq); return Array.from(document.querySelectorAll('canvas')).every(c => (c.dataset.seqs || '').split(',').pop() === last);",
        vec![],
    )
    .await?;
    let seen = client.execute(SEQUENCES, vec![]).await?;
    let numbers = |value: &Value| -> Vec<u64> {
        value
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    // Sequence numbers start at 0: `at_cut` updates were published before the cut.
    let (from, to) = (at_cut.saturating_sub(1), at_restore + 2);
    contiguous(&numbers(&seen["seqs"]), from, to).context("the updates received")?;
    let plotted = seen["plotted"].as_object().context("plotted")?;
    anyhow::ensure!(plotted.len() >= 4, "four charts: {seen}");
    for (chart, seqs) in plotted {
        contiguous(&numbers(seqs), from, to).with_context(|| format!("the points of {chart}"))?;
    }
    anyhow::ensure!(seen["notRecovered"] == 0, "nothing lost for good: {seen}");
    anyhow::ensure!(
        seen["replayed"].as_u64().unwrap_or(0) >= at_restore - at_cut,
        "the updates missed were replayed: {seen}, {} published while the network was down",
        at_restore - at_cut
    );
    eprintln!(
        "{} updates published while the network was down; {} replayed after the reconnects in all; every update received and plotted once",
        at_restore - at_cut,
        seen["replayed"]
    );
    Ok(())
}

async fn watch_the_page(client: &Client, running: &Running, proxy: &Proxy) -> anyhow::Result<()> {
    client.goto(&running.page_url()).await?;
    wait_until(
        client,
        "the page to connect",
        "return document.getElementById('status').dataset.state === 'connected';",
        vec![],
    )
    .await?;
    wait_until(
        client,
        "every chart to draw 5 points",
        CHARTS_DRAWN,
        vec![json!(5)],
    )
    .await?;
    // DASHBOARD_SCREENSHOT=dir keeps a picture of the page (to look at the charts).
    if let Some(dir) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        wait_until(client, "30 points", CHARTS_DRAWN, vec![json!(30)]).await?;
        let png = client.screenshot().await?;
        let name = format!("dashboard-{}-nodes.png", running.gateway_addrs().len());
        std::fs::write(PathBuf::from(dir).join(name), png)?;
    }

    // The gateway drops the page's connection; it reconnects by itself and keeps plotting.
    let gateway = dialable(running.gateway_addrs()[0]);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let list: Value = http
        .get(format!("http://{gateway}/{STAGE}/@connections"))
        .send()
        .await?
        .json()
        .await?;
    let id = list["connections"][0]
        .as_str()
        .context("the page's connection is listed")?
        .to_string();
    let deleted = http
        .delete(format!("http://{gateway}/{STAGE}/@connections/{id}"))
        .send()
        .await?;
    anyhow::ensure!(
        deleted.status() == 204,
        "DELETE answered {}",
        deleted.status()
    );
    wait_until(
        client,
        "the page to reconnect",
        "return window.dashboard.reconnects >= 1 && document.getElementById('status').dataset.state === 'connected';",
        vec![],
    )
    .await?;
    let before = received(client).await?;
    wait_until(
        client,
        "updates after the reconnect",
        "return window.dashboard.received >= arguments[0] + 3;",
        vec![json!(before)],
    )
    .await?;
    lose_the_network(client, running, proxy).await
}

async fn run_in_chromium(options: Options) {
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

    let proxy = Proxy::start().await.expect("the proxy starts");
    let running = start(Options {
        page_gateway: Some(proxy.addr()),
        ..options
    })
    .await
    .expect("example starts");
    proxy.forward_to(dialable(running.gateway_addrs()[0]));
    let driver = ChromeDriver::start(&driver_program)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(chrome_capabilities(&browser))
        .connect(&driver.url)
        .await
        .unwrap_or_else(|error| panic!("cannot start headless Chromium: {error}; {INSTALL_HINT}"));

    let outcome = watch_the_page(&client, &running, &proxy).await;

    let _ = client.close().await;
    driver.stop().await;
    running.shutdown().await;
    if let Err(error) = outcome {
        panic!("{error:#}");
    }
}

fn redis_url() -> String {
    std::env::var("WSGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key of a prefix on the test Redis when dropped.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else {
            return;
        };
        for pattern in [format!("{}:*", self.0), format!("{{{}}}:*", self.0)] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(keys).exec(&mut conn);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_plots_live_updates_and_reconnects() {
    run_in_chromium(Options {
        rate: 10.0,
        ..Options::ephemeral()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_on_one_node_plots_what_the_other_node_publishes() {
    let prefix = format!("wsgate-dashboard-browser-{}", std::process::id());
    let _cleanup = Cleanup(prefix.clone());
    run_in_chromium(Options {
        rate: 10.0,
        redis: Some(redis_url()),
        redis_prefix: prefix,
        ..Options::ephemeral()
    })
    .await;
}
