use serde::{Deserialize, Serialize};

/// What a check does when its store cannot answer (Redis down, timeout, full).
///
/// The default is [`FailurePolicy::Closed`]: the request is refused with a "try again later"
/// (HTTP 503 with `Retry-After` in the adapters) — never accepted, and never answered as if the
/// token were invalid. [`FailurePolicy::Open`] lets the request through without the check; it
/// must be chosen explicitly, and every decision it makes is audited.
///
/// Deserializes from `"closed"` / `"open"`.
///
/// ```
/// use tokenward_core::FailurePolicy;
/// assert_eq!(FailurePolicy::default(), FailurePolicy::Closed);
/// let p: FailurePolicy = serde_json::from_str("\"open\"").unwrap();
/// assert!(p.allows_on_failure());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Refuse the request when the store cannot answer (HTTP 503). The default.
    #[default]
    Closed,
    /// Skip the check and let the request through when the store cannot answer.
    Open,
}

impl FailurePolicy {
    /// Whether a request proceeds when the store cannot answer.
    pub fn allows_on_failure(self) -> bool {
        matches!(self, FailurePolicy::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&FailurePolicy::Closed).unwrap(),
            "\"closed\""
        );
        assert!(serde_json::from_str::<FailurePolicy>("\"Closed\"").is_err());
        assert!(!FailurePolicy::Closed.allows_on_failure());
    }
}
