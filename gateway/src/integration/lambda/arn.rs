//! Which Lambda function an integration or authorizer URI names: a function ARN (optionally
//! qualified by an alias or version) or API Gateway's own integration URI around one
//! (`arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{functionArn}/invocations`),
//! and the Invoke API request that calls it.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The path of API Gateway's Lambda integration URIs after `arn:{partition}:apigateway:{region}:lambda:`.
const APIGATEWAY_PATH: &str = "path/2015-03-31/functions/";
/// The suffix of API Gateway's Lambda integration URIs.
const INVOCATIONS: &str = "/invocations";

/// What the Invoke API path keeps of a function ARN (as the AWS SDKs encode a path label:
/// RFC 3986 unreserved characters; `:` becomes `%3A`).
const PATH_LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A Lambda function named by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionArn {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: String,
    /// The function's region (where it is invoked).
    pub region: String,
    /// The unqualified function ARN (`arn:aws:lambda:{region}:{account}:function:{name}`).
    pub unqualified: String,
    /// The alias or version after the name, if any (sent as `Qualifier`).
    pub qualifier: Option<String>,
}

/// Why a URI that looks like an ARN does not name a Lambda function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ArnError {
    /// Not `arn:{partition}:lambda:{region}:{account}:function:{name}[:{qualifier}]`.
    #[error(
        "expected arn:aws:lambda:{{region}}:{{account}}:function:{{name}}[:{{alias or version}}]"
    )]
    Function,
    /// An `arn:…:apigateway:…` URI that is not a Lambda integration URI.
    #[error(
        "expected arn:aws:apigateway:{{region}}:lambda:path/2015-03-31/functions/{{function ARN}}/invocations"
    )]
    Apigateway,
}

/// Whether `uri` is an ARN (and so must name a Lambda function) rather than a URL.
pub(crate) fn is_arn(uri: &str) -> bool {
    uri.starts_with("arn:")
}

impl FunctionArn {
    /// Parses a function ARN or an API Gateway Lambda integration URI.
    ///
    /// # Errors
    /// [`ArnError`] when `uri` is neither.
    pub(crate) fn parse(uri: &str) -> Result<Self, ArnError> {
        let parts: Vec<&str> = uri.splitn(6, ':').collect();
        if parts.len() == 6 && parts[2] == "apigateway" {
            let inner = parts[5]
                .strip_prefix(APIGATEWAY_PATH)
                .and_then(|rest| rest.strip_suffix(INVOCATIONS))
                .filter(|_| parts[4] == "lambda" && !parts[3].is_empty())
                .ok_or(ArnError::Apigateway)?;
            return Self::function(inner);
        }
        Self::function(uri)
    }

    /// `arn:{partition}:lambda:{region}:{account}:function:{name}[:{qualifier}]`.
    fn function(arn: &str) -> Result<Self, ArnError> {
        let parts: Vec<&str> = arn.split(':').collect();
        let (prefix, qualifier) = match parts.len() {
            7 => (&parts[..], None),
            8 => (&parts[..7], Some(parts[7])),
            _ => return Err(ArnError::Function),
        };
        let [
            arn_word,
            partition,
            service,
            region,
            account,
            resource,
            name,
        ] = prefix
        else {
            return Err(ArnError::Function);
        };
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let valid_qualifier = qualifier.is_none_or(|q| {
            !q.is_empty()
                && q.len() <= 128
                && q.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$')
        });
        let valid_region = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let valid = *arn_word == "arn"
            && partition.starts_with("aws")
            && *service == "lambda"
            && valid_region
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && *resource == "function"
            && valid_name
            && valid_qualifier;
        if !valid {
            return Err(ArnError::Function);
        }
        Ok(Self {
            partition: (*partition).to_string(),
            region: (*region).to_string(),
            unqualified: prefix.join(":"),
            qualifier: qualifier.map(str::to_string),
        })
    }

    /// The Lambda endpoint of the function's region and partition.
    pub(crate) fn endpoint(&self) -> String {
        let domain = match self.partition.as_str() {
            "aws-cn" => "amazonaws.com.cn",
            _ => "amazonaws.com",
        };
        format!("https://lambda.{}.{domain}", self.region)
    }

    /// The Invoke API's path and query: the unqualified ARN as the path label, the alias or
    /// version as `Qualifier` (as the AWS SDKs send `Invoke`).
    pub(crate) fn invoke_path(&self) -> String {
        let label = utf8_percent_encode(&self.unqualified, PATH_LABEL);
        match &self.qualifier {
            Some(q) => format!(
                "/2015-03-31/functions/{label}/invocations?Qualifier={}",
                utf8_percent_encode(q, PATH_LABEL)
            ),
            None => format!("/2015-03-31/functions/{label}/invocations"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arns() {
        let f = FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:chat-connect")
            .expect("valid");
        assert_eq!(f.region, "us-east-1");
        assert_eq!(f.qualifier, None);
        assert_eq!(f.endpoint(), "https://lambda.us-east-1.amazonaws.com");
        assert_eq!(
            f.invoke_path(),
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Achat-connect/invocations"
        );
        let f = FunctionArn::parse("arn:aws:lambda:eu-west-1:123456789012:function:chat:live")
            .expect("valid");
        assert_eq!(f.qualifier.as_deref(), Some("live"));
        assert_eq!(
            f.unqualified,
            "arn:aws:lambda:eu-west-1:123456789012:function:chat"
        );
        assert!(f.invoke_path().ends_with("/invocations?Qualifier=live"));
        let f = FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:chat:$LATEST")
            .expect("valid");
        assert!(f.invoke_path().ends_with("?Qualifier=%24LATEST"));
        let f = FunctionArn::parse("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:7")
            .expect("valid");
        assert_eq!(f.endpoint(), "https://lambda.cn-north-1.amazonaws.com.cn");
    }

    #[test]
    fn apigateway_integration_uris() {
        let f = FunctionArn::parse(
            "arn:aws:apigateway:us-west-2:lambda:path/2015-03-31/functions/arn:aws:lambda:us-west-2:123456789012:function:chat:prod/invocations",
        )
        .expect("valid");
        assert_eq!(f.region, "us-west-2");
        assert_eq!(
            f.unqualified,
            "arn:aws:lambda:us-west-2:123456789012:function:chat"
        );
        assert_eq!(f.qualifier.as_deref(), Some("prod"));
    }

    #[test]
    fn malformed_arns() {
        for uri in [
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:lambda:us-east-1:123456789012:layer:x",
            "arn:aws:lambda:us-east-1:12345:function:x",
            "arn:aws:s3:us-east-1:123456789012:function:x",
            "arn:aws:lambda::123456789012:function:x",
            "arn:aws:lambda:us-east-1:123456789012:function:x:a:b",
            "arn:aws:lambda:us-east-1:123456789012:function:x y",
            "arn:aws:lambda:us-east-1:123456789012:function:x:",
        ] {
            assert_eq!(FunctionArn::parse(uri), Err(ArnError::Function), "{uri}");
        }
        for uri in [
            "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/x",
            "arn:aws:apigateway:us-east-1:s3:path/bucket",
        ] {
            assert_eq!(FunctionArn::parse(uri), Err(ArnError::Apigateway), "{uri}");
        }
    }
}
