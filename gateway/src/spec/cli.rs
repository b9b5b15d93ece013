//! The `wsgate import ...` and `wsgate export ...` subcommands: arguments, reading the inputs,
//! printing the result on stdout (or `--output`) and the import notes on stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{AsyncApiOptions, CfnOptions, Imported, SpecError, output};
use crate::config::Config;

/// `wsgate import`: turn an API definition into a wsgate configuration.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// An AWS SAM template (AWS::Serverless::Function and AWS::ApiGatewayV2::* resources).
    Sam(CfnArgs),
    /// A CloudFormation template (AWS::ApiGatewayV2::* and AWS::Lambda::Function resources).
    Cloudformation(CfnArgs),
    /// An AsyncAPI 3.0 or 2.6 document describing a WebSocket API.
    Asyncapi(AsyncApiArgs),
}

/// Arguments of `import sam` and `import cloudformation`.
#[derive(Debug, Args)]
pub struct CfnArgs {
    /// The template (YAML or JSON).
    template: PathBuf,
    /// YAML or JSON map of Lambda functions (logical id or FunctionName) to the URL or ARN
    /// wsgate invokes; functions not in it stay ARNs, invoked through the Lambda Invoke API.
    #[arg(long, value_name = "MAP")]
    functions: Option<PathBuf>,
    /// A template parameter's value (repeatable); others take their Default.
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    /// Logical id of the API to import, when the template has several WebSocket APIs.
    #[arg(long, value_name = "LOGICAL_ID")]
    api: Option<String>,
    /// AWS::Region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// AWS::AccountId.
    #[arg(long, default_value = "000000000000")]
    account_id: String,
    /// AWS::StackName.
    #[arg(long, default_value = "wsgate")]
    stack_name: String,
    /// `listen` of the configuration written.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Write the configuration here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Arguments of `import asyncapi`.
#[derive(Debug, Args)]
pub struct AsyncApiArgs {
    /// The AsyncAPI document (YAML or JSON).
    document: PathBuf,
    /// Stage variable `backend` of stages that lack it, used by operations without
    /// `x-wsgate-integration`.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    backend: String,
    /// `listen` of the configuration written.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Write the configuration here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// `wsgate export`: describe the configuration's APIs.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// AsyncAPI 3.0: the WebSocket API (servers per stage, an operation per route) and the
    /// callback API.
    Asyncapi(ExportArgs),
    /// OpenAPI 3.1: the callback, groups and broadcast API and the admin JSON API.
    Openapi(ExportArgs),
}

/// Arguments of the exports.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Write the document here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Output format of an export.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

fn read(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn write(output: Option<&Path>, text: &str) -> Result<(), SpecError> {
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| SpecError::Write(format!("{}: {e}", path.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn finish(result: Result<(), SpecError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

/// Runs `wsgate import ...`. Exit 0 with notes on stderr, 1 on an error.
pub fn import(command: &ImportCommand) -> ExitCode {
    finish(run_import(command))
}

fn run_import(command: &ImportCommand) -> Result<(), SpecError> {
    let (source, imported, output) = match command {
        ImportCommand::Sam(args) | ImportCommand::Cloudformation(args) => {
            let label = args.template.display().to_string();
            let functions = match &args.functions {
                Some(path) => read_map(path)?,
                None => BTreeMap::new(),
            };
            let mut parameters = BTreeMap::new();
            for given in &args.parameters {
                let (name, value) = given.split_once('=').ok_or_else(|| {
                    SpecError::Invalid(format!("--parameter {given}: expected NAME=VALUE"))
                })?;
                parameters.insert(name.to_string(), value.to_string());
            }
            let options = CfnOptions {
                functions,
                parameters,
                api: args.api.clone(),
                region: args.region.clone(),
                account_id: args.account_id.clone(),
                stack_name: args.stack_name.clone(),
                listen: args.listen.clone(),
            };
            let text = read(&args.template)?;
            let imported = super::import_cloudformation(&label, &text, &options)?;
            (label, imported, args.output.as_deref())
        }
        ImportCommand::Asyncapi(args) => {
            let label = args.document.display().to_string();
            let options = AsyncApiOptions {
                backend: args.backend.clone(),
                listen: args.listen.clone(),
            };
            let text = read(&args.document)?;
            let imported = super::import_asyncapi(&label, &text, &options)?;
            (label, imported, args.output.as_deref())
        }
    };
    let Imported { config, notes } = imported;
    for note in &notes {
        eprintln!("warning: {}", note.render(&source));
    }
    let name = Path::new(&source)
        .file_name()
        .map_or(source.clone(), |n| n.to_string_lossy().into_owned());
    let text = output::to_yaml(
        &config,
        &[format!("wsgate configuration imported from {name}")],
    )?;
    // What is written must load: the importer's output is checked as `wsgate check` would.
    let loaded = Config::from_yaml(&text).map_err(|e| {
        SpecError::Invalid(format!("the imported configuration does not load: {e}"))
    })?;
    crate::validate::Models::compile(&loaded.api).map_err(|e| {
        SpecError::Invalid(format!("the imported configuration does not load: {e}"))
    })?;
    write(output, &text)
}

fn read_map(path: &Path) -> Result<BTreeMap<String, String>, SpecError> {
    let text = read(path)?;
    serde_saphyr::from_str(&text).map_err(|e| SpecError::Syntax {
        path: path.display().to_string(),
        line: 0,
        message: format!("expected a map of function names to URLs or ARNs: {e}"),
    })
}

/// Runs `wsgate export ...` on the configuration at `config`.
pub fn export(command: &ExportCommand, config: Option<&Path>) -> ExitCode {
    finish(run_export(command, config))
}

fn run_export(command: &ExportCommand, config: Option<&Path>) -> Result<(), SpecError> {
    let path = config.ok_or_else(|| {
        SpecError::Invalid("--config FILE is required (or set WSGATE_CONFIG)".into())
    })?;
    let config = Config::load(path)?;
    let (document, args) = match command {
        ExportCommand::Asyncapi(args) => (super::asyncapi(&config)?, args),
        ExportCommand::Openapi(args) => (super::openapi(&config), args),
    };
    let text = match args.format {
        Format::Yaml => output::to_yaml(&document, &[])?,
        Format::Json => output::to_json(&document),
    };
    write(args.output.as_deref(), &text)
}
