//! The `outagewatch` binary: parse the command line, load settings, start
//! logging, run a subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outagewatch::app::Application;
use outagewatch::config::Settings;
use outagewatch::telemetry;

#[derive(Parser)]
#[command(
    name = "outagewatch",
    version,
    about = "Open, crowdsourced outage-report aggregator"
)]
struct Cli {
    /// A settings file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the detection worker (the default).
    Serve,
    /// Run only the detection worker (needs Redis; scale it apart from the API).
    Worker,
    /// Print the effective settings (defaults, file, environment) and exit.
    Config,
    /// Run the detector over CSV files (`timestamp,value`) and write
    /// `OUT/<file name>` with `timestamp,value,anomaly_score`.
    Backtest {
        /// Directory for the scored files.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Add the detector's reasoning to every row (deciding window,
        /// observed, expected, dispersion, p-values, lifecycle event).
        #[arg(long)]
        explain: bool,
        /// Input CSV files.
        #[arg(required = true, value_name = "FILE.csv")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("outagewatch: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            println!("{settings:#?}");
            ExitCode::SUCCESS
        }
        Command::Backtest {
            out,
            files,
            explain,
        } => match outagewatch::backtest::run(&out, &files, &settings.detect, explain) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("outagewatch backtest: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Worker => {
            telemetry::init_tracing(&settings.log);
            run_logged(outagewatch::app::run_worker(settings))
        }
        Command::Serve => {
            telemetry::init_tracing(&settings.log);
            run_logged(serve(settings))
        }
    }
}

/// Runs a service to its end on an actix system; an error is logged once
/// and printed.
fn run_logged(service: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    match actix_web::rt::System::new().block_on(service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "outagewatch stopped with an error"
            );
            eprintln!("outagewatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
