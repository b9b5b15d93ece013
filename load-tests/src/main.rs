//! `wsgate-load` command-line entry point.

use anyhow::Result;
use clap::Parser;
use std::time::Duration;
use wsgate_load::cli::{Cli, Cmd};
use wsgate_load::raw::{self, RawConfig};
use wsgate_load::scenario::faults;
use wsgate_load::{backend, faultproxy, recovery_cmd, run, worker};

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b.enable_all().build()?
    };
    Ok(rt)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Raw(a) => {
            let cfg = RawConfig {
                listen: a.listen,
                registry: !a.no_registry,
                queue: a.queue,
                upstream: a.upstream,
                ..RawConfig::default()
            };
            runtime(a.threads)?.block_on(raw::run_standalone(
                cfg,
                Duration::from_secs(a.max_seconds),
                a.lifeline,
            ))
        }
        Cmd::Backend(a) => runtime(a.threads)?.block_on(backend::run_standalone(
            a.listen,
            Duration::from_secs(a.max_seconds),
            a.reset_percent,
        )),
        Cmd::Faultproxy(a) => {
            runtime(1)?.block_on(faultproxy::run(a.listen, a.upstream, a.control))
        }
        Cmd::Worker(a) => runtime(a.threads)?.block_on(worker::run_child()),
        Cmd::Faults(a) => runtime(a.threads)?.block_on(faults::main(
            "faults",
            a.plan(false),
            a.out.clone(),
            a.fail_on_loss,
        )),
        Cmd::Soak(a) => runtime(a.threads)?.block_on(faults::main(
            "soak",
            a.plan(true),
            a.out.clone(),
            a.fail_on_loss,
        )),
        Cmd::Recovery(a) => runtime(a.threads)?.block_on(async {
            tokio::select! {
                r = recovery_cmd::execute(a) => r,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            }
        }),
        scenario => {
            let Some(cfg) = scenario.run_config()? else {
                return Ok(());
            };
            runtime(cfg.threads)?.block_on(async move {
                // Ctrl-C drops the run, which stops every server and worker it started.
                tokio::select! {
                    r = run::execute(cfg) => r.map(|_| ()),
                    _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
                }
            })
        }
    }
}
