//! Evaluation of the IAM identity policies configured on SigV4 keys, for the actions the gateway
//! authorizes itself (`execute-api:ManageConnections` on the callback API,
//! `execute-api:Invoke` on `$connect`).
//!
//! Rules, as IAM applies them: an explicit `Deny` that covers the request wins; otherwise an
//! `Allow` that covers it allows; otherwise the request is denied (implicit deny). Actions match
//! case-insensitively, resources case-sensitively (`ArnLike`: each of the six `:`-separated ARN
//! parts on its own, the last one including any further colons); `*` matches any run of
//! characters and `?` one character. `NotAction` and `NotResource` cover what their patterns
//! do not match.
//!
//! What the gateway cannot decide never opens access: a statement's `Condition`, and a
//! resource pattern with a policy variable (`${aws:username}`), are unknown. A statement whose
//! coverage is unknown does not allow, and does deny.

use crate::config::{PolicyDocument, PolicyStatement};

/// The outcome of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// An `Allow` covers the request and no `Deny` does.
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A `Deny` covers it (or may cover it).
    ExplicitDeny,
}

/// Whether a statement part covers the request: yes, no, or cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Covers {
    Yes,
    No,
    Unknown,
}

impl Covers {
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::No, _) | (_, Self::No) => Self::No,
            (Self::Yes, Self::Yes) => Self::Yes,
            _ => Self::Unknown,
        }
    }

    fn not(self) -> Self {
        match self {
            Self::Yes => Self::No,
            Self::No => Self::Yes,
            Self::Unknown => Self::Unknown,
        }
    }

    /// `Yes` if any is, else `Unknown` if any is, else `No`.
    fn any(items: impl Iterator<Item = Self>) -> Self {
        let mut result = Self::No;
        for item in items {
            match item {
                Self::Yes => return Self::Yes,
                Self::Unknown => result = Self::Unknown,
                Self::No => {}
            }
        }
        result
    }
}

/// A list of patterns, or its complement (`NotAction`, `NotResource`).
#[derive(Debug, Clone)]
struct Patterns {
    values: Vec<String>,
    negated: bool,
}

impl Patterns {
    /// From the `X` / `NotX` pair; both or neither (refused by the config check) cover nothing
    /// knowable.
    fn from_pair(
        positive: Option<&crate::config::OneOrList<String>>,
        negative: Option<&crate::config::OneOrList<String>>,
    ) -> Option<Self> {
        match (positive, negative) {
            (Some(values), None) => Some(Self {
                values: values.as_slice().to_vec(),
                negated: false,
            }),
            (None, Some(values)) => Some(Self {
                values: values.as_slice().to_vec(),
                negated: true,
            }),
            _ => None,
        }
    }

    fn covers(&self, matches: impl Fn(&str) -> Covers) -> Covers {
        let found = Covers::any(self.values.iter().map(|p| matches(p)));
        if self.negated { found.not() } else { found }
    }
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    actions: Option<Patterns>,
    resources: Option<Patterns>,
    has_condition: bool,
}

impl Statement {
    fn covers(&self, action: &str, resource: &str) -> Covers {
        let (Some(actions), Some(resources)) = (&self.actions, &self.resources) else {
            return Covers::Unknown;
        };
        let condition = if self.has_condition {
            Covers::Unknown
        } else {
            Covers::Yes
        };
        actions
            .covers(|p| action_like(p, action))
            .and(resources.covers(|p| arn_like(p, resource)))
            .and(condition)
    }
}

/// A compiled identity policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    statements: Vec<Statement>,
}

impl Policy {
    /// Compiles a validated document. Anything the validation would refuse still compiles,
    /// failing closed: an `Effect` other than `Allow` denies, a statement without exactly one
    /// of `Action`/`NotAction` or `Resource`/`NotResource` is unknown.
    pub(crate) fn new(document: &PolicyDocument) -> Self {
        let statements = document
            .statement
            .as_slice()
            .iter()
            .map(|s: &PolicyStatement| Statement {
                allow: s.effect == "Allow",
                actions: Patterns::from_pair(s.action.as_ref(), s.not_action.as_ref()),
                resources: Patterns::from_pair(s.resource.as_ref(), s.not_resource.as_ref()),
                has_condition: s.condition.is_some(),
            })
            .collect();
        Self { statements }
    }

    /// Decides whether `action` on `resource` (a full ARN) is allowed.
    pub(crate) fn evaluate(&self, action: &str, resource: &str) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            match (statement.allow, statement.covers(action, resource)) {
                (false, Covers::Yes | Covers::Unknown) => return Decision::ExplicitDeny,
                (true, Covers::Yes) => allowed = true,
                _ => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

/// An action pattern against an action name, case-insensitively.
fn action_like(pattern: &str, action: &str) -> Covers {
    if wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase()) {
        Covers::Yes
    } else {
        Covers::No
    }
}

/// `ArnLike`: `*` alone matches everything; otherwise the six ARN parts are matched one by one.
/// A pattern with a policy variable cannot be told.
fn arn_like(pattern: &str, arn: &str) -> Covers {
    if pattern == "*" {
        return Covers::Yes;
    }
    if pattern.contains("${") {
        return Covers::Unknown;
    }
    let patterns: Vec<&str> = pattern.splitn(6, ':').collect();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if patterns.len() != 6 || parts.len() != 6 {
        return Covers::No;
    }
    if patterns
        .iter()
        .zip(&parts)
        .all(|(p, part)| wildcard_match(p, part))
    {
        Covers::Yes
    } else {
        Covers::No
    }
}

/// IAM-style wildcard match: `*` any run of characters (also none), `?` exactly one.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
