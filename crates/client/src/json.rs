//! Content messages from JSON in the protobuf JSON mapping (field names in
//! lowerCamelCase or as in the .proto, enums by name, timestamps in RFC
//! 3339, 64-bit integers as strings or numbers).

use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use prost_reflect::{DescriptorPool, DynamicMessage};

use crate::error::ClientError;

/// The descriptors of the v1 API, decoded once (DescriptorPool is a cheap
/// shared handle).
fn pool() -> Result<DescriptorPool, ClientError> {
    static POOL: std::sync::OnceLock<Result<DescriptorPool, String>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(cairn_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|detail| ClientError::Json {
        message: "the v1 descriptor set".into(),
        detail,
    })
}

fn misfit(message: &str, detail: impl std::fmt::Display) -> ClientError {
    ClientError::Json {
        message: message.to_owned(),
        detail: detail.to_string(),
    }
}

/// Parses `json` as the message `full_name` and converts it to `T`.
pub fn from_json<T: prost::Message + Default>(
    full_name: &str,
    json: &str,
) -> Result<T, ClientError> {
    let pool = pool()?;
    let desc = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| ClientError::UnknownMessage {
            name: full_name.to_owned(),
        })?;
    let mut de = serde_json::Deserializer::from_str(json);
    let dynamic = DynamicMessage::deserialize(desc, &mut de).map_err(|e| misfit(full_name, e))?;
    de.end()
        .map_err(|e| misfit(full_name, format!("trailing data ({e})")))?;
    dynamic
        .transcode_to::<T>()
        .map_err(|e| misfit(full_name, e))
}

fn dynamic<T: prost::Message>(full_name: &str, message: &T) -> Result<DynamicMessage, ClientError> {
    let pool = pool()?;
    let desc = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| ClientError::UnknownMessage {
            name: full_name.to_owned(),
        })?;
    DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
        .map_err(|e| misfit(full_name, e))
}

/// Renders a message as JSON in the protobuf JSON mapping; every receipt
/// in it has all its fields (see [`complete_receipts`]).
pub fn to_json<T: prost::Message>(
    full_name: &str,
    message: &T,
) -> Result<serde_json::Value, ClientError> {
    let dynamic = dynamic(full_name, message)?;
    let mut value = serde_json::to_value(&dynamic).map_err(|e| misfit(full_name, e))?;
    if full_name == "cairn.common.v1.Receipt" {
        complete_receipt(&mut value);
    }
    complete_receipts(&mut value);
    Ok(value)
}

/// Renders a message as JSON in the protobuf JSON mapping with the field
/// names of the .proto (snake_case), as STIX properties want them.
pub fn to_json_proto_names<T: prost::Message>(
    full_name: &str,
    message: &T,
) -> Result<serde_json::Value, ClientError> {
    let dynamic = dynamic(full_name, message)?;
    let options = prost_reflect::SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| misfit(full_name, e))
}

/// The schema every receipt printed as JSON follows (JSON Schema 2020-12;
/// `proto/cairn/common/v1/receipt.schema.json`): `leaf` (base64),
/// `leafIndex` (decimal string), `checkpoint` (the signed note) and
/// `inclusionProof` (base64 hashes), all present — leaf 0 and an empty
/// proof included, which the protobuf JSON mapping would leave out.
pub const RECEIPT_SCHEMA: &str = include_str!("../../../proto/cairn/common/v1/receipt.schema.json");

/// Gives every object under a `receipt` key in `value` all of a receipt's
/// fields.
pub fn complete_receipts(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "receipt" && v.is_object() {
                    complete_receipt(v);
                } else {
                    complete_receipts(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(complete_receipts),
        _ => {}
    }
}

fn complete_receipt(v: &mut serde_json::Value) {
    if let Some(map) = v.as_object_mut() {
        for (field, default) in [
            ("leaf", serde_json::json!("")),
            ("leafIndex", serde_json::json!("0")),
            ("checkpoint", serde_json::json!("")),
            ("inclusionProof", serde_json::json!([])),
        ] {
            map.entry(field).or_insert(default);
        }
    }
}

/// An incident from JSON.
pub fn incident_from_json(json: &str) -> Result<intake::Incident, ClientError> {
    from_json("cairn.intake.v1.Incident", json)
}

/// An evaluation result from JSON.
pub fn result_from_json(json: &str) -> Result<evals::EvaluationResult, ClientError> {
    from_json("cairn.evals.v1.EvaluationResult", json)
}
