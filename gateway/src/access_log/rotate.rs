//! An append-only log file rotated by size: when the next line would take it past
//! `max_bytes`, `name.N-1` becomes `name.N` (the old `name.N` is replaced), …, `name` becomes
//! `name.1`, and a new `name` is started. A line is never split across files.
//!
//! Written here rather than taken from a crate: `tracing-appender` rotates by time only, and
//! the rest of what is needed (rename a handful of files, reopen) is shorter than the
//! configuration of a general rotation crate.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::RotationConfig;

/// A log file, perhaps rotated.
#[derive(Debug)]
pub(crate) struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    rotation: Option<RotationConfig>,
}

impl RotatingFile {
    /// Opens `path` for appending (created when missing).
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub(crate) fn open(path: &Path, rotation: Option<RotationConfig>) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
            size,
            rotation,
        })
    }

    /// Appends `line` and a line break, rotating first when it would not fit.
    ///
    /// # Errors
    /// When writing or rotating fails.
    pub(crate) fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if let Some(rotation) = self.rotation
            && self.size > 0
            && self.size + len > rotation.max_bytes
        {
            self.rotate(rotation.max_files)?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    /// Writes out what is buffered.
    ///
    /// # Errors
    /// When writing fails.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    fn rotate(&mut self, max_files: usize) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..max_files).rev() {
            match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = BufWriter::new(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `path.n`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_size_and_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("wsgate-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("access.log");
        let rotation = RotationConfig {
            max_bytes: 20,
            max_files: 2,
        };
        let mut file = RotatingFile::open(&path, Some(rotation)).expect("open");
        for n in 0..5 {
            // 10 bytes with the line break: two lines per file.
            file.write_line(&format!("line {n:03}")).expect("write");
        }
        file.flush().expect("flush");
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("read");
        assert_eq!(read(path.clone()), "line 004\n");
        assert_eq!(read(numbered(&path, 1)), "line 002\nline 003\n");
        assert_eq!(read(numbered(&path, 2)), "line 000\nline 001\n");
        assert!(!numbered(&path, 3).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
