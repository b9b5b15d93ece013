//! SigV4 signatures of Invoke requests (service `lambda`) and of `type: aws` integrations'
//! requests, made by the official AWS signer and returned as header lines for either HTTP client.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// The service name Lambda requests are signed for.
const SERVICE: &str = "lambda";

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("signing the AWS request failed: {0}")]
pub(crate) struct SignError(String);

/// What every request to one function shares.
#[derive(Debug)]
pub(super) struct Signing {
    /// The full request URL (as sent).
    pub url: String,
    /// The `host` header both clients send for `url`.
    pub host: String,
    /// The region signed for.
    pub region: String,
}

impl Signing {
    /// The `x-amz-date`, `x-amz-security-token` (temporary credentials) and `authorization`
    /// header lines (`name: value\r\n`) for a POST of `body` at `time`. `host` and
    /// `content-type: application/json` are signed too; the clients send them.
    ///
    /// # Errors
    /// [`SignError`] when the signer refuses the request.
    pub(super) fn header_lines(
        &self,
        credentials: &Credentials,
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<u8>, SignError> {
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", "application/json"),
        ];
        sign_post(
            SERVICE,
            &self.region,
            &self.url,
            &headers,
            credentials,
            body,
            time,
        )
    }
}

/// The `x-amz-date`, `x-amz-security-token` (temporary credentials) and `authorization`
/// header lines (`name: value\r\n`) of a POST of `body` to `url` for `service` in `region` at
/// `time`, with `headers` (which the caller sends) signed too. Also used by `type: aws`
/// integrations.
///
/// # Errors
/// [`SignError`] when the signer refuses the request.
pub(crate) fn sign_post(
    service: &str,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    credentials: &Credentials,
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<u8>, SignError> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let (headers, _query) = instructions.into_parts();
    let mut lines = Vec::with_capacity(512);
    for header in headers {
        lines.extend_from_slice(header.name().as_bytes());
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(header.value().as_bytes());
        lines.extend_from_slice(b"\r\n");
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn signs_with_date_token_and_authorization() {
        let signing = Signing {
            url: "http://127.0.0.1:9001/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations?Qualifier=live".into(),
            host: "127.0.0.1:9001".into(),
            region: "us-east-1".into(),
        };
        let credentials =
            Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
        let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let lines = signing
            .header_lines(&credentials, b"{}", time)
            .expect("signs");
        let text = String::from_utf8(lines).expect("ASCII");
        assert!(text.contains("x-amz-date: 20231114T221320Z\r\n"), "{text}");
        assert!(text.contains("x-amz-security-token: token\r\n"), "{text}");
        assert!(
            text.contains(
                "authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/lambda/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{text}"
        );
    }
}
