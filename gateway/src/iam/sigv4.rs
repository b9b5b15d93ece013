//! AWS Signature Version 4 verification, shared by the `@connections` callback API and
//! `AWS_IAM` authorization of `$connect`: parses the `Authorization` header or presigned query,
//! rebuilds the canonical request exactly as the AWS SDKs sign it for non-S3 services, and
//! checks it against statically configured key pairs (with their STS session tokens, if any).
//!
//! Canonicalisation rules (checked against boto3/botocore and the JS v3 SDK):
//! - canonical URI: the raw request path with empty, `.` and `..` segments removed, then every
//!   byte except `A-Za-z0-9-._~` and `/` percent-encoded once more (uppercase hex). The SDKs send
//!   `/prod/@connections/abc%3Ddef%2Fghi` and sign `/prod/%40connections/abc%253Ddef%252Fghi`;
//! - canonical query: each `key=value` pair percent-decoded, AWS-encoded again, sorted by key then
//!   value; a key without `=` gets an empty value; `X-Amz-Signature` is left out when presigned;
//! - canonical headers: the signed headers only, lowercase names, values trimmed with runs of
//!   spaces and tabs collapsed, repeated headers joined with `,`;
//! - payload hash: `X-Amz-Content-Sha256` when present (it must match the body unless it is
//!   `UNSIGNED-PAYLOAD`), else the hex SHA-256 of the body. Presigned requests without that
//!   header may have been signed with either the body hash or `UNSIGNED-PAYLOAD`; both are tried.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

pub(crate) use crate::error::SigV4Error;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SCOPE_TERMINATOR: &str = "aws4_request";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const DEFAULT_SERVICE: &str = "execute-api";
const DEFAULT_MAX_SKEW: Duration = Duration::from_mins(5);
/// Longest lifetime AWS allows for a presigned URL: seven days.
const MAX_PRESIGNED_EXPIRES_SECS: i64 = 7 * 24 * 60 * 60;
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Everything except the RFC 3986 unreserved characters, as `SigV4` requires.
const AWS_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

type HmacSha256 = Hmac<Sha256>;

/// A static access key pair a caller may sign with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    /// The access key id named in the credential scope.
    pub access_key_id: String,
    /// The secret the signing key is derived from.
    pub secret_access_key: String,
    /// The STS session token that must come with every request signed with this key
    /// (`X-Amz-Security-Token`); `None` for a long-term key, which must come without one.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What the verifier keeps of one credential.
#[derive(Clone)]
struct Key {
    secret: String,
    session_token: Option<Vec<u8>>,
}

/// Verifies SigV4-signed requests for one region and service against a set of key pairs.
///
/// Several credentials may be configured at once, so keys can be rotated without downtime.
/// A key configured with a session token accepts only requests carrying that token in
/// `X-Amz-Security-Token` (the header, or the query parameter of a presigned URL); a key
/// without one refuses requests that carry a token. Tokens are compared in constant time.
#[derive(Clone)]
pub(crate) struct SigV4Verifier {
    region: String,
    service: String,
    secrets: HashMap<String, Key>,
    max_skew: TimeDelta,
}

impl fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
        keys.sort_unstable();
        f.debug_struct("SigV4Verifier")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("access_key_ids", &keys)
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

/// The parts of an HTTP request that take part in its signature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedRequest<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The path exactly as on the request line, not percent-decoded
    /// (e.g. `/prod/@connections/abc%3D`).
    pub raw_path: &'a str,
    /// The query string exactly as sent, without the `?`.
    pub raw_query: Option<&'a str>,
    /// The request headers. `host` must be present (for HTTP/2, from the `:authority`).
    pub headers: &'a HeaderMap,
    /// The request body.
    pub body: &'a [u8],
}

/// Where the authentication data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Authorization` header; the date header it used must be signed.
    Header { date_header: &'static str },
    /// Query-string authentication with its `X-Amz-Expires` lifetime in seconds.
    Presigned { expires_secs: i64 },
}

/// The authentication data of one request, parsed but not yet checked.
struct Auth {
    mode: Mode,
    access_key_id: String,
    scope_date: String,
    region: String,
    service: String,
    signed_headers: String,
    signature: [u8; 32],
    timestamp: DateTime<Utc>,
}

