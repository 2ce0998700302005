//! A throwaway `redis-server` of our own, for the integration tests
//! (`tests/api`) and the benchmarks (`benches/support`), which both include
//! this file: its own temp dir, no persistence, a unix socket (tests) or a
//! free loopback port (benchmarks, as a deployment talks to Redis), killed
//! and reaped on drop. Never the machine's Redis.
//!
//! `redis-server` comes from `$REDIS_SERVER` or PATH; the README's test
//! command installs it. A missing binary is an error that names the fix,
//! never a silent skip.

// Each includer uses its own part of this (the tests the socket and
// pauses, the benchmarks the port and the pid).
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a fresh server has to answer PING.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Where the server listens.
#[derive(Debug, Clone)]
enum Listen {
    Socket(PathBuf),
    Port(u16),
}

pub struct RedisServer {
    process: Child,
    dir: tempfile::TempDir,
    listen: Listen,
    /// Arguments beyond the defaults, kept for a restart.
    extra: Vec<String>,
    /// SIGSTOPped: it must run again to die cleanly.
    stopped: bool,
}

impl RedisServer {
    /// On a unix socket in its temp dir (no port to race for).
    pub fn start() -> anyhow::Result<RedisServer> {
        let dir = temp_dir()?;
        let listen = Listen::Socket(dir.path().join("redis.sock"));
        Self::start_in(dir, listen)
    }

    /// On a free port of 127.0.0.1.
    pub fn start_on_tcp() -> anyhow::Result<RedisServer> {
        let mut last_error = None;
        // The free port may be taken between its release and redis' bind.
        for _attempt in 0..3 {
            match Self::start_in(temp_dir()?, Listen::Port(free_port()?)) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    }

    /// On `port` of 127.0.0.1, with `extra` arguments (a cluster node's).
    pub fn start_on_port_with(port: u16, extra: &[&str]) -> anyhow::Result<RedisServer> {
        Self::start_in_with(temp_dir()?, Listen::Port(port), extra)
    }

    fn start_in(dir: tempfile::TempDir, listen: Listen) -> anyhow::Result<RedisServer> {
        Self::start_in_with(dir, listen, &[])
    }

    fn start_in_with(
        dir: tempfile::TempDir,
        listen: Listen,
        extra: &[&str],
    ) -> anyhow::Result<RedisServer> {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let process = spawn(dir.path(), &listen, &extra)?;
        let mut server = RedisServer {
            process,
            dir,
            listen,
            extra,
            stopped: false,
        };
        server.wait_until_answering()?;
        Ok(server)
    }

    fn wait_until_answering(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.process.try_wait()? {
                bail!("redis-server exited: {status}\n{}", self.log());
            }
            match self.command(&["PING"]) {
                Ok(answer) if answer == "PONG" => return Ok(()),
                Ok(answer) => bail!("unexpected answer to PING: {answer:?}"),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => bail!(
                    "redis-server did not answer PING in time: {e}\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Kills the server (its data is gone: no persistence) and starts a new
    /// one where it listened.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        if let Listen::Socket(socket) = &self.listen {
            let _ = std::fs::remove_file(socket);
        }
        self.process = spawn(self.dir.path(), &self.listen, &self.extra)?;
        self.wait_until_answering()
    }

    pub fn kill(&mut self) {
        if self.stopped {
            // Ignore failure: this also runs from Drop.
            let _ = self.signal("-CONT");
            self.stopped = false;
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// SIGSTOP: the server hangs, its connections stay open.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal("-STOP")?;
        self.stopped = true;
        Ok(())
    }

    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal("-CONT")?;
        self.stopped = false;
        Ok(())
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.process.id().to_string()])
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill {signal} failed: {status}");
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        match &self.listen {
            Listen::Socket(socket) => format!("redis+unix://{}", socket.display()),
            Listen::Port(port) => format!("redis://127.0.0.1:{port}/0"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// One command over a fresh blocking connection; the answer as text
    /// (an integer as its digits, nil as empty).
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(self.commands(&[args])?.remove(0))
    }

    /// Commands one after the other over one fresh blocking connection
    /// (as `WAIT` needs the writes before it on its own connection); the
    /// answers as [`RedisServer::command`] gives them.
    pub fn commands(&self, commands: &[&[&str]]) -> anyhow::Result<Vec<String>> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut answers = Vec::with_capacity(commands.len());
        for args in commands {
            let (name, rest) = args.split_first().context("no command")?;
            let answer: redis::Value = redis::cmd(name).arg(rest).query(&mut conn)?;
            answers.push(match answer {
                redis::Value::Nil => String::new(),
                redis::Value::Int(n) => n.to_string(),
                other => redis::from_redis_value(other)?,
            });
        }
        Ok(answers)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("ow-redis-")
        .tempdir()
        .context("temp dir")
}

/// A port of 127.0.0.1 free when asked (it may be taken before use).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn spawn(dir: &Path, listen: &Listen, extra: &[String]) -> anyhow::Result<Child> {
    let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let mut command = Command::new(&binary);
    match listen {
        Listen::Socket(socket) => command
            .args(["--port", "0"])
            .arg("--unixsocket")
            .arg(socket),
        Listen::Port(port) => command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]),
    };
    command
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!("cannot start {binary:?}; install redis-server (the README's test command does) or set REDIS_SERVER")
        })
}
