//! A live progress bar on stderr (hidden when stderr is not a terminal or when disabled).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// The bar of one run.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `len_secs` seconds; hidden unless `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, len_secs: u64) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::new(len_secs.max(1));
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:24}] {pos}/{len}s {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self { bar }
    }

    /// A bar that never draws.
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    /// Restarts the bar for the next target.
    pub fn reset(&self, len_secs: u64) {
        self.bar.reset();
        self.bar.set_length(len_secs.max(1));
    }

    /// Sets the elapsed seconds and the status line.
    pub fn update(&self, pos_secs: u64, msg: String) {
        self.bar
            .set_position(pos_secs.min(self.bar.length().unwrap_or(u64::MAX)));
        self.bar.set_message(msg);
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
