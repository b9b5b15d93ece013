//! The query-protocol request of SNS `Publish` (a form body), percent-encoding as AWS's query
//! APIs expect, and the error code of a query-protocol (XML) error answer.

use super::message::{Message, Params};

/// SNS `Publish`: the payload as `Message`, the context as `String` message attributes.
pub(crate) fn sns_publish(params: &Params, msg: &Message<'_>) -> Result<String, String> {
    let mut form = Form::default();
    form.pair("Action", "Publish");
    form.pair("Version", "2010-03-31");
    form.pair("TopicArn", params.need("TopicArn")?);
    form.pair("Message", &msg.text());
    for name in ["Subject", "MessageGroupId"] {
        if let Some(value) = params.get(name) {
            form.pair(name, value);
        }
    }
    for (n, (name, value)) in msg.attributes().into_iter().enumerate() {
        let at = format!("MessageAttributes.entry.{}", n + 1);
        form.pair(&format!("{at}.Name"), name);
        form.pair(&format!("{at}.Value.DataType"), "String");
        form.pair(&format!("{at}.Value.StringValue"), value);
    }
    Ok(form.0)
}

/// An `application/x-www-form-urlencoded` body.
#[derive(Debug, Default)]
struct Form(String);

impl Form {
    fn pair(&mut self, name: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        encode_into(&mut self.0, name);
        self.0.push('=');
        encode_into(&mut self.0, value);
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (as the AWS SDKs do).
pub(crate) fn encode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The `<Code>` of a query-protocol error answer (`<ErrorResponse><Error><Code>...`).
pub(crate) fn xml_error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].trim().to_string())
}
