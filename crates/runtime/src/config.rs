//! Configuration: one typed parser for arguments and environment variables.
//!
//! Each program declares its settings once, as a clap `Parser` whose every field has a `long`
//! flag, an `env` variable, a default and its limits (`value_parser!(u64).range(..)`). Settings
//! both programs must agree on live in [`SharedArgs`], flattened into each and read into the
//! [`Shared`] each program's `Config` holds; settings in milliseconds parse straight to a
//! `Duration` ([`millis`]). [`parse`] then reads them, so:
//!
//! - a value out of range or malformed stops start-up with a message naming the variable
//!   (never a silent clamp);
//! - `--help` lists every variable with its default;
//! - an empty variable counts as unset (`RUSHLINE_ADMIN_TOKEN=` disables admin endpoints), as it
//!   always has.
//!
//! The environment is read through a lookup function, so tests configure a program without
//! touching the process's environment.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, ValueEnum};

/// Why a program cannot start with its configuration, or that it should print help instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` or `--version`: not a failure; print this and exit 0.
    #[error("{0}")]
    Info(String),
    /// A variable (or its flag) holds an unusable value.
    #[error("{variable}: {problem}")]
    Invalid {
        /// The environment variable, e.g. `RUSHLINE_ACCEPT_BATCH`.
        variable: String,
        /// What is wrong with its value, and what would do.
        problem: String,
    },
    /// The command line itself is wrong (an unknown flag, say).
    #[error("{0}")]
    Usage(String),
}

/// How logs are written (`RUSHLINE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum LogFormat {
    /// For people: one coloured line per event on a terminal, plain text otherwise.
    Pretty,
    /// For machines: one JSON object per line.
    Json,
}

/// Settings `rushline-api` and `rushline-worker` must agree on: where Redis and PostgreSQL are,
/// the key namespace, the decision-log bound and how long statuses stay in Redis. Declared once,
/// flattened into both programs' arguments.
#[derive(Clone, Args)]
pub struct SharedArgs {
    /// Redis URL; or Redis Cluster: a comma-separated list of node URLs
    #[arg(
        long,
        env = "RUSHLINE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// `1`: the one Redis URL is a Redis Cluster node (a list of URLs is a cluster anyway)
    #[arg(
        long,
        env = "RUSHLINE_REDIS_CLUSTER",
        default_value = "0",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub redis_cluster: bool,

    /// PostgreSQL URL
    #[arg(
        long,
        env = "RUSHLINE_DATABASE_URL",
        default_value = "postgres://rushline:rushline@127.0.0.1:5432/rushline",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Optional segment after `rushline:` in every Redis key (several deployments on one Redis);
    /// the API's and the workers' must match
    #[arg(long, env = "RUSHLINE_KEY_NAMESPACE")]
    pub key_namespace: Option<String>,

    /// Per-campaign decided batches waiting for PostgreSQL past which workers pause deciding and
    /// decisions at once are shed with 503; at least 1
    #[arg(
        long,
        env = "RUSHLINE_MAX_LOG_ENTRIES",
        default_value_t = rushline_queue::DEFAULT_MAX_LOG_ENTRIES,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_log_entries: u64,

    /// Seconds Redis keeps a persisted request's status; at least 1
    #[arg(
        long,
        env = "RUSHLINE_STATUS_TTL_SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub status_ttl_secs: u64,

    /// Log format: `pretty` for people, `json` for machines
    #[arg(
        long,
        env = "RUSHLINE_LOG_FORMAT",
        default_value = "pretty",
        ignore_case = true
    )]
    pub log_format: LogFormat,
}

impl SharedArgs {
    /// How long Redis keeps a persisted request's status.
    pub fn status_ttl(&self) -> Duration {
        Duration::from_secs(self.status_ttl_secs)
    }

    /// Whether logs are JSON lines.
    pub fn log_json(&self) -> bool {
        self.log_format == LogFormat::Json
    }
}

