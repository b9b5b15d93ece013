//! A WebSocket client over a plain TCP socket that reads frames rather than messages and writes
//! frames exactly as the test lays them out (several in one write, pings between messages).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{DEADLINE, TestGateway};

/// One frame as it came over the wire.
#[derive(Debug)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// A WebSocket client that reads frames, not messages.
pub struct RawClient {
    tcp: TcpStream,
}

impl RawClient {
    /// Upgrades a plain TCP connection to `/prod`.
    pub async fn connect(gw: &TestGateway) -> Self {
        let (tcp, head) = upgrade(gw.addr, "/prod", "").await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { tcp }
    }

    /// The next frame from the server (pings skipped).
    pub async fn frame(&mut self) -> RawFrame {
        loop {
            let frame = tokio::time::timeout(DEADLINE, self.read_frame())
                .await
                .expect("a frame within the deadline");
            if frame.opcode != 0x9 {
                return frame;
            }
        }
    }

    async fn read_frame(&mut self) -> RawFrame {
        let mut head = [0u8; 2];
        self.tcp.read_exact(&mut head).await.expect("frame head");
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        assert_eq!(head[0] & 0x70, 0, "no RSV bits (no compression)");
        let len = match head[1] & 0x7f {
            126 => usize::from(self.tcp.read_u16().await.expect("length")),
            127 => usize::try_from(self.tcp.read_u64().await.expect("length")).expect("fits"),
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        self.tcp.read_exact(&mut payload).await.expect("payload");
        RawFrame {
            fin: head[0] & 0x80 != 0,
            opcode: head[0] & 0x0f,
            payload,
        }
    }

    /// The frames of the next message: all frames up to the one with FIN set.
    pub async fn message_frames(&mut self) -> Vec<RawFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.frame().await;
            let fin = frame.fin;
            frames.push(frame);
            if fin {
                return frames;
            }
        }
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.send_frames(&[(0x1, text.as_bytes())]).await;
    }

    /// Sends masked frames (opcode, payload), all in one write, so they reach the gateway in
    /// the same TCP segment.
    pub async fn send_frames(&mut self, frames: &[(u8, &[u8])]) {
        let mut bytes = Vec::new();
        for (opcode, payload) in frames {
            bytes.extend_from_slice(&masked(*opcode, payload));
        }
        self.tcp.write_all(&bytes).await.expect("send");
    }
}

/// Sends an upgrade request for `target` with `extra` header lines (each ending in CRLF) on a
/// raw socket, so the exact header spelling is under the test's control; returns the socket
/// once the answer's head is read, and the head.
pub async fn upgrade(addr: SocketAddr, target: &str, extra: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("tcp");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut byte))
            .await
            .expect("answer within the deadline")
            .expect("read");
        assert_eq!(n, 1, "connection closed before the answer");
        head.push(byte[0]);
    }
    (tcp, String::from_utf8_lossy(&head).into_owned())
}

/// One masked client frame (FIN set).
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let len = payload.len();
    let mut frame = vec![0x80 | opcode];
    match len {
        0..=125 => frame.push(0x80 | u8::try_from(len).expect("small")),
        126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(len).expect("fits").to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