/// One query parameter, percent-decoded.
struct QueryParam {
    key: Vec<u8>,
    value: Vec<u8>,
}

impl SigV4Verifier {
    /// A verifier for `region` and service `execute-api` accepting any of `credentials`, with a
    /// maximum clock skew of five minutes. A later credential with the same access key id
    /// replaces an earlier one.
    pub(crate) fn new(region: impl Into<String>, credentials: Vec<Credential>) -> Self {
        Self {
            region: region.into(),
            service: DEFAULT_SERVICE.to_owned(),
            secrets: credentials
                .into_iter()
                .map(|c| {
                    let key = Key {
                        secret: c.secret_access_key,
                        session_token: c.session_token.map(String::into_bytes),
                    };
                    (c.access_key_id, key)
                })
                .collect(),
            max_skew: to_time_delta(DEFAULT_MAX_SKEW),
        }
    }

    /// Sets the service name the credential scope must carry (default `execute-api`).
    #[must_use]
    pub(crate) fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Sets how far the request date may be from the current time (default five minutes).
    #[must_use]
    pub(crate) fn with_max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = to_time_delta(skew);
        self
    }

    /// Checks everything that does not need the body: the authentication data is present and
    /// well formed, names this region and service and a configured access key, its date is
    /// within the allowed skew (or the presigned URL has not expired), and `host` and the date
    /// header are signed. A request that passes may still fail [`SigV4Verifier::verify`]; one
    /// that fails here fails there too, so its body need not be read.
    ///
    /// # Errors
    ///
    /// A [`SigV4Error`] saying why the request is not accepted.
    pub(crate) fn check_head(
        &self,
        raw_query: Option<&str>,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<(), SigV4Error> {
        let query = parse_query(raw_query.unwrap_or(""));
        self.authenticate_head(headers, &query, now).map(|_| ())
    }

    /// Verifies a request; returns the access key id that signed it.
    ///
    /// `now` is the current time, against which the clock skew and the expiry of presigned
    /// URLs are checked.
    ///
    /// # Errors
    ///
    /// A [`SigV4Error`] saying why the request is not accepted.
    pub(crate) fn verify(
        &self,
        req: &SignedRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<String, SigV4Error> {
        let query = parse_query(req.raw_query.unwrap_or(""));
        let (auth, secret) = self.authenticate_head(req.headers, &query, now)?;
        let signed: Vec<&str> = auth.signed_headers.split(';').collect();

        let content_sha256 = single_header(req.headers, "x-amz-content-sha256")?;
        let body_hash = hex::encode(Sha256::digest(req.body));
        let candidates: Vec<&str> = match (content_sha256, auth.mode) {
            (Some(value), _) => vec![value],
            (None, Mode::Header { .. }) => vec![body_hash.as_str()],
            (None, Mode::Presigned { .. }) => vec![body_hash.as_str(), UNSIGNED_PAYLOAD],
        };

        let prefix = canonical_request_prefix(req, &query, &auth, &signed)?;
        let key = signing_key(secret, &auth).ok_or(SigV4Error::SignatureMismatch)?;
        let mut matched = Choice::from(0);
        for payload_hash in candidates {
            let mut canonical = prefix.clone();
            canonical.extend_from_slice(payload_hash.as_bytes());
            let expected = hmac_sha256(&key, string_to_sign(&auth, &canonical).as_bytes())
                .ok_or(SigV4Error::SignatureMismatch)?;
            matched |= expected.ct_eq(&auth.signature);
        }
        if !bool::from(matched) {
            return Err(SigV4Error::SignatureMismatch);
        }

        if let Some(value) = content_sha256
            && value != UNSIGNED_PAYLOAD
            && !value.eq_ignore_ascii_case(&body_hash)
        {
            return Err(SigV4Error::BodyHashMismatch);
        }
        Ok(auth.access_key_id)
    }

    /// The checks of [`SigV4Verifier::check_head`]; answers the parsed data and the secret.
    fn authenticate_head(
        &self,
        headers: &HeaderMap,
        query: &[QueryParam],
        now: DateTime<Utc>,
    ) -> Result<(Auth, &str), SigV4Error> {
        let auth = parse_auth(headers, query)?;
        if auth.region != self.region || auth.service != self.service {
            return Err(SigV4Error::WrongRegionOrService);
        }
        let key = self
            .secrets
            .get(&auth.access_key_id)
            .ok_or(SigV4Error::UnknownAccessKey)?;
        check_session_token(key, auth.mode, headers, query)?;
        self.check_time(&auth, now)?;
        let mut signed = auth.signed_headers.split(';');
        if !signed.clone().any(|name| name == "host") {
            return Err(SigV4Error::UnsignedHostHeader);
        }
        if let Mode::Header { date_header } = auth.mode
            && !signed.any(|name| name == date_header)
        {
            return Err(SigV4Error::UnsignedDateHeader);
        }
        Ok((auth, &key.secret))
    }

    fn check_time(&self, auth: &Auth, now: DateTime<Utc>) -> Result<(), SigV4Error> {
        if auth.timestamp.format("%Y%m%d").to_string() != auth.scope_date {
            return Err(SigV4Error::ScopeDateMismatch);
        }
        let age = now.signed_duration_since(auth.timestamp);
        match auth.mode {
            Mode::Header { .. } if age.abs() > self.max_skew => Err(SigV4Error::RequestExpired),
            Mode::Presigned { .. } if auth.timestamp.signed_duration_since(now) > self.max_skew => {
                Err(SigV4Error::RequestExpired)
            }
            Mode::Presigned { expires_secs } if age > TimeDelta::seconds(expires_secs) => {
                Err(SigV4Error::PresignedUrlExpired)
            }
            _ => Ok(()),
        }
    }
}

/// The session token rule of [`SigV4Verifier`]: the token presented (header when signed in the
/// header, query parameter when presigned) must be the key's, and absent when the key has none.
fn check_session_token(
    key: &Key,
    mode: Mode,
    headers: &HeaderMap,
    query: &[QueryParam],
) -> Result<(), SigV4Error> {
    let presented: Option<&[u8]> = match mode {
        Mode::Header { .. } => single_header(headers, "x-amz-security-token")?.map(str::as_bytes),
        Mode::Presigned { .. } => {
            let mut found = query.iter().filter(|p| p.key == b"X-Amz-Security-Token");
            match (found.next(), found.next()) {
                (None, _) => None,
                (Some(p), None) => Some(p.value.as_slice()),
                (Some(_), Some(_)) => {
                    return Err(SigV4Error::Malformed("presigned parameter repeated"));
                }
            }
        }
    };
    let valid = match (key.session_token.as_deref(), presented) {
        (None, None) => true,
        (Some(expected), Some(given)) => bool::from(expected.ct_eq(given)),
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(SigV4Error::InvalidSecurityToken)
    }
}

fn to_time_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Reads the authentication data from the `Authorization` header or the presigned query.
fn parse_auth(headers: &HeaderMap, query: &[QueryParam]) -> Result<Auth, SigV4Error> {
    let header = single_header(headers, "authorization")?;
    let presigned = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"]
        .iter()
        .any(|name| query.iter().any(|p| p.key == name.as_bytes()));
    match (header, presigned) {
        (Some(_), true) => Err(SigV4Error::Malformed(
            "both an Authorization header and presigned query parameters",
        )),
        (Some(value), false) => parse_header_auth(value, headers),
        (None, true) => parse_presigned_auth(query),
        (None, false) => Err(SigV4Error::MissingAuthorization),
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
fn parse_header_auth(value: &str, headers: &HeaderMap) -> Result<Auth, SigV4Error> {
    let value = value.trim_matches([' ', '\t']);
    let (algorithm, params) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm);
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in params.split(',') {
        let (name, v) = part
            .split_once('=')
            .ok_or(SigV4Error::Malformed("Authorization parameter without '='"))?;
        let slot = match name.trim_matches([' ', '\t']) {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(SigV4Error::Malformed("unknown Authorization parameter")),
        };
        if slot.replace(v.trim_matches([' ', '\t'])).is_some() {
            return Err(SigV4Error::Malformed("repeated Authorization parameter"));
        }
    }
    let credential = credential.ok_or(SigV4Error::Malformed("Authorization lacks Credential"))?;
    let signed_headers =
        signed_headers.ok_or(SigV4Error::Malformed("Authorization lacks SignedHeaders"))?;
    let signature = signature.ok_or(SigV4Error::Malformed("Authorization lacks Signature"))?;

    let (timestamp, date_header) = match single_header(headers, "x-amz-date")? {
        Some(v) => (parse_amz_date(v)?, "x-amz-date"),
        None => match single_header(headers, "date")? {
            Some(v) => (parse_http_date(v)?, "date"),
            None => return Err(SigV4Error::Malformed("no X-Amz-Date or Date header")),
        },
    };
    build_auth(
        Mode::Header { date_header },
        credential,
        signed_headers,
        signature,
        timestamp,
    )
}

/// Parses the `X-Amz-*` parameters of a presigned URL.
fn parse_presigned_auth(query: &[QueryParam]) -> Result<Auth, SigV4Error> {
    let algorithm = query_param(query, "X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm);
    }
    let credential = query_param(query, "X-Amz-Credential")?;
    let timestamp = parse_amz_date(query_param(query, "X-Amz-Date")?)?;
    let expires = query_param(query, "X-Amz-Expires")?;
    let expires_secs = parse_digits(expires)
        .filter(|secs| *secs <= MAX_PRESIGNED_EXPIRES_SECS)
        .ok_or(SigV4Error::Malformed(
            "X-Amz-Expires is not 0 to 604800 seconds",
        ))?;
    build_auth(
        Mode::Presigned { expires_secs },
        credential,
        query_param(query, "X-Amz-SignedHeaders")?,
        query_param(query, "X-Amz-Signature")?,
        timestamp,
    )
}

fn build_auth(
    mode: Mode,
    credential: &str,
    signed_headers: &str,
    signature: &str,
    timestamp: DateTime<Utc>,
) -> Result<Auth, SigV4Error> {
    let mut parts = credential.split('/');
    let (Some(key), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SigV4Error::Malformed(
            "Credential is not key/date/region/service/aws4_request",
        ));
    };
    if key.is_empty() || region.is_empty() || service.is_empty() {
        return Err(SigV4Error::Malformed("Credential has an empty part"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::Malformed("Credential date is not YYYYMMDD"));
    }
    if terminator != SCOPE_TERMINATOR {
        return Err(SigV4Error::Malformed(
            "Credential does not end in aws4_request",
        ));
    }
    validate_signed_headers(signed_headers)?;
    let mut sig = [0u8; 32];
    hex::decode_to_slice(signature, &mut sig)
        .map_err(|_| SigV4Error::Malformed("Signature is not 64 hex digits"))?;
    Ok(Auth {
        mode,
        access_key_id: key.to_owned(),
        scope_date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers.to_owned(),
        signature: sig,
        timestamp,
    })
}

/// Signed headers must be lowercase header names, sorted and without repeats, as every SDK
/// writes them.
fn validate_signed_headers(list: &str) -> Result<(), SigV4Error> {
    let mut previous: Option<&str> = None;
    for name in list.split(';') {
        let valid = !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
            });
        if !valid {
            return Err(SigV4Error::Malformed("SignedHeaders has an invalid name"));
        }
        if previous.is_some_and(|p| p >= name) {
            return Err(SigV4Error::Malformed(
                "SignedHeaders is not sorted and unique",
            ));
        }
        previous = Some(name);
    }
    Ok(())
}

