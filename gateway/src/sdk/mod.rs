//! `wsgate sdk typescript|python OUT/ [--backend]`: typed client packages generated from the
//! configuration. The client side connects to a stage (API key, the `$connect` authorizer's
//! token in a header, the query or a subprotocol), has one method per message route with the
//! route's request model as its argument type, matches two-way replies to requests by a
//! correlation field, reconnects with backoff and surfaces close codes as typed errors. The
//! backend side (`--backend`) is a callback API client (`@connections`, groups, broadcast) that
//! signs with a bearer token or SigV4. Output is deterministic: the same configuration gives the
//! same bytes.

mod api;
mod backend;
mod names;
mod python;
mod schema;
mod typescript;

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::Config;

/// The body field that carries a two-way request's correlation id unless told otherwise.
pub(crate) const DEFAULT_CORRELATION_FIELD: &str = "correlationId";

/// The language of a generated package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Language {
    /// A TypeScript package (ES2020 modules; browsers and Node.js).
    Typescript,
    /// A Python package (3.11+, asyncio).
    Python,
}

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The language.
    pub(crate) language: Language,
    /// The backend's callback client instead of the client.
    pub(crate) backend: bool,
    /// The body field of two-way requests' correlation ids.
    pub(crate) correlation_field: String,
}

/// Why a package cannot be generated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SdkError {
    /// A model's schema uses what the generators cannot express.
    #[error("config key `api.models.{model}`: {reason}")]
    Schema {
        /// The model.
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value a client cannot be generated for.
    #[error("config key `{key}`: {reason}")]
    Unsupported {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A command-line option.
    #[error("{0}")]
    Option(String),
    /// Writing the output.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// The generated files: path relative to the output directory → contents.
pub(crate) type Files = BTreeMap<String, String>;

/// Generates the package `options` describe for `config`.
///
/// # Errors
/// [`SdkError`] naming the configuration key that cannot be turned into code.
pub(crate) fn generate(config: &Config, options: &Options) -> Result<Files, SdkError> {
    let suffix = if options.backend { "backend" } else { "client" };
    let api = api::Api::read(config, &options.correlation_field, suffix)?;
    Ok(match (options.language, options.backend) {
        (Language::Typescript, false) => typescript::client(&api),
        (Language::Python, false) => python::client(&api),
        (Language::Typescript, true) => backend::typescript(&api),
        (Language::Python, true) => backend::python(&api),
    })
}

/// Writes `files` under `out` (created if missing; files of earlier runs are overwritten).
///
/// # Errors
/// [`SdkError::Write`] naming the file.
pub(crate) fn write(out: &Path, files: &Files) -> Result<(), SdkError> {
    for (relative, contents) in files {
        let path = out.join(relative);
        let failed = |source| SdkError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        std::fs::write(&path, contents).map_err(failed)?;
    }
    Ok(())
}

/// `wsgate sdk LANGUAGE OUT [--backend] [--correlation-field NAME]`.
#[derive(Debug, clap::Args)]
pub(crate) struct SdkArgs {
    /// The language of the package.
    #[arg(value_enum)]
    pub(crate) language: Language,
    /// The directory to write the package into (created if missing).
    pub(crate) out: std::path::PathBuf,
    /// Generate the backend's callback API client (post, get, delete, groups) instead.
    #[arg(long)]
    pub(crate) backend: bool,
    /// The body field carrying two-way requests' correlation ids, which the backend echoes.
    #[arg(long, default_value = DEFAULT_CORRELATION_FIELD)]
    pub(crate) correlation_field: String,
}

/// Runs `wsgate sdk`: 0 when written, 1 for a configuration or option the generator refuses,
/// 2 when the files cannot be written.
pub(crate) fn run(config: &Config, args: &SdkArgs) -> std::process::ExitCode {
    let options = Options {
        language: args.language,
        backend: args.backend,
        correlation_field: args.correlation_field.clone(),
    };
    let files = match generate(config, &options) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    if let Err(error) = write(&args.out, &files) {
        eprintln!("error: {error}");
        return std::process::ExitCode::from(2);
    }
    println!("{}: {} files written", args.out.display(), files.len());
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests;
