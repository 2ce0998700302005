//! The `outagewatch` binary: parse the command line, load settings, start
//! logging, run a subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outagewatch::app::Application;
use outagewatch::config::Settings;
use outagewatch::domain::Registry;
use outagewatch::simulate::{
    self,
    hard::{self, HardSpec},
    model::{Scenario, Spec},
};
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
    Serve {
        /// Simulated history and live traffic with an outage every so often
        /// (see [demo] in config/default.toml): a system with data to look at.
        #[arg(long)]
        demo: bool,
    },
    /// Run only the HTTP API, without the detection worker (run workers
    /// apart with `outagewatch worker`; needs Redis to share data with them).
    Api,
    /// Run only the detection worker (needs Redis; scale it apart from the API).
    Worker,
    /// Print the effective settings (defaults, file, environment) and exit.
    Config,
    /// Generate realistic report traffic: history for the import endpoint,
    /// live reports over HTTP, or a scored run of the detector.
    Simulate {
        #[command(subcommand)]
        what: SimulateCommand,
    },
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

#[derive(clap::Args, Clone)]
struct ScenarioArgs {
    /// Services (the registry's first, then synthetic ones), popularity 1/rank.
    #[arg(long, default_value_t = 200)]
    services: usize,
    /// Days of traffic, ending now.
    #[arg(long, default_value_t = 35)]
    days: i64,
    /// Days at the start without injected outages (the baseline's history).
    #[arg(long, default_value_t = 7)]
    warmup_days: i64,
    /// Random outages of 3x to 20x, 30 to 180 minutes.
    #[arg(long, default_value_t = 24)]
    outages: usize,
    /// Leave out the replay of the March 2024 Meta outage.
    #[arg(long)]
    no_meta: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Unix seconds where the traffic ends; default now. With the seed it
    /// makes a scenario exactly reproducible.
    #[arg(long)]
    end_unix: Option<i64>,
}

impl ScenarioArgs {
    fn scenario(&self, registry: &Registry) -> Scenario {
        let now = self
            .end_unix
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        Scenario::synthetic(
            registry,
            &Spec {
                services: self.services,
                days: self.days,
                quiet_days: self.warmup_days,
                outages: self.outages,
                meta: !self.no_meta,
                seed: self.seed,
                start: now - self.days * 86_400,
            },
        )
    }
}

#[derive(Subcommand)]
enum SimulateCommand {
    /// Write the scenario as NDJSON for `POST /api/v1/admin/import`.
    History {
        #[command(flatten)]
        scenario: ScenarioArgs,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Run the detector over the scenario and score it against the outages
    /// and the hard cases; exits 1 when a must-hold fails.
    Evaluate {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Leave out the hard cases (recurring bursts, steps, growth, new
        /// services, gaps, quiet services), e.g. to compare with older runs.
        #[arg(long)]
        no_hard_cases: bool,
        /// Also write every figure as one JSON object to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Send reports to a running outagewatch.
    Live {
        #[command(flatten)]
        scenario: ScenarioArgs,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Reports per second, over all services.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// An outage while sending: SERVICE:MULTIPLIER, e.g. whatsapp:14.
        #[arg(long, value_name = "SERVICE:X")]
        outage: Option<String>,
    },
}

fn simulate(what: SimulateCommand, settings: &Settings) -> anyhow::Result<bool> {
    let registry = Registry::load(&settings.registry.path)?;
    match what {
        SimulateCommand::History { scenario, out } => {
            let sc = scenario.scenario(&registry);
            let lines = simulate::write_history(&sc, &registry, &out)?;
            eprintln!("{lines} lines written to {}", out.display());
            Ok(true)
        }
        SimulateCommand::Evaluate {
            scenario,
            no_hard_cases,
            json,
        } => {
            let mut sc = scenario.scenario(&registry);
            if !no_hard_cases {
                let spec = HardSpec::for_services(scenario.services);
                hard::add(&mut sc, &spec, scenario.warmup_days);
            }
            let from = sc.start + scenario.warmup_days * 86_400;
            simulate::print_evaluation(&sc, &settings.detect, from, json.as_deref())
        }
        SimulateCommand::Live {
            scenario,
            url,
            rate,
            seconds,
            outage,
        } => {
            let outage = match outage.as_deref() {
                Some(text) => {
                    let (id, x) = text
                        .split_once(':')
                        .and_then(|(id, x)| Some((id, x.parse::<f64>().ok()?)))
                        .ok_or_else(|| {
                            anyhow::anyhow!("--outage takes SERVICE:MULTIPLIER, got {text:?}")
                        })?;
                    Some((id.to_string(), x))
                }
                None => None,
            };
            let sc = scenario.scenario(&registry);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(simulate::send_live(
                &url,
                &sc,
                rate,
                seconds,
                outage.as_ref().map(|(id, x)| (id.as_str(), *x)),
            ))?;
            Ok(true)
        }
    }
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
    let mut settings = settings;
    match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Config => {
            print!("{}", settings.to_redacted_toml());
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
        Command::Simulate { what } => match simulate(what, &settings) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("outagewatch simulate: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Worker => {
            telemetry::init_tracing(&settings.log);
            run_logged(outagewatch::app::run_worker(settings))
        }
        Command::Api => {
            settings.worker.enabled = false;
            telemetry::init_tracing(&settings.log);
            run_logged(serve(settings))
        }
        Command::Serve { demo } => {
            settings.demo.enabled |= demo;
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
