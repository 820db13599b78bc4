//! `rushline-runtime`: process plumbing shared by `rushline-api` and `rushline-worker`.
//!
//! # Layout
//!
//! What both programs do around their real work, written once:
//!
//! - [`config`] — the settings both must agree on ([`config::SharedArgs`], flattened into each
//!   program's clap arguments) and the one parser that reads arguments and the environment, so
//!   an unusable value stops start-up with a message naming its variable.

pub mod config;