/// The settings of [`SharedArgs`], checked by the parser and in the units the programs use. Each
/// program's `Config` holds one (`config.shared`), so what `rushline-api` and `rushline-worker`
/// must agree on is read, named and documented in one place.
#[derive(Clone)]
pub struct Shared {
    /// `RUSHLINE_REDIS_URL`: a Redis URL, or Redis Cluster's node URLs separated by commas.
    pub redis_url: String,
    /// `RUSHLINE_REDIS_CLUSTER`: the one URL is a Redis Cluster node.
    pub redis_cluster: bool,
    /// `RUSHLINE_DATABASE_URL`.
    pub database_url: String,
    /// `RUSHLINE_KEY_NAMESPACE`: optional segment after `rushline:` in every Redis key; the API's
    /// and the workers' must match.
    pub key_namespace: Option<String>,
    /// `RUSHLINE_MAX_LOG_ENTRIES`: per-campaign decided batches waiting for PostgreSQL past which
    /// workers stop deciding the campaign and the API sheds decisions at once with 503.
    pub max_log_entries: u64,
    /// `RUSHLINE_STATUS_TTL_SECS`: how long Redis keeps a persisted request's status.
    pub status_ttl: Duration,
    /// `RUSHLINE_LOG_FORMAT`: `json` for machines, `pretty` for people.
    pub log_json: bool,
}

impl From<SharedArgs> for Shared {
    fn from(args: SharedArgs) -> Self {
        Self {
            status_ttl: args.status_ttl(),
            log_json: args.log_json(),
            redis_url: args.redis_url,
            redis_cluster: args.redis_cluster,
            database_url: args.database_url,
            key_namespace: args.key_namespace,
            max_log_entries: args.max_log_entries,
        }
    }
}

/// Secrets stay out of logs and panics: the URLs show without their passwords.
impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_cluster", &self.redis_cluster)
            .field("database_url", &redact_url(&self.database_url))
            .field("key_namespace", &self.key_namespace)
            .field("max_log_entries", &self.max_log_entries)
            .field("status_ttl", &self.status_ttl)
            .field("log_json", &self.log_json)
            .finish()
    }
}

/// The value parser of a setting given in whole milliseconds, at least `min`: the program gets
/// a [`Duration`], and `--help` and errors speak of the milliseconds the variable holds.
pub fn millis(min: u64) -> impl TypedValueParser<Value = Duration> {
    clap::value_parser!(u64)
        .range(min..)
        .map(Duration::from_millis)
}

/// Parses `P` from `args` (the program name first, as `std::env::args_os` gives it) and from
/// the variables `lookup` finds: a flag given on the command line wins over its variable, and a
/// variable unset or empty takes the default.
pub fn parse<P: Parser>(
    args: impl IntoIterator<Item = OsString>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<P, ConfigError> {
    let documented = P::command();
    let mut args = args.into_iter();
    let mut argv = vec![args.next().unwrap_or_else(|| documented.get_name().into())];
    // Variables become flags placed before the real ones, so a real flag overrides its variable
    // (`args_override_self`); clap's own environment reading is off, so `lookup` is the only
    // source and an empty variable is simply absent.
    for arg in documented.get_arguments() {
        if let (Some(variable), Some(long)) = (arg.get_env(), arg.get_long())
            && let Some(value) = lookup(&variable.to_string_lossy()).filter(|v| !v.is_empty())
        {
            let mut flag = OsString::from(format!("--{long}="));
            flag.push(value);
            argv.push(flag);
        }
    }
    argv.extend(args);
    let parser = P::command()
        .args_override_self(true)
        .mut_args(|arg| arg.env(None::<&'static str>));
    let matches = match parser.try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(e) => return Err(explain(&documented, e)),
    };
    P::from_arg_matches(&matches).map_err(|e| explain(&documented, e))
}

/// Parses `P` from this process's command line and environment.
pub fn from_process<P: Parser>() -> Result<P, ConfigError> {
    parse(std::env::args_os(), |name| std::env::var(name).ok())
}

/// For `main`: the configuration, or the process ends — `--help` printed and exit 0, or the
/// problem (naming the variable) on standard error and exit 2, the usual code for bad usage.
pub fn or_exit<T>(program: &str, parsed: Result<T, ConfigError>) -> T {
    match parsed {
        Ok(config) => config,
        Err(ConfigError::Info(text)) => {
            print!("{text}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(2)
        }
    }
}

/// Turns clap's error into one that names the environment variable behind the flag.
fn explain(documented: &clap::Command, error: clap::Error) -> ConfigError {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // The parser ran without `env` (see `parse`); the help shows the documented command,
            // which lists every variable.
            ConfigError::Info(documented.clone().render_long_help().to_string())
        }
        ErrorKind::DisplayVersion => ConfigError::Info(documented.clone().render_version()),
        _ => {
            let variable = match error.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(flag)) => variable_of(documented, flag),
                _ => None,
            };
            let problem = problem_of(&error);
            match variable {
                Some(variable) => ConfigError::Invalid { variable, problem },
                None => ConfigError::Usage(problem),
            }
        }
    }
}

