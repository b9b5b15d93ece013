//! Why a SigV4-signed request (callback API or `AWS_IAM` `$connect`) was not accepted (verified
//! in [`crate::iam::sigv4`]); the AWS error names are mapped in [`super::CallbackError`].

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SigV4Error {
    /// Neither an `Authorization` header nor presigned query parameters were sent.
    #[error("request carries no SigV4 authentication")]
    MissingAuthorization,
    /// The authentication data could not be parsed; the detail says which part.
    #[error("malformed SigV4 authentication: {0}")]
    Malformed(&'static str),
    /// The algorithm is not `AWS4-HMAC-SHA256`.
    #[error("unsupported signing algorithm")]
    UnsupportedAlgorithm,
    /// The credential scope names an access key id that is not configured.
    #[error("unknown access key id")]
    UnknownAccessKey,
    /// The `X-Amz-Security-Token` is missing for a key with a session token, present for a key
    /// without one, or not the key's token.
    #[error("the security token is missing, unexpected or wrong")]
    InvalidSecurityToken,
    /// The credential scope names another region or service.
    #[error("credential scope names another region or service")]
    WrongRegionOrService,
    /// The credential scope date is not the day of the request date.
    #[error("credential scope date does not match the request date")]
    ScopeDateMismatch,
    /// The request date is further from the current time than the allowed clock skew.
    #[error("request date is outside the allowed clock skew")]
    RequestExpired,
    /// The presigned URL's `X-Amz-Expires` lifetime has passed.
    #[error("presigned URL has expired")]
    PresignedUrlExpired,
    /// `host` is not among the signed headers.
    #[error("the host header is not signed")]
    UnsignedHostHeader,
    /// The `X-Amz-Date` or `Date` header the date was taken from is not signed.
    #[error("the date header is not signed")]
    UnsignedDateHeader,
    /// A header named in the signed headers is absent from the request.
    #[error("a signed header is missing from the request")]
    MissingSignedHeader,
    /// The signature does not match the request.
    #[error("signature does not match")]
    SignatureMismatch,
    /// `X-Amz-Content-Sha256` does not match the body.
    #[error("x-amz-content-sha256 does not match the body")]
    BodyHashMismatch,
}

impl SigV4Error {
    #[cfg(test)]
    /// The `x-amzn-ErrorType` AWS uses for this failure; every one of them is sent with 403.
    /// The mapping lives with the other callback errors, in [`super::CallbackError`].
    #[must_use]
    pub(crate) fn aws_error_type(&self) -> &'static str {
        super::CallbackError::from(self).error_type()
    }
}
