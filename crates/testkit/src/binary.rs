//! Running a built program of the workspace to completion, bounded in time, and the
//! configuration checks both server programs' tests make of their binary ([`ServerBinary`]).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `program` with only `vars` in its environment and returns its output; a program still
/// running after `limit` is killed and the calling test fails (for a server binary, that means it
/// accepted a configuration it should have refused and started serving).
pub fn run_to_exit(
    program: impl AsRef<Path>,
    args: &[&str],
    vars: &[(&str, &str)],
    limit: Duration,
) -> Output {
    let program = program.as_ref();
    let child = Command::new(program)
        .env_clear()
        .envs(vars.iter().copied())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(limit) {
        Ok(output) => output.unwrap_or_else(|e| panic!("{}'s output: {e}", program.display())),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!(
                "{} {args:?} with {vars:?} was still running after {limit:?}",
                program.display()
            );
        }
    }
}

/// The variables `rushline-api` and `rushline-worker` both read (`rushline_runtime::config`'s
/// shared settings): each program's `--help` must list them.
const SHARED_VARIABLES: [&str; 6] = [
    "RUSHLINE_REDIS_URL",
    "RUSHLINE_DATABASE_URL",
    "RUSHLINE_KEY_NAMESPACE",
    "RUSHLINE_MAX_LOG_ENTRIES",
    "RUSHLINE_STATUS_TTL_SECS",
    "RUSHLINE_LOG_FORMAT",
];

/// The contract's defaults of the shared variables, as `--help` shows them.
const SHARED_DEFAULTS: [&str; 2] = [
    "[default: redis://127.0.0.1:6379]",
    "[default: postgres://rushline:rushline@127.0.0.1:5432/rushline]",
];

/// A shared variable's unusable value, which both programs refuse.
const SHARED_REFUSED: (&str, &str) = ("RUSHLINE_MAX_LOG_ENTRIES", "0");

/// A server program of the workspace (`rushline-api`, `rushline-worker`) whose configuration a
/// test checks: both refuse an unusable value at start-up naming its variable, and both list
/// every variable in `--help`. A test states only its program's own variables; the shared ones
/// are checked for it.
pub struct ServerBinary {
    program: &'static str,
}

impl ServerBinary {
    /// How long a run may take: one still running took its configuration and is serving, which
    /// is a failure in a configuration check.
    const LIMIT: Duration = Duration::from_secs(30);

    /// The built program at `program` (`env!("CARGO_BIN_EXE_…")`).
    pub fn new(program: &'static str) -> Self {
        Self { program }
    }

    /// Runs the program to its exit (see [`run_to_exit`]).
    pub fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        run_to_exit(self.program, args, vars, Self::LIMIT)
    }

    /// Each `(variable, value)` of `refused`, and a shared variable's unusable value, stops
    /// start-up with a message naming the variable.
    pub fn assert_refuses(&self, refused: &[(&str, &str)]) {
        for &(name, value) in std::iter::once(&SHARED_REFUSED).chain(refused) {
            let out = self.run(&[], &[(name, value)]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name}={value} started");
            assert!(stderr.contains(name), "{name}={value}: {stderr}");
        }
    }

    /// `--help` succeeds and lists the shared variables and `variables`, the contract's defaults
    /// of the shared ones and `defaults`.
    pub fn assert_help_lists(&self, variables: &[&str], defaults: &[&str]) {
        let out = self.run(&["--help"], &[]);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for name in SHARED_VARIABLES.iter().chain(variables) {
            assert!(help.contains(name), "{name} missing from --help:\n{help}");
        }
        for default in SHARED_DEFAULTS.iter().chain(defaults) {
            assert!(
                help.contains(default),
                "{default} missing from --help:\n{help}"
            );
        }
    }
}
