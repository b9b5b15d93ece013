//! The AWS service actions a `type: aws` integration may call: their service (signing name and
//! endpoint prefix), wire protocol and parameters.

/// One supported action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// SQS `SendMessage` (JSON protocol).
    SqsSendMessage,
    /// SNS `Publish` (query protocol).
    SnsPublish,
    /// Kinesis Data Streams `PutRecord` (JSON 1.1).
    KinesisPutRecord,
    /// EventBridge `PutEvents` (JSON 1.1).
    EventsPutEvents,
    /// Step Functions `StartExecution` (JSON 1.0).
    StatesStartExecution,
    /// DynamoDB `PutItem` (JSON 1.0).
    DynamodbPutItem,
    /// Lambda `Invoke` with `InvocationType: Event` (REST).
    LambdaInvoke,
}

/// How an action's request is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `POST /` with `x-amz-target` and an `application/x-amz-json-1.x` body.
    Json {
        /// `application/x-amz-json-1.0` or `-1.1`.
        content_type: &'static str,
        /// `x-amz-target`.
        target: &'static str,
    },
    /// `POST /` with a form body (`Action=...&Version=...`).
    Query,
    /// `POST /2015-03-31/functions/{FunctionName}/invocations`.
    LambdaRest,
}

const ALL: [Action; 7] = [
    Action::SqsSendMessage,
    Action::SnsPublish,
    Action::KinesisPutRecord,
    Action::EventsPutEvents,
    Action::StatesStartExecution,
    Action::DynamodbPutItem,
    Action::LambdaInvoke,
];

/// The form content type of the query protocol.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const JSON_10: &str = "application/x-amz-json-1.0";
const JSON_11: &str = "application/x-amz-json-1.1";

impl Action {
    /// The action `name` of `service`.
    ///
    /// # Errors
    /// An unknown service or an action the service does not offer here, in words.
    pub(crate) fn find(service: &str, name: &str) -> Result<Self, String> {
        let mut of_service = ALL.iter().filter(|a| a.service() == service).peekable();
        if of_service.peek().is_none() {
            return Err(format!(
                "unknown service `{service}`; one of: sqs, sns, kinesis, events, states, dynamodb, lambda"
            ));
        }
        let names: Vec<&str> = of_service.clone().map(|a| a.name()).collect();
        of_service
            .find(|a| a.name() == name)
            .copied()
            .ok_or_else(|| {
                format!(
                    "`{service}` has no supported action `{name}`; supported: {}",
                    names.join(", ")
                )
            })
    }

    /// `service` names a supported service.
    pub(crate) fn service_known(service: &str) -> bool {
        ALL.iter().any(|a| a.service() == service)
    }

    /// The service: its SigV4 signing name and the first label of its regional endpoint.
    pub(crate) fn service(self) -> &'static str {
        match self {
            Self::SqsSendMessage => "sqs",
            Self::SnsPublish => "sns",
            Self::KinesisPutRecord => "kinesis",
            Self::EventsPutEvents => "events",
            Self::StatesStartExecution => "states",
            Self::DynamodbPutItem => "dynamodb",
            Self::LambdaInvoke => "lambda",
        }
    }

    /// The action's AWS name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::SqsSendMessage => "SendMessage",
            Self::SnsPublish => "Publish",
            Self::KinesisPutRecord => "PutRecord",
            Self::EventsPutEvents => "PutEvents",
            Self::StatesStartExecution => "StartExecution",
            Self::DynamodbPutItem => "PutItem",
            Self::LambdaInvoke => "Invoke",
        }
    }

    /// How its request is written.
    pub(crate) fn protocol(self) -> Protocol {
        let json = |content_type, target| Protocol::Json {
            content_type,
            target,
        };
        match self {
            Self::SqsSendMessage => json(JSON_10, "AmazonSQS.SendMessage"),
            Self::SnsPublish => Protocol::Query,
            Self::KinesisPutRecord => json(JSON_11, "Kinesis_20131202.PutRecord"),
            Self::EventsPutEvents => json(JSON_11, "AWSEvents.PutEvents"),
            Self::StatesStartExecution => json(JSON_10, "AWSStepFunctions.StartExecution"),
            Self::DynamodbPutItem => json(JSON_10, "DynamoDB_20120810.PutItem"),
            Self::LambdaInvoke => Protocol::LambdaRest,
        }
    }

    /// Parameters the simple mapping needs (a request template may make them unnecessary,
    /// except those in [`Action::in_url`]).
    pub(crate) fn required(self) -> &'static [&'static str] {
        match self {
            Self::SqsSendMessage => &["QueueUrl"],
            Self::SnsPublish => &["TopicArn"],
            Self::KinesisPutRecord => &["StreamName"],
            Self::EventsPutEvents => &[],
            Self::StatesStartExecution => &["stateMachineArn"],
            Self::DynamodbPutItem => &["TableName"],
            Self::LambdaInvoke => &["FunctionName"],
        }
    }

    /// Parameters that go into the request URL, needed even with a request template.
    pub(crate) fn in_url(self) -> &'static [&'static str] {
        match self {
            Self::LambdaInvoke => &["FunctionName"],
            _ => &[],
        }
    }

    /// Parameters that may be given.
    pub(crate) fn optional(self) -> &'static [&'static str] {
        match self {
            Self::SqsSendMessage => &["MessageGroupId", "MessageDeduplicationId", "DelaySeconds"],
            Self::SnsPublish => &["Subject", "MessageGroupId"],
            Self::KinesisPutRecord => &["PartitionKey"],
            Self::EventsPutEvents => &["EventBusName", "Source", "DetailType"],
            Self::StatesStartExecution => &["name"],
            Self::DynamodbPutItem => &[],
            Self::LambdaInvoke => &["Qualifier"],
        }
    }

    /// `name` is one of its parameters.
    pub(crate) fn accepts(self, name: &str) -> bool {
        self.required().contains(&name) || self.optional().contains(&name)
    }

    /// Its parameters in words, for errors.
    pub(crate) fn parameter_list(self) -> String {
        let names: Vec<String> = (self.required().iter().map(|n| format!("`{n}` (required)")))
            .chain(self.optional().iter().map(|n| format!("`{n}`")))
            .collect();
        if names.is_empty() {
            "no parameters".into()
        } else {
            names.join(", ")
        }
    }
}
