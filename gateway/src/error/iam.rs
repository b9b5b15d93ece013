//! An IAM policy refusal ([`crate::iam`]): the caller, action and resource, worded as Amazon API
//! Gateway words an `AccessDeniedException`. Answered by [`super::CallbackError`] on the callback
//! API and by [`super::HandshakeRejection`] on `$connect`.

use std::fmt;

/// A request the caller's identity policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessDenied {
    /// The caller's ARN.
    pub user_arn: String,
    /// The action refused (`execute-api:ManageConnections`, `execute-api:Invoke`).
    pub action: &'static str,
    /// The resource ARN.
    pub resource: String,
    /// Whether a `Deny` statement refused it (rather than no `Allow` covering it).
    pub explicit: bool,
}

impl fmt::Display for AccessDenied {
    /// `User: {arn} is not authorized to perform: {action} on resource: {resource}`, with
    /// ` with an explicit deny` when a `Deny` statement decided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "User: {} is not authorized to perform: {} on resource: {}",
            self.user_arn, self.action, self.resource
        )?;
        if self.explicit {
            f.write_str(" with an explicit deny")?;
        }
        Ok(())
    }
}

impl std::error::Error for AccessDenied {}
