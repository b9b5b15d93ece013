//! Stage logging settings: the access log (`api.stages.<stage>.access_log`, AWS's
//! `AccessLogSettings`) and execution logging (`execution_log`, `route_execution_log`: AWS's
//! `DefaultRouteSettings` / `RouteSettings` `LoggingLevel` and `DataTraceEnabled`), and their
//! checks.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ApiConfig, ConfigError};

/// Largest access log format, as Amazon API Gateway's limit on the template (3 KB).
pub(super) const MAX_FORMAT_BYTES: usize = 3 * 1024;

/// `api.stages.<stage>.access_log`: one line per connect, message, disconnect and callback call.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// The line template: literal text and `$context.*` variables (see `docs/operations.md`).
    pub format: String,
    /// `stdout` or a file path.
    #[serde(default)]
    pub destination: AccessLogDestination,
    /// Size-based rotation of a file destination (absent: the file grows).
    #[serde(default)]
    pub rotation: Option<RotationConfig>,
    /// Lines waiting to be written; when full, more lines are dropped and counted.
    #[serde(default = "default_queue_lines")]
    pub queue_lines: usize,
    /// Bytes waiting to be written (with `queue_lines`, whichever is reached first).
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: usize,
}

fn default_queue_lines() -> usize {
    8192
}
fn default_queue_bytes() -> usize {
    4 << 20
}

/// Where access log lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(from = "String", into = "String")]
pub enum AccessLogDestination {
    /// The process's standard output.
    #[default]
    Stdout,
    /// A file, appended to (created when missing).
    File(PathBuf),
}

impl From<AccessLogDestination> for String {
    fn from(value: AccessLogDestination) -> Self {
        match value {
            AccessLogDestination::Stdout => "stdout".into(),
            AccessLogDestination::File(path) => path.display().to_string(),
        }
    }
}

impl From<String> for AccessLogDestination {
    fn from(value: String) -> Self {
        if value == "stdout" {
            Self::Stdout
        } else {
            Self::File(value.into())
        }
    }
}

/// `access_log.rotation`: when the file would pass `max_bytes`, it becomes `name.1` (`name.1`
/// becomes `name.2`, …) and at most `max_files` rotated files are kept.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Size at which the file is rotated (a line is never split across files).
    pub max_bytes: u64,
    /// Rotated files kept (`name.1` … `name.N`); older ones are deleted.
    pub max_files: usize,
}

/// Execution logging of a route: AWS's `LoggingLevel` and `DataTraceEnabled`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionLogConfig {
    /// `OFF`, `ERROR` (failures and refusals) or `INFO` (every step too).
    pub logging_level: LoggingLevel,
    /// Log request and response bodies (at INFO), cut to `data_trace_max_bytes`.
    pub data_trace: bool,
    /// Largest part of a body a data trace logs.
    pub data_trace_max_bytes: usize,
}

impl Default for ExecutionLogConfig {
    fn default() -> Self {
        Self {
            logging_level: LoggingLevel::Off,
            data_trace: false,
            data_trace_max_bytes: 1024,
        }
    }
}

/// AWS's `LoggingLevel`.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum LoggingLevel {
    /// Nothing.
    #[default]
    Off,
    /// Integration failures and refusals.
    Error,
    /// Every step, and failures.
    Info,
}

/// The execution logging of `route` on a stage: its `route_execution_log` entry, else the
/// stage's `execution_log`.
pub fn execution_log_for(stage: &super::StageConfig, route: &str) -> ExecutionLogConfig {
    stage
        .route_execution_log
        .get(route)
        .copied()
        .unwrap_or(stage.execution_log)
}

/// Checks every stage's logging settings: formats compile (an unknown variable names its key),
/// destinations and rotation make sense, route entries name routes.
pub(super) fn validate(api: &ApiConfig) -> Result<(), ConfigError> {
    // Each file has one writer: two stages rotating the same file would rename it under each
    // other and interleave partial lines.
    let mut files: Vec<(PathBuf, &str)> = Vec::new();
    for (name, stage) in &api.stages {
        let at = format!("api.stages.{name}");
        if let Some(log) = &stage.access_log {
            validate_access_log(&format!("{at}.access_log"), log)?;
            if let AccessLogDestination::File(path) = &log.destination {
                let path = lexical(path);
                if let Some((_, other)) = files.iter().find(|(seen, _)| *seen == path) {
                    return Err(ConfigError::invalid(
                        format!("{at}.access_log.destination"),
                        format!(
                            "`{}` is already the access log of stage `{other}`; give each stage its own file (or `stdout`)",
                            path.display()
                        ),
                    ));
                }
                files.push((path, name));
            }
        }
        check_trace(&format!("{at}.execution_log"), &stage.execution_log)?;
        for (route, settings) in &stage.route_execution_log {
            let here = format!("{at}.route_execution_log.{route}");
            if !api.routes.contains_key(route) {
                return Err(ConfigError::invalid(here, "no such route in api.routes"));
            }
            check_trace(&here, settings)?;
        }
    }
    Ok(())
}

/// `path` made absolute with `.` and `..` resolved by text (links are not followed: the file may
/// not exist yet).
fn lexical(path: &std::path::Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn check_trace(at: &str, settings: &ExecutionLogConfig) -> Result<(), ConfigError> {
    if settings.data_trace && settings.data_trace_max_bytes == 0 {
        return Err(ConfigError::invalid(
            format!("{at}.data_trace_max_bytes"),
            "must be at least 1 with data_trace",
        ));
    }
    Ok(())
}

fn validate_access_log(at: &str, log: &AccessLogConfig) -> Result<(), ConfigError> {
    if log.format.len() > MAX_FORMAT_BYTES {
        return Err(ConfigError::invalid(
            format!("{at}.format"),
            format!("longer than {MAX_FORMAT_BYTES} bytes"),
        ));
    }
    crate::access_log::Format::compile(&log.format)
        .map_err(|e| ConfigError::invalid(format!("{at}.format"), e.to_string()))?;
    match (&log.destination, &log.rotation) {
        (AccessLogDestination::File(path), _) if path.as_os_str().is_empty() => {
            return Err(ConfigError::invalid(
                format!("{at}.destination"),
                "give `stdout` or a file path",
            ));
        }
        (AccessLogDestination::Stdout, Some(_)) => {
            return Err(ConfigError::invalid(
                format!("{at}.rotation"),
                "rotation needs a file destination",
            ));
        }
        (_, Some(rotation)) if rotation.max_bytes == 0 => {
            return Err(ConfigError::invalid(
                format!("{at}.rotation.max_bytes"),
                "must be at least 1",
            ));
        }
        (_, Some(rotation)) if rotation.max_files == 0 || rotation.max_files > 1000 => {
            return Err(ConfigError::invalid(
                format!("{at}.rotation.max_files"),
                "must be between 1 and 1000",
            ));
        }
        _ => {}
    }
    if log.queue_lines == 0 {
        return Err(ConfigError::invalid(
            format!("{at}.queue_lines"),
            "must be at least 1",
        ));
    }
    if log.queue_bytes == 0 {
        return Err(ConfigError::invalid(
            format!("{at}.queue_bytes"),
            "must be at least 1",
        ));
    }
    Ok(())
}
