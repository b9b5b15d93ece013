//! `mock` integration: a fixed status and body, answered by the gateway itself.

use async_trait::async_trait;
use bytes::Bytes;

use super::{Integration, IntegrationError, IntegrationResponse, Invocation};

#[derive(Debug)]
pub(super) struct Mock {
    status: u16,
    body: Option<Bytes>,
}

impl Mock {
    pub(super) fn new(status: u16, body: Option<String>) -> Self {
        Self {
            status,
            body: body.map(Bytes::from),
        }
    }
}

#[async_trait]
impl Integration for Mock {
    async fn invoke(&self, _: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        Ok(IntegrationResponse {
            status: self.status,
            headers: Vec::new(),
            body: self.body.clone(),
            binary: false,
        })
    }

    fn kind(&self) -> &'static str {
        "mock"
    }
}