/// The value of a header that may appear at most once.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, SigV4Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SigV4Error::Malformed(
            "authentication header sent more than once",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| SigV4Error::Malformed("authentication header is not visible ASCII"))
}

/// The value of a presigned parameter that must appear exactly once.
fn query_param<'q>(query: &'q [QueryParam], name: &str) -> Result<&'q str, SigV4Error> {
    let mut found = query.iter().filter(|p| p.key == name.as_bytes());
    match (found.next(), found.next()) {
        (Some(p), None) => std::str::from_utf8(&p.value)
            .map_err(|_| SigV4Error::Malformed("presigned parameter is not UTF-8")),
        (None, _) => Err(SigV4Error::Malformed(
            "presigned URL lacks an X-Amz parameter",
        )),
        (Some(_), Some(_)) => Err(SigV4Error::Malformed("presigned parameter repeated")),
    }
}

/// Parses `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(value: &str) -> Result<DateTime<Utc>, SigV4Error> {
    let bad = SigV4Error::Malformed("date is not YYYYMMDDTHHMMSSZ");
    let shaped = value.len() == 16
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(bad);
    }
    NaiveDateTime::parse_from_str(value, AMZ_DATE_FORMAT)
        .map(|d| d.and_utc())
        .map_err(|_| bad)
}

