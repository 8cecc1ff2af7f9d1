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

/// Renders a message as JSON in the protobuf JSON mapping.
pub fn to_json<T: prost::Message>(
    full_name: &str,
    message: &T,
) -> Result<serde_json::Value, ClientError> {
    let pool = pool()?;
    let desc = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| ClientError::UnknownMessage {
            name: full_name.to_owned(),
        })?;
    let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
        .map_err(|e| misfit(full_name, e))?;
    serde_json::to_value(&dynamic).map_err(|e| misfit(full_name, e))
}

/// An incident from JSON.
pub fn incident_from_json(json: &str) -> Result<intake::Incident, ClientError> {
    from_json("cairn.intake.v1.Incident", json)
}

/// An evaluation result from JSON.
pub fn result_from_json(json: &str) -> Result<evals::EvaluationResult, ClientError> {
    from_json("cairn.evals.v1.EvaluationResult", json)
}
