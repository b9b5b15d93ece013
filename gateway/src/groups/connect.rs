//! Groups joined on `$connect`: the integration names them in its answer with the header
//! `X-Wsgate-Groups: room:1, news` (comma-separated; the header may repeat, e.g. through
//! `multiValueHeaders`), and the connection is a member before the 101, so messages posted to
//! those groups while the handshake completes are held and delivered right after it.

use std::sync::Arc;

use super::Groups;
use crate::error::{CallbackError, HandshakeRejection};
use crate::integration::IntegrationResponse;
use crate::registry::SessionHandle;

/// The answer header that names the groups to join (lowercase, as answers are stored).
pub(crate) const GROUPS_HEADER: &str = "x-wsgate-groups";

/// Every group named by the `$connect` answer, in order, without repeats.
pub(crate) fn groups_from_answer(response: &IntegrationResponse) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for (name, value) in &response.headers {
        if name != GROUPS_HEADER {
            continue;
        }
        for group in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            if !groups.iter().any(|g| g == group) {
                groups.push(group.to_owned());
            }
        }
    }
    groups
}

/// Records a connection that passed `$connect` (for `GET @connections`) and joins the groups
/// its answer named (their `$join` events traced under `trace`, the handshake). An invalid name
/// or too many groups is the integration's fault (502, as for any malformed answer); a store
/// failure is 503.
///
/// # Errors
/// The [`HandshakeRejection`] to answer instead of the 101.
pub(crate) async fn admit(
    groups: &Groups,
    handle: &Arc<SessionHandle>,
    names: &[String],
    trace: crate::traces::Parent<'_>,
) -> Result<(), HandshakeRejection> {
    let meta = &handle.meta;
    groups
        .add_connection(meta)
        .await
        .map_err(|_| HandshakeRejection::StoreUnavailable)?;
    for group in names {
        match groups.join(handle, group, trace).await {
            Ok(()) => {}
            Err(CallbackError::BadRequest(_) | CallbackError::TooManyGroups { .. }) => {
                tracing::warn!(connection_id = %meta.connection_id, group = %group, "the $connect answer named a group that cannot be joined");
                return Err(HandshakeRejection::IntegrationFailed);
            }
            Err(_) => return Err(HandshakeRejection::StoreUnavailable),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_every_header_value() {
        let response = IntegrationResponse {
            status: 200,
            headers: vec![
                (GROUPS_HEADER.into(), "room:1, news,,".into()),
                ("x-other".into(), "nope".into()),
                (GROUPS_HEADER.into(), " news ,dm:ada".into()),
            ],
            body: None,
            binary: false,
        };
        assert_eq!(groups_from_answer(&response), ["room:1", "news", "dm:ada"]);
        assert!(groups_from_answer(&IntegrationResponse::default()).is_empty());
    }
}