/// Parses an RFC 1123 / RFC 2822 `Date` header (`Fri, 17 May 2024 12:34:56 GMT`).
fn parse_http_date(value: &str) -> Result<DateTime<Utc>, SigV4Error> {
    DateTime::parse_from_rfc2822(value)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| SigV4Error::Malformed("Date header is not an RFC 1123 date"))
}

/// A non-empty run of ASCII digits, at most 12 of them.
fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 {
        return None;
    }
    s.chars().try_fold(0i64, |acc, c| {
        acc.checked_mul(10)?.checked_add(i64::from(c.to_digit(10)?))
    })
}

/// Splits a raw query string into percent-decoded pairs; `+` is kept as a literal plus.
fn parse_query(raw: &str) -> Vec<QueryParam> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            QueryParam {
                key: percent_decode_str(key).collect(),
                value: percent_decode_str(value).collect(),
            }
        })
        .collect()
}

fn aws_encode(bytes: &[u8]) -> String {
    percent_encode(bytes, AWS_ENCODE_SET).to_string()
}

/// The canonical URI: dot and empty segments removed, each segment encoded once more.
fn canonical_uri(raw_path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw_path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut uri = String::with_capacity(raw_path.len().saturating_add(16));
    for segment in &segments {
        uri.push('/');
        uri.push_str(&aws_encode(segment.as_bytes()));
    }
    if segments.is_empty() || raw_path.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The canonical query string: pairs re-encoded and sorted by key, then value.
fn canonical_query(query: &[QueryParam], presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|p| !(presigned && p.key == b"X-Amz-Signature"))
        .map(|p| (aws_encode(&p.key), aws_encode(&p.value)))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request up to (not including) the payload hash.
fn canonical_request_prefix(
    req: &SignedRequest<'_>,
    query: &[QueryParam],
    auth: &Auth,
    signed: &[&str],
) -> Result<Vec<u8>, SigV4Error> {
    let presigned = matches!(auth.mode, Mode::Presigned { .. });
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.raw_path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(query, presigned).as_bytes());
    out.push(b'\n');
    append_canonical_headers(&mut out, req.headers, signed)?;
    out.push(b'\n');
    out.extend_from_slice(auth.signed_headers.as_bytes());
    out.push(b'\n');
    Ok(out)
}

