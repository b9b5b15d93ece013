//! What the request-building benchmark measures: the simple mapping's request of one action for
//! one message (no I/O, no signing). Not a stable interface.

use std::collections::BTreeMap;

use super::{Action, Message, Params, build};

/// One action with its parameters.
#[doc(hidden)]
#[derive(Debug)]
pub struct AwsRequest {
    action: Action,
    params: Params,
}

impl AwsRequest {
    /// `action` of `service` with `parameters`.
    ///
    /// # Errors
    /// An unknown service or action.
    pub fn new(service: &str, action: &str, parameters: &[(&str, &str)]) -> Result<Self, String> {
        let params = (parameters.iter())
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>();
        Ok(Self {
            action: Action::find(service, action)?,
            params: Params(params),
        })
    }

    /// Builds the request for `message`; returns its body's length.
    ///
    /// # Errors
    /// What the simple mapping refuses, in words.
    pub fn run(&self, message: &[u8]) -> Result<usize, String> {
        let msg = Message {
            payload: message,
            binary: false,
            connection_id: "L0SM9cOFvHcCIhw=",
            route_key: "sendmessage",
            request_id: "L0SM9dOFvHcCIhx=",
            stage: "prod",
            event_type: "MESSAGE",
        };
        Ok(build(self.action, &self.params, &msg)?.body.len())
    }
}
