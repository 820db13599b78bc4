//! The Redis every [`TestEnv`](crate::TestEnv) of one test process shares (unless
//! `RUSHLINE_TEST_REDIS_URL` names another): a `redis-server` of the process's own.
//!
//! Why not the machine's Redis (issue 10, section 7): deleting a test's namespace there takes a
//! `SCAN` of every key the server holds, so a test's cleanup depended on what other programs
//! left in it — beside ~2 million keys of a load test, on a busy machine, a test failed with
//! `redis: timed out`. A server of the process's own holds nothing but the namespaces of this
//! process's tests, so what they do costs the same on any machine. It still runs on database 0
//! with the settings rushline requires (`noeviction`); tests that need persistence, crashes or
//! wipes start their own servers ([`crate::servers`]).
//!
//! It lives exactly as long as the test process, however that ends: a test binary never runs its
//! statics' destructors, and it may be killed. A shell watchdog (`Watched`) starts
//! `redis-server`, then reads its stdin until EOF; the writing end of that pipe is held by this
//! process only (close-on-exec, so not by the programs tests start), and the kernel closes it when
//! the process is gone. The watchdog then kills the server and deletes its directory. The private
//! cluster ([`crate::cluster`]) runs its nodes under the same watchdog.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use uuid::Uuid;

/// `$1` is a directory to delete once the program is gone (empty: none), the remaining arguments
/// are the program and its arguments (none: only the directory is watched).
const WATCHDOG: &str = r#"dir=$1
shift
child=
if [ $# -gt 0 ]; then
    "$@" </dev/null &
    child=$!
fi
cat >/dev/null
if [ -n "$child" ]; then
    kill -9 "$child" 2>/dev/null
    wait "$child" 2>/dev/null
fi
[ -z "$dir" ] || rm -rf "$dir""#;

/// How long one start may take to answer before another port is tried.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Ports tried before giving up (a port found free can be taken before the server binds it).
const START_ATTEMPTS: usize = 4;

struct ProcessRedis {
    url: String,
    /// Held, never used: dropping it would stop the server.
    _watchdog: Mutex<Watched>,
}

static PROCESS_REDIS: OnceLock<Result<ProcessRedis, String>> = OnceLock::new();

/// The URL of this process's own `redis-server`, started on first use (concurrent first callers
/// wait for the one start).
pub fn url() -> anyhow::Result<String> {
    match PROCESS_REDIS.get_or_init(|| start().map_err(|e| format!("{e:#}"))) {
        Ok(server) => Ok(server.url.clone()),
        Err(e) => Err(anyhow!("starting the test process's own redis-server: {e}")),
    }
}

fn start() -> anyhow::Result<ProcessRedis> {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        match start_on(free_port()?) {
            Ok(server) => return Ok(server),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    Err(anyhow!(
        "redis-server did not start (run scripts/setup to install it): {}",
        failures.join("; ")
    ))
}

fn start_on(port: u16) -> anyhow::Result<ProcessRedis> {
    let dir = std::env::temp_dir().join(format!("rushline-test-redis-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).context("creating the Redis data directory")?;
    let port = port.to_string();
    let dir_arg = dir.as_os_str();
    let watchdog = Watched::spawn(
        Some(&dir),
        "redis-server",
        [
            OsStr::new("--bind"),
            OsStr::new("127.0.0.1"),
            OsStr::new("--port"),
            OsStr::new(&port),
            OsStr::new("--dir"),
            dir_arg,
            // No persistence: the server dies with the process. rushline requires noeviction.
            OsStr::new("--save"),
            OsStr::new(""),
            OsStr::new("--appendonly"),
            OsStr::new("no"),
            OsStr::new("--maxmemory-policy"),
            OsStr::new("noeviction"),
        ],
    )?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if serves_from(&port, &dir) {
            return Ok(ProcessRedis {
                url: format!("redis://127.0.0.1:{port}"),
                _watchdog: Mutex::new(watchdog),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Dropping the watchdog stops whatever started and cleans up.
    drop(watchdog);
    Err(anyhow!(
        "no redis-server of ours answered on port {port} within {START_TIMEOUT:?}"
    ))
}

/// Does the server on `port` answer, and is it ours (its `dir` is the one we gave)? A port found
/// free may be taken by someone else's server before ours binds it.
fn serves_from(port: &str, dir: &Path) -> bool {
    let Ok(port) = port.parse::<u16>() else {
        return false;
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
        || stream.write_all(b"CONFIG GET dir\r\n").is_err()
    {
        return false;
    }
    let ours = dir.to_string_lossy().into_owned();
    let mut reply = Vec::new();
    let mut buffer = [0u8; 1024];
    // Read until the reply names our directory, or the server stops sending (read timeout).
    while let Ok(n @ 1..) = stream.read(&mut buffer) {
        reply.extend_from_slice(&buffer[..n]);
        if String::from_utf8_lossy(&reply).contains(&ours) {
            return true;
        }
    }
    false
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A program that dies with the test process, however that ends, or earlier when this is
/// dropped: a shell watchdog ([`WATCHDOG`]) runs it and SIGKILLs it on EOF of its stdin, whose
/// writing end only this value holds.
pub(crate) struct Watched {
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl Watched {
    /// Runs `program` with `args` (stdin, stdout and stderr on /dev/null) under a watchdog that
    /// deletes `remove_on_exit`, if given, once the program is gone.
    pub(crate) fn spawn<I, A>(
        remove_on_exit: Option<&Path>,
        program: &str,
        args: I,
    ) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        let mut command = watchdog(remove_on_exit.map_or(OsStr::new(""), Path::as_os_str));
        command.arg(program).args(args);
        Self::start(command, program)
    }

    /// Runs nothing: deletes `dir` when this is dropped or the test process ends, whichever
    /// comes first.
    pub(crate) fn directory(dir: &Path) -> anyhow::Result<Self> {
        Self::start(watchdog(dir.as_os_str()), "a directory")
    }

    fn start(mut command: Command, program: &str) -> anyhow::Result<Self> {
        let mut watchdog = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting sh to watch {program}"))?;
        let stdin = watchdog.stdin.take().context("no pipe to the watchdog")?;
        Ok(Self {
            watchdog,
            stdin: Some(stdin),
        })
    }
}

/// `sh` running [`WATCHDOG`] for `dir` (empty: none); the program and its arguments follow.
fn watchdog(dir: &OsStr) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("rushline-test-watchdog")
        .arg(dir);
    command
}

impl Drop for Watched {
    /// SIGKILLs the program (a crash, not a shutdown) and waits until the watchdog has cleaned
    /// up, so a port or directory is free once this returns.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}
