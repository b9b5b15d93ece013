//! The bounded, non-blocking writer of one access log: lines are handed to a thread of its own
//! through a queue bounded in lines and bytes; when it is full a line is dropped and counted
//! (`wsgate_access_log_dropped_total`), so a slow disk never holds a connection up. The thread
//! flushes whenever the queue runs empty, and ends (flushing) when the log is dropped.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError};

use super::rotate::RotatingFile;
use crate::config::{AccessLogConfig, AccessLogDestination};
use crate::telemetry;

/// The sending side.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: SyncSender<String>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    dropped: metrics::Counter,
}

/// Where the thread writes.
enum Output {
    Stdout(io::BufWriter<io::Stdout>),
    File(RotatingFile),
}

impl Output {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Self::Stdout(out) => {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")
            }
            Self::File(file) => file.write_line(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout(out) => out.flush(),
            Self::File(file) => file.flush(),
        }
    }
}

impl Writer {
    /// Opens the destination of `config` and starts the thread writing to it.
    ///
    /// # Errors
    /// When the file cannot be opened or the thread cannot start.
    pub(crate) fn start(stage: &str, config: &AccessLogConfig) -> io::Result<Self> {
        let output = match &config.destination {
            AccessLogDestination::Stdout => Output::Stdout(io::BufWriter::new(io::stdout())),
            AccessLogDestination::File(path) => {
                Output::File(RotatingFile::open(path, config.rotation)?)
            }
        };
        let (tx, rx) = mpsc::sync_channel::<String>(config.queue_lines);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let queued = Arc::clone(&queued_bytes);
        let stage_name = stage.to_string();
        std::thread::Builder::new()
            .name(format!("access-log-{stage}"))
            .spawn(move || run(rx, output, &queued, &stage_name))?;
        Ok(Self {
            tx,
            queued_bytes,
            max_bytes: config.queue_bytes,
            dropped: metrics::counter!(telemetry::ACCESS_LOG_DROPPED_TOTAL, "stage" => stage.to_string()),
        })
    }

    /// Queues `line` (without its line break), or drops and counts it when the queue is full.
    /// Never blocks.
    pub(crate) fn offer(&self, line: String) {
        let len = line.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        // One line always fits into an empty queue, however long.
        if before != 0 && before + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.dropped.increment(1);
            return;
        }
        if self.tx.try_send(line).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.dropped.increment(1);
        }
    }
}

fn run(rx: mpsc::Receiver<String>, mut output: Output, queued: &AtomicUsize, stage: &str) {
    let mut failing = false;
    let mut report = |result: io::Result<()>| match result {
        Ok(()) => failing = false,
        Err(error) => {
            // Once per run of failures, not once per line.
            if !failing {
                tracing::warn!(stage, %error, "cannot write the access log");
            }
            failing = true;
        }
    };
    loop {
        let line = match rx.try_recv() {
            Ok(line) => line,
            Err(TryRecvError::Empty) => {
                report(output.flush());
                match rx.recv() {
                    Ok(line) => line,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        queued.fetch_sub(line.len(), Ordering::AcqRel);
        report(output.write_line(&line));
    }
    report(output.flush());
}