/// The variable of the argument clap names as `flag` (`--accept-batch <ACCEPT_BATCH>`).
fn variable_of(documented: &clap::Command, flag: &str) -> Option<String> {
    let long = flag
        .strip_prefix("--")?
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    documented
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|variable| variable.to_string_lossy().into_owned())
}

/// What is wrong, in one line: the value, and why clap refused it.
fn problem_of(error: &clap::Error) -> String {
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    let reason = match (error.kind(), std::error::Error::source(error)) {
        (ErrorKind::ValueValidation, Some(source)) => source.to_string(),
        (ErrorKind::InvalidValue, _) => match error.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => format!("expected one of {}", valid.join(", ")),
            _ => "not a valid value".to_owned(),
        },
        _ => first_line(error),
    };
    match value {
        Some(value) => format!("{value:?} is not usable: {reason}"),
        None => reason,
    }
}

/// Clap's own message without its `error: ` prefix and usage hints.
fn first_line(error: &clap::Error) -> String {
    let rendered = error.kind().to_string();
    let text = error.render().to_string();
    let line = text.lines().next().unwrap_or(&rendered);
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

pub use rushline_domain::secret::redact_url;

/// Shows a secret as set or not, never its value.
pub struct Redacted<'a, T>(pub &'a Option<T>);

