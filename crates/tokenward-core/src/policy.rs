use serde::{Deserialize, Serialize};

/// What a check does when its store cannot answer (Redis down, timeout, full).
///
/// The default is [`FailurePolicy::Closed`]: the request is refused with a "try again later"
/// (HTTP 503 with `Retry-After` in the adapters) — never accepted, and never answered as if the
/// token were invalid. [`FailurePolicy::DangerousOpen`] lets the request through without the
/// check; it weakens security, so it is named `dangerous_…` where it is chosen (in code and in
/// configuration), and every decision it makes is audited.
///
/// Deserializes from `"closed"` / `"dangerous_open"`.
///
/// ```
/// use tokenward_core::FailurePolicy;
/// assert_eq!(FailurePolicy::default(), FailurePolicy::Closed);
/// let p: FailurePolicy = serde_json::from_str("\"dangerous_open\"").unwrap();
/// assert!(p.allows_on_failure());
/// // The old spelling is refused: a weakening must be visible where it is configured.
/// assert!(serde_json::from_str::<FailurePolicy>("\"open\"").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Refuse the request when the store cannot answer (HTTP 503). The default.
    #[default]
    Closed,
    /// Skip the check and let the request through when the store cannot answer
    /// (`"dangerous_open"` in configuration).
    DangerousOpen,
}

impl FailurePolicy {
    /// Whether a request proceeds when the store cannot answer.
    pub fn allows_on_failure(self) -> bool {
        matches!(self, FailurePolicy::DangerousOpen)
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
