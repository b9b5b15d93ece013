//! A minimal HTTP/1.1 keep-alive client over one TCP connection (hyper's connection API).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Largest response body read.
const MAX_BODY: usize = 1 << 20;

/// One keep-alive connection; requests are sent one at a time.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    driver: JoinHandle<()>,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpConn {
    /// Connects to `addr`, sending `authority` as the Host header.
    pub async fn connect(addr: SocketAddr, authority: &str, limit: Duration) -> Result<Self> {
        crate::net::ensure_loopback(&addr)?;
        let fut = async {
            let tcp = crate::net::tcp_connect(addr, None).await?;
            let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
            anyhow::Ok((sender, conn))
        };
        let (sender, conn) = timeout(limit, fut)
            .await
            .with_context(|| format!("connecting to {addr} timed out"))??;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            authority: authority.to_owned(),
            driver,
        })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        limit: Duration,
    ) -> Result<(u16, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .body(Full::new(body))?;
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading body: {e}"))?
                .to_bytes();
            anyhow::Ok((status, body))
        };
        match timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => bail!("request to {path} timed out"),
        }
    }
}

/// One request on a fresh connection.
pub async fn once(
    addr: SocketAddr,
    authority: &str,
    method: Method,
    path: &str,
    body: Bytes,
    limit: Duration,
) -> Result<(u16, Bytes)> {
    let mut c = HttpConn::connect(addr, authority, limit).await?;
    c.request(method, path, body, limit).await
}