impl<T> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(\"***\")"),
            None => f.write_str("None"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[command(flatten)]
        shared: SharedArgs,
        /// Batch size; 1 to 10
        #[arg(long, env = "DEMO_BATCH", default_value_t = 5,
            value_parser = clap::value_parser!(u64).range(1..=10))]
        batch: u64,
    }

    fn demo(args: &[&str], vars: &[(&str, &str)]) -> Result<Demo, ConfigError> {
        parse(
            std::iter::once("demo")
                .chain(args.iter().copied())
                .map(OsString::from),
            |name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            },
        )
    }

    #[test]
    fn defaults_apply_and_empty_counts_as_unset() {
        let parsed = demo(&[], &[("DEMO_BATCH", ""), ("RUSHLINE_KEY_NAMESPACE", "")]).unwrap();
        assert_eq!(parsed.batch, 5);
        assert_eq!(parsed.shared.key_namespace, None);
        assert_eq!(parsed.shared.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(parsed.shared.status_ttl(), Duration::from_secs(600));
        assert!(!parsed.shared.log_json());
    }

    #[test]
    fn a_flag_overrides_its_variable() {
        let parsed = demo(&["--batch", "7"], &[("DEMO_BATCH", "3")]).unwrap();
        assert_eq!(parsed.batch, 7);
        assert_eq!(demo(&[], &[("DEMO_BATCH", "3")]).unwrap().batch, 3);
    }

    #[test]
    fn out_of_range_names_the_variable() {
        let err = demo(&[], &[("DEMO_BATCH", "11")]).err().unwrap();
        assert!(err.to_string().starts_with("DEMO_BATCH: \"11\""), "{err}");
        let err = demo(&[], &[("RUSHLINE_MAX_LOG_ENTRIES", "0")])
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("RUSHLINE_MAX_LOG_ENTRIES"),
            "{err}"
        );
        let err = demo(&[], &[("RUSHLINE_LOG_FORMAT", "xml")]).err().unwrap();
        assert!(err.to_string().contains("pretty, json"), "{err}");
        assert!(
            demo(&[], &[("RUSHLINE_LOG_FORMAT", "JSON")])
                .unwrap()
                .shared
                .log_json()
        );
    }

    #[test]
    fn the_cluster_flag_is_a_boolean_named_in_its_errors() {
        assert!(!demo(&[], &[]).unwrap().shared.redis_cluster);
        for yes in ["1", "true", "yes", "on"] {
            let parsed = demo(&[], &[("RUSHLINE_REDIS_CLUSTER", yes)]).unwrap();
            assert!(parsed.shared.redis_cluster, "{yes}");
        }
        assert!(
            !demo(&[], &[("RUSHLINE_REDIS_CLUSTER", "0")])
                .unwrap()
                .shared
                .redis_cluster
        );
        let err = demo(&[], &[("RUSHLINE_REDIS_CLUSTER", "maybe")])
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("RUSHLINE_REDIS_CLUSTER"),
            "{err}"
        );
    }

    #[test]
    fn help_lists_variables_and_defaults() {
        let Err(ConfigError::Info(help)) = demo(&["--help"], &[]) else {
            panic!("--help is not an error");
        };
        for needle in [
            "DEMO_BATCH",
            "RUSHLINE_REDIS_URL",
            "[default: 5]",
            "RUSHLINE_LOG_FORMAT",
        ] {
            assert!(help.contains(needle), "{needle} missing from\n{help}");
        }
    }

    #[test]
    fn milliseconds_become_durations_within_their_bound() {
        #[derive(Parser)]
        struct Timeouts {
            /// Bound; at least 10
            #[arg(long, env = "DEMO_TIMEOUT_MS", default_value = "2000", value_parser = millis(10))]
            timeout_ms: Duration,
        }
        let timeouts = |value: &str| {
            parse::<Timeouts>([OsString::from("demo")], |name| {
                (name == "DEMO_TIMEOUT_MS").then(|| value.to_owned())
            })
        };
        assert_eq!(timeouts("").unwrap().timeout_ms, Duration::from_secs(2));
        assert_eq!(
            timeouts("10").unwrap().timeout_ms,
            Duration::from_millis(10)
        );
        let err = timeouts("9").err().unwrap();
        assert!(
            err.to_string().starts_with("DEMO_TIMEOUT_MS: \"9\""),
            "{err}"
        );
    }

    #[test]
    fn shared_settings_are_read_once_and_hide_their_secrets() {
        let parsed = demo(
            &[],
            &[
                ("RUSHLINE_REDIS_URL", "redis://:redis-s3cret@cache:6379"),
                ("RUSHLINE_STATUS_TTL_SECS", "60"),
                ("RUSHLINE_LOG_FORMAT", "json"),
            ],
        )
        .unwrap();
        let shared = Shared::from(parsed.shared);
        assert_eq!(shared.status_ttl, Duration::from_secs(60));
        assert!(shared.log_json);
        let shown = format!("{shared:?}");
        assert!(!shown.contains("redis-s3cret"), "{shown}");
        assert!(shown.contains("redis://:***@cache:6379"), "{shown}");
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        assert!(matches!(demo(&["--nope"], &[]), Err(ConfigError::Usage(_))));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://rushline:secret@127.0.0.1:5432/rushline"),
            "postgres://rushline:***@127.0.0.1:5432/rushline"
        );
        assert_eq!(
            redact_url("redis://:p%40ss@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://:a@n1:7000,redis://:b@n2:7001"),
            "redis://:***@n1:7000,redis://:***@n2:7001"
        );
        assert_eq!(format!("{:?}", Redacted(&Some("token"))), "Some(\"***\")");
    }
}
