//! `rushline-worker` processes the run manages itself: pausing them (to measure accept alone or
//! pre-fill a queue) and scaling them (worker scaling, S3).
//!
//! Children inherit this process's environment (`RUSHLINE_REDIS_URL`, `RUSHLINE_DATABASE_URL`,
//! `RUSHLINE_KEY_NAMESPACE`, …), so they serve the same deployment as the API. They are stopped
//! with SIGTERM, which the contract says makes a worker persist what it took and exit 0; a child
//! still alive after the grace period is killed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::LoadError;

/// A set of worker processes.
#[derive(Debug)]
pub struct WorkerPool {
    binary: PathBuf,
    log_dir: Option<PathBuf>,
    children: Vec<Child>,
    started: usize,
}

impl WorkerPool {
    /// A pool of `binary` processes (none running yet); their output goes to
    /// `log_dir/worker-N.log` when given.
    pub fn new(binary: PathBuf, log_dir: Option<PathBuf>) -> Self {
        Self {
            binary,
            log_dir,
            children: Vec::new(),
            started: 0,
        }
    }

    /// Workers running.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// True when none run.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Process ids of the running workers.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    /// Starts or stops workers until `n` run.
    pub async fn set(&mut self, n: usize) -> Result<(), LoadError> {
        while self.children.len() > n {
            if let Some(child) = self.children.pop() {
                stop(child).await?;
            }
        }
        while self.children.len() < n {
            self.started += 1;
            let (stdout, stderr) = match &self.log_dir {
                Some(dir) => {
                    let path = dir.join(format!("worker-{}.log", self.started));
                    let file = std::fs::File::create(&path)
                        .map_err(LoadError::io(format!("creating {}", path.display())))?;
                    let copy = file
                        .try_clone()
                        .map_err(LoadError::io(format!("opening {}", path.display())))?;
                    (Stdio::from(file), Stdio::from(copy))
                }
                None => (Stdio::null(), Stdio::null()),
            };
            let child = Command::new(&self.binary)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .map_err(LoadError::io(format!("starting {}", self.binary.display())))?;
            self.children.push(child);
        }
        Ok(())
    }
}

/// SIGTERM, then up to 20 s for a graceful exit, then SIGKILL.
async fn stop(mut child: Child) -> Result<(), LoadError> {
    if let Some(pid) = child.id() {
        // `kill(1)` rather than a libc binding: one signal per stop is not a hot path.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(status) => {
            status.map_err(LoadError::io("waiting for a worker"))?;
        }
        Err(_) => {
            child
                .kill()
                .await
                .map_err(LoadError::io("killing a worker"))?;
        }
    }
    Ok(())
}
