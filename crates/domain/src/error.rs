//! The one error a domain constructor returns.

/// Why a value from outside (a client, an operator, a stored row) is not a valid domain value.
///
/// The message is meant for the client: it names the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    /// The JSON field, header or path segment that is wrong.
    pub field: &'static str,
    /// The rule it broke, in words.
    pub rule: &'static str,
}

impl ValidationError {
    pub(crate) const fn new(field: &'static str, rule: &'static str) -> Self {
        Self { field, rule }
    }
}