/// `AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hex(sha256(canonical request))}`.
fn string_to_sign(auth: &Auth, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/{SCOPE_TERMINATOR}\n{}",
        auth.timestamp.format(AMZ_DATE_FORMAT),
        auth.scope_date,
        auth.region,
        auth.service,
        hex::encode(Sha256::digest(canonical_request))
    )
}

/// Appends `name:value\n` for each signed header, in the (sorted) signed order.
fn append_canonical_headers(
    out: &mut Vec<u8>,
    headers: &HeaderMap,
    signed: &[&str],
) -> Result<(), SigV4Error> {
    for name in signed {
        let mut values = headers.get_all(*name).iter().peekable();
        if values.peek().is_none() {
            return Err(SigV4Error::MissingSignedHeader);
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            append_trimmed(out, value.as_bytes());
        }
        out.push(b'\n');
    }
    Ok(())
}

/// Appends a header value with leading/trailing blanks dropped and inner runs collapsed.
fn append_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let mut words = value.split(is_blank).filter(|w| !w.is_empty());
    if let Some(first) = words.next() {
        out.extend_from_slice(first);
        for word in words {
            out.push(b' ');
            out.extend_from_slice(word);
        }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &str, auth: &Auth) -> Option<[u8; 32]> {
    let k_date = hmac_sha256(
        format!("AWS4{secret}").as_bytes(),
        auth.scope_date.as_bytes(),
    )?;
    let k_region = hmac_sha256(&k_date, auth.region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, auth.service.as_bytes())?;
    hmac_sha256(&k_service, SCOPE_TERMINATOR.as_bytes())
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
