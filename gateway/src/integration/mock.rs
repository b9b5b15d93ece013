//! `mock` integration: answered by the gateway itself. Without templates, a fixed status and
//! body; with templates, as AWS's `MOCK`: the request template renders `{"statusCode": N}`, and
//! the integration response selected by that status renders the answer.

use async_trait::async_trait;
use bytes::Bytes;

use super::http::{Mapping, payload_of};
use super::{Integration, IntegrationError, IntegrationResponse, Invocation};
use crate::transform::{Answer, Payload};

#[derive(Debug)]
pub(super) struct Mock {
    status: u16,
    body: Option<Bytes>,
    mapping: Mapping,
}

impl Mock {
    pub(super) fn new(status: u16, body: Option<String>, mapping: Mapping) -> Self {
        Self {
            status,
            body: body.map(Bytes::from),
            mapping,
        }
    }
}

/// `statusCode` of a mock request template's output (a number or a numeric string).
fn status_code(rendered: &[u8]) -> Option<u16> {
    let value: serde_json::Value = serde_json::from_slice(rendered).ok()?;
    let code = value.get("statusCode")?;
    let code = code
        .as_u64()
        .or_else(|| code.as_str().and_then(|s| s.trim().parse().ok()))?;
    u16::try_from(code).ok().filter(|c| (100..=599).contains(c))
}

#[async_trait]
impl Integration for Mock {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        if self.mapping.is_empty() {
            return Ok(IntegrationResponse {
                status: self.status,
                headers: Vec::new(),
                body: self.body.clone(),
                binary: false,
            });
        }
        let (payload, message) = payload_of(&inv.kind);
        let values = self.mapping.values(inv);
        let status = if self.mapping.request.is_empty() {
            self.status
        } else {
            let rendered = self.mapping.map_request(&values, payload, message)?;
            if !rendered.templated {
                self.status
            } else if let Some(status) = status_code(&rendered.payload.bytes) {
                status
            } else {
                return Err(IntegrationError::Mapping(
                    "a mock's request template must render {\"statusCode\": N}".into(),
                ));
            }
        };
        let answer = Answer {
            status,
            headers: &[],
            message,
        };
        let empty = Payload {
            bytes: Bytes::new(),
            binary: false,
        };
        let mapped = self.mapping.map_response(&values, &answer, empty)?;
        Ok(IntegrationResponse {
            status,
            headers: Vec::new(),
            body: if mapped.templated {
                Some(mapped.payload.bytes)
            } else {
                self.body.clone()
            },
            binary: mapped.payload.binary,
        })
    }

    fn kind(&self) -> &'static str {
        "mock"
    }
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn status_codes_come_from_the_rendered_json() {
        assert_eq!(status_code(br#"{"statusCode": 200}"#), Some(200));
        assert_eq!(status_code(br#"{"statusCode": "403"}"#), Some(403));
        assert_eq!(status_code(br#"{"statusCode": 99}"#), None);
        assert_eq!(status_code(b"nope"), None);
    }
}
