//! Running a built program of the workspace to completion, bounded in time.

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
