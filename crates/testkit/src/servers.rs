//! Private Redis and PostgreSQL server processes, for tests that crash, stop or wipe them.
//!
//! The shared servers of `scripts/setup` serve every other test, so a test that takes a server
//! down starts its own: a `redis-server` or a fresh PostgreSQL cluster (`initdb`) on a free
//! loopback port, with its data in a temporary directory removed on drop. Both binaries come
//! from the Debian packages `scripts/setup` installs.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (CI does) its commands run
//! as the `postgres` user through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use uuid::Uuid;

/// Redis's durability settings for a private server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `appendfsync always`: what rushline ships (scripts/setup, docker-compose.yml); every
    /// acknowledged write survives a crash.
    Always,
    /// `appendfsync everysec`: a crash may lose about a second of acknowledged writes.
    EverySec,
}

/// A `redis-server` of the test's own.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    fsync: Fsync,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with AOF on in a new temporary directory.
    pub async fn start(fsync: Fsync) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("rushline-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).context("creating the Redis data directory")?;
        let mut server = Self {
            port: free_port()?,
            dir,
            fsync,
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    /// Starts a server with the durability settings rushline ships (`appendfsync always`).
    pub async fn shipped() -> anyhow::Result<Self> {
        Self::start(Fsync::Always).await
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: a crash, with whatever the fsync policy lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port and directory: the AOF is replayed.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let fsync = match self.fsync {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
        };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", ""])
            .args(["--maxmemory-policy", "noeviction"])
            // DEBUG (POPULATE, SLEEP …) from loopback only: tests fill and stall their servers.
            .args(["--enable-debug-command", "local"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (run scripts/setup to install it)")?;
        self.child = Some(child);
        let client = redis::Client::open(self.url())?;
        let ready = async {
            loop {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                    && redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .context("redis-server did not answer within 20 s")
    }

    /// Stops the server and deletes its data: it comes back empty on the next restart.
    pub fn wipe(&mut self) -> anyhow::Result<()> {
        self.kill();
        std::fs::remove_dir_all(&self.dir)?;
        std::fs::create_dir_all(&self.dir)?;
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of the test's own, with a `rushline` superuser (trust auth, loopback).
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PostgresServer {
    /// `initdb` in a new temporary directory, then start.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin()?;
        let dir = std::env::temp_dir().join(format!("rushline-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        if running_as_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let server = Self {
            port: free_port()?,
            dir,
            bin,
        };
        server
            .pg("initdb")
            .args([
                "-U",
                "rushline",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(server.data())
            .stdout(Stdio::null())
            .status()
            .context("initdb")?
            .success()
            .then_some(())
            .context("initdb failed")?;
        server.resume()?;
        Ok(server)
    }

    /// The server's `postgres` database, as the `rushline` superuser (admin URL for
    /// [`crate::TestEnv::on`]).
    pub fn admin_url(&self) -> String {
        format!("postgres://rushline@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m immediate`: every backend dies at once, as in a crash.
    pub fn crash(&self) -> anyhow::Result<()> {
        let status = self
            .pg("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data())
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("pg_ctl stop failed");
        }
        Ok(())
    }

    /// `pg_ctl start`, waiting until it accepts connections (recovery included).
    pub fn resume(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=off \
             -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let status = self
            .pg("pg_ctl")
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.join("server.log"))
            .arg("-D")
            .arg(self.data())
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("pg_ctl start failed; see {}", self.dir.display());
        }
        Ok(())
    }

    /// SIGSTOP to the postmaster and every backend: connections stay open, nothing answers —
    /// a hung database, not a dead one.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal_all("-STOP")
    }

    /// SIGCONT: undoes [`PostgresServer::freeze`].
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal_all("-CONT")
    }

    fn signal_all(&self, signal: &str) -> anyhow::Result<()> {
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .context("reading postmaster.pid (is the server running?)")?;
        let postmaster = pidfile
            .lines()
            .next()
            .context("empty postmaster.pid")?
            .trim();
        let children = Command::new("pgrep").args(["-P", postmaster]).output()?;
        let mut pids = vec![postmaster.to_owned()];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        run(Command::new("kill").arg(signal).args(&pids))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command for one of PostgreSQL's programs, as the `postgres` user when we are root.
    fn pg(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .pg("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// The newest installed PostgreSQL's `bin` directory (Debian layout).
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .context("no /usr/lib/postgresql (run scripts/setup)")?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no PostgreSQL server installed (run scripts/setup)")
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    if !command.status()?.success() {
        bail!("{command:?} failed");
    }
    Ok(())
}
