//! Loopback-only addressing, source-address spreading over 127.0.0.0/8, and socket setup.
//!
//! Every target must resolve to a loopback address: the tool refuses anything else.
//! Client sockets can be bound to 127.0.0.2, 127.0.0.3, ... before `connect` (with
//! `IP_BIND_ADDRESS_NO_PORT`, so the port is picked per 4-tuple at connect time). Each
//! (source, destination) pair then has its own ~28k ephemeral ports.

use anyhow::{Context, Result, bail};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// File descriptors a process keeps for itself (runtime, pipes, listeners, HTTP clients).
pub const FD_RESERVE: u64 = 1_000;
/// Upper bound on connections held by one process, whatever the fd limit says.
pub const MAX_CONNS_PER_PROCESS: u64 = 19_000;

/// Fails unless `addr` is on the loopback network.
pub fn ensure_loopback(addr: &SocketAddr) -> Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        bail!("refusing non-loopback target {addr}: load may only target 127.0.0.0/8 or ::1")
    }
}

/// Resolves `host:port` to a loopback socket address.
pub async fn resolve_loopback(host_port: &str) -> Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(host_port)
        .await
        .with_context(|| format!("resolving {host_port}"))?;
    let addr = addrs
        .find(|a| a.ip().is_loopback())
        .with_context(|| format!("{host_port} has no loopback address"))?;
    ensure_loopback(&addr)?;
    Ok(addr)
}

/// Splits `scheme://host:port/path?query` into `(host:port, path-and-query)`.
pub fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .with_context(|| format!("not a URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("URL without host: {url}");
    }
    let authority = if authority.contains(':') || authority.starts_with('[') {
        authority.to_owned()
    } else if url.starts_with("https") || url.starts_with("wss") {
        bail!("TLS URLs are not supported: {url}")
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

/// The source address of connection `index` when spreading over `count` addresses
/// (`127.0.0.2 ..= 127.0.0.(count+1)`), or `None` when not spreading.
pub fn source_addr(index: u64, count: u32, target: &SocketAddr) -> Option<IpAddr> {
    if count == 0 || !target.ip().is_loopback() || !target.is_ipv4() {
        return None;
    }
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    let off = u32::try_from(index % u64::from(count)).unwrap_or(0);
    Some(IpAddr::V4(Ipv4Addr::from(base + off)))
}

/// Opens a TCP connection with `TCP_NODELAY`, bound to `src` first when given.
pub async fn tcp_connect(target: SocketAddr, src: Option<IpAddr>) -> io::Result<TcpStream> {
    // Created non-blocking in the socket(2) call itself.
    let sock = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    sock.set_tcp_nodelay(true)?;
    if let Some(ip) = src {
        // Best effort: without it each source address still has its own port range.
        let _ = nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    let std_stream: std::net::TcpStream = sock.into();
    TcpSocket::from_std_stream(std_stream).connect(target).await
}

/// A listener with `SO_REUSEADDR` and the given backlog.
pub fn listen(addr: SocketAddr, backlog: u32) -> Result<TcpListener> {
    ensure_loopback(&addr)?;
    listen_any(addr, backlog)
}

/// [`listen`] on any address: only for servers that answer and send no load (the standalone
/// backend and the fault proxy in a test namespace); load targets stay loopback-only.
pub fn listen_any(addr: SocketAddr, backlog: u32) -> Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr).with_context(|| format!("binding {addr}"))?;
    Ok(sock.listen(backlog)?)
}

/// The soft `RLIMIT_NOFILE` of this process.
pub fn nofile_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// How many connections one process of this tool may hold.
pub fn conns_per_process() -> u64 {
    nofile_limit()
        .saturating_sub(FD_RESERVE)
        .clamp(1, MAX_CONNS_PER_PROCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_remote_targets() {
        assert!(ensure_loopback(&"127.0.0.1:80".parse().unwrap()).is_ok());
        assert!(ensure_loopback(&"10.0.0.1:80".parse().unwrap()).is_err());
    }

    #[test]
    fn spreads_sources() {
        let t: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(source_addr(0, 16, &t), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(source_addr(17, 16, &t), Some("127.0.0.3".parse().unwrap()));
        assert_eq!(source_addr(5, 0, &t), None);
    }

    #[test]
    fn splits_urls() {
        let (a, p) = split_url("ws://127.0.0.1:8080/prod").unwrap_or_default();
        assert_eq!((a.as_str(), p.as_str()), ("127.0.0.1:8080", "/prod"));
        let (a, p) = split_url("http://localhost").unwrap_or_default();
        assert_eq!((a.as_str(), p.as_str()), ("localhost:80", "/"));
    }
}
