//! Request bodies of the JSON-protocol actions (SQS, Kinesis, EventBridge, Step Functions,
//! DynamoDB) and the Lambda `Event` payload, made by the simple mapping.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::message::{Message, Params};

/// SQS `SendMessage`: the payload as `MessageBody`, the context as `String` message attributes;
/// for a FIFO queue (`.fifo`) `MessageGroupId` defaults to the connection id and
/// `MessageDeduplicationId` to the request id.
pub(crate) fn sqs_send_message(params: &Params, msg: &Message<'_>) -> Result<Value, String> {
    let queue_url = params.need("QueueUrl")?;
    let attributes: Map<String, Value> = (msg.attributes().into_iter())
        .map(|(name, value)| {
            let attribute = json!({"DataType": "String", "StringValue": value});
            (name.to_string(), attribute)
        })
        .collect();
    let mut body = json!({
        "QueueUrl": queue_url,
        "MessageBody": msg.text(),
        "MessageAttributes": attributes,
    });
    let fifo = queue_url.ends_with(".fifo");
    let group = params
        .get("MessageGroupId")
        .or(fifo.then_some(msg.connection_id));
    let dedup = (params.get("MessageDeduplicationId")).or(fifo.then_some(msg.request_id));
    if let Some(group) = group {
        body["MessageGroupId"] = group.into();
    }
    if let Some(dedup) = dedup {
        body["MessageDeduplicationId"] = dedup.into();
    }
    if let Some(delay) = params.get("DelaySeconds") {
        let delay: u32 = (delay.parse())
            .map_err(|_| format!("DelaySeconds `{delay}` is not a number of seconds"))?;
        body["DelaySeconds"] = delay.into();
    }
    Ok(body)
}

/// Kinesis `PutRecord`: the payload's bytes as `Data`, `PartitionKey` the connection id unless
/// configured (one connection's records stay in order on one shard).
pub(crate) fn kinesis_put_record(params: &Params, msg: &Message<'_>) -> Result<Value, String> {
    let data = if msg.payload.is_empty() {
        STANDARD.encode("{}")
    } else {
        STANDARD.encode(msg.payload)
    };
    Ok(json!({
        "StreamName": params.need("StreamName")?,
        "Data": data,
        "PartitionKey": params.get("PartitionKey").unwrap_or(msg.connection_id),
    }))
}

/// EventBridge `PutEvents`: one entry whose `Detail` is the envelope; `EventBusName` defaults
/// to `default`, `Source` to `wsgate`, `DetailType` to the route key.
pub(crate) fn events_put_events(params: &Params, msg: &Message<'_>) -> Result<Value, String> {
    Ok(json!({
        "Entries": [{
            "EventBusName": params.get("EventBusName").unwrap_or("default"),
            "Source": params.get("Source").unwrap_or("wsgate"),
            "DetailType": params.get("DetailType").unwrap_or(msg.route_key),
            "Detail": msg.envelope().to_string(),
        }]
    }))
}

/// Step Functions `StartExecution`: the envelope as `input`.
pub(crate) fn states_start_execution(params: &Params, msg: &Message<'_>) -> Result<Value, String> {
    let mut body = json!({
        "stateMachineArn": params.need("stateMachineArn")?,
        "input": msg.envelope().to_string(),
    });
    if let Some(name) = params.get("name") {
        body["name"] = name.into();
    }
    Ok(body)
}

/// DynamoDB `PutItem`: the payload must be a JSON object (none: `{}`); its values become
/// attribute values (string `S`, number `N`, boolean `BOOL`, null `NULL`, array `L`, object
/// `M`), and `connectionId` (`S`) is added when the object has no such key.
pub(crate) fn dynamodb_put_item(params: &Params, msg: &Message<'_>) -> Result<Value, String> {
    let table = params.need("TableName")?;
    let object = if msg.payload.is_empty() {
        Map::new()
    } else if msg.binary {
        return Err("DynamoDB PutItem needs a JSON object; the message is binary".into());
    } else {
        match serde_json::from_slice(msg.payload) {
            Ok(Value::Object(object)) => object,
            _ => return Err("DynamoDB PutItem needs the message to be a JSON object".into()),
        }
    };
    let mut item: Map<String, Value> = (object.into_iter())
        .map(|(k, v)| (k, attribute_value(v)))
        .collect();
    item.entry("connectionId")
        .or_insert_with(|| json!({"S": msg.connection_id}));
    Ok(json!({"TableName": table, "Item": item}))
}

/// A JSON value in DynamoDB's typed JSON.
pub(crate) fn attribute_value(value: Value) -> Value {
    match value {
        Value::Null => json!({"NULL": true}),
        Value::Bool(b) => json!({"BOOL": b}),
        Value::Number(n) => json!({"N": n.to_string()}),
        Value::String(s) => json!({"S": s}),
        Value::Array(items) => {
            json!({"L": items.into_iter().map(attribute_value).collect::<Vec<_>>()})
        }
        Value::Object(map) => {
            let map: Map<String, Value> = (map.into_iter())
                .map(|(k, v)| (k, attribute_value(v)))
                .collect();
            json!({ "M": map })
        }
    }
}

/// Lambda `Invoke` (`Event`): the envelope as the payload.
pub(crate) fn lambda_payload(msg: &Message<'_>) -> Value {
    msg.envelope()
}
