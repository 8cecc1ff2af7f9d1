//! The fixed vocabulary of cairn's STIX: identifiers, the TLP 2.0 marking
//! definitions, the extension definitions cairn publishes, timestamps.

use cairn_record::pb::SharingLabel;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::{Uuid, uuid};

use crate::StixError;

/// The STIX version of every object.
pub const SPEC_VERSION: &str = "2.1";

/// The UUIDv5 namespace of every identifier cairn derives: an object
/// made from record `r` is `<type>--UUIDv5(NAMESPACE, "<type>:r")`, so
/// every gateway and every export names the same record the same way.
pub const NAMESPACE: Uuid = uuid!("a3c528bd-d860-4047-899a-093d9c7ee4ee");

/// OASIS's Incident Core Extension.
pub const INCIDENT_CORE_EXTENSION: &str =
    "extension-definition--ef765651-680c-498d-9894-99799f2fa126";
/// OASIS's TLP 2.0 marking extension.
pub const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
/// The type of cairn's evaluation-result objects (a new SDO).
pub const EVALUATION_TYPE: &str = "x-cairn-evaluation-result";
/// `source_name` of the external reference naming a record.
pub const SOURCE_NAME: &str = "cairn";
/// When cairn's extension definitions were published.
const PUBLISHED: &str = "2026-12-03T00:00:00.000Z";
/// The JSON schemas of the extensions, as published in the repository.
const SCHEMA_BASE: &str = "https://github.com/cairn-network/cairn/blob/main/crates/stix/schemas";

/// `<type>--UUIDv5(NAMESPACE, "<type>:<name>")`.
pub fn derived_id(ty: &str, name: &str) -> String {
    format!(
        "{ty}--{}",
        Uuid::new_v5(&NAMESPACE, format!("{ty}:{name}").as_bytes())
    )
}

/// The id of the object of type `ty` made from record `record_id`.
pub fn record_object_id(ty: &str, record_id: Uuid) -> String {
    derived_id(ty, &record_id.to_string())
}

/// The `identity` of a member.
pub fn member_identity_id(member: &str) -> String {
    derived_id("identity", &format!("member/{member}"))
}

/// The `identity` that publishes cairn's extension definitions.
pub fn cairn_identity_id() -> String {
    derived_id("identity", "cairn-project")
}

/// cairn's AI incident extension (a property extension of `incident`).
pub fn ai_incident_extension_id() -> String {
    derived_id("extension-definition", "cairn-ai-incident-v1")
}

/// cairn's evaluation-result extension (a new SDO).
pub fn evaluation_extension_id() -> String {
    derived_id("extension-definition", "cairn-evaluation-result-v1")
}

/// One TLP 2.0 level as OASIS publishes it.
struct Tlp {
    label: SharingLabel,
    id: &'static str,
    name: &'static str,
    value: &'static str,
}

/// The official TLP 2.0 marking definitions (cti-stix-common-objects,
/// extension-definition-specifications/tlp-2.0).
const TLP: [Tlp; 5] = [
    Tlp {
        label: SharingLabel::TlpClear,
        id: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        name: "TLP:CLEAR",
        value: "clear",
    },
    Tlp {
        label: SharingLabel::TlpGreen,
        id: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        name: "TLP:GREEN",
        value: "green",
    },
    Tlp {
        label: SharingLabel::TlpAmber,
        id: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        name: "TLP:AMBER",
        value: "amber",
    },
    Tlp {
        label: SharingLabel::TlpAmberStrict,
        id: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        name: "TLP:AMBER+STRICT",
        value: "amber+strict",
    },
    Tlp {
        label: SharingLabel::TlpRed,
        id: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        name: "TLP:RED",
        value: "red",
    },
];

/// The official TLP 2.0 marking-definition id of `label`.
pub fn marking_id(label: SharingLabel) -> Result<&'static str, StixError> {
    TLP.iter()
        .find(|t| t.label == label)
        .map(|t| t.id)
        .ok_or(StixError::NoLabel)
}

/// The label a TLP 2.0 marking-definition id stands for.
pub fn label_of_marking(id: &str) -> Option<SharingLabel> {
    TLP.iter().find(|t| t.id == id).map(|t| t.label)
}

/// The lowercase TLP name of `label` (`amber+strict`).
pub fn label_name(label: SharingLabel) -> &'static str {
    TLP.iter()
        .find(|t| t.label == label)
        .map_or("unspecified", |t| t.value)
}

/// All five TLP 2.0 marking definitions, exactly as OASIS publishes them.
pub fn marking_definitions() -> Vec<Value> {
    TLP.iter()
        .map(|t| {
            json!({
                "type": "marking-definition",
                "spec_version": SPEC_VERSION,
                "id": t.id,
                "created": "2022-10-01T00:00:00.000Z",
                "name": t.name,
                "extensions": {
                    TLP2_EXTENSION: {
                        "extension_type": "property-extension",
                        "tlp_2_0": t.value,
                    }
                }
            })
        })
        .collect()
}

/// The identity that publishes cairn's extensions, and the two extension
/// definitions (their JSON schemas are in `crates/stix/schemas/`).
pub fn extension_definitions() -> Vec<Value> {
    let by = cairn_identity_id();
    let common = |id: String, name: &str, description: &str, file: &str, kind: &str| {
        json!({
            "type": "extension-definition",
            "spec_version": SPEC_VERSION,
            "id": id,
            "created_by_ref": by,
            "created": PUBLISHED,
            "modified": PUBLISHED,
            "name": name,
            "description": description,
            "schema": format!("{SCHEMA_BASE}/{file}"),
            "version": "1.0.0",
            "extension_types": [kind],
        })
    };
    vec![
        json!({
            "type": "identity",
            "spec_version": SPEC_VERSION,
            "id": by,
            "created": PUBLISHED,
            "modified": PUBLISHED,
            "name": "cairn",
            "description": "The cairn network software: publisher of cairn's STIX extensions.",
            "identity_class": "organization",
        }),
        common(
            ai_incident_extension_id(),
            "cairn AI incident",
            "An AI incident as shared on a cairn network: the cairn record id, its \
             recipients and the full incident content (cairn.intake.v1.Incident in the \
             protobuf JSON mapping with .proto field names).",
            "ai-incident.schema.json",
            "property-extension",
        ),
        common(
            evaluation_extension_id(),
            "cairn evaluation result",
            "A published evaluation result of an AI model (cairn.evals.v1.EvaluationResult).",
            "evaluation-result.schema.json",
            "new-sdo",
        ),
    ]
}

/// A STIX timestamp: RFC 3339 in UTC with millisecond precision.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses a STIX timestamp (RFC 3339, `Z`).
pub fn parse_timestamp(property: &str, s: &str) -> Result<OffsetDateTime, StixError> {
    if !s.ends_with('Z') {
        return Err(StixError::property(
            property,
            "must be a UTC timestamp ending in Z",
        ));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| StixError::property(property, format!("not an RFC 3339 timestamp: {e}")))
}

/// Whether `id` is `<ty>--<RFC 4122 UUID>`.
pub fn is_id_of(ty: &str, id: &str) -> bool {
    id.strip_prefix(ty)
        .and_then(|rest| rest.strip_prefix("--"))
        .and_then(|u| Uuid::parse_str(u).ok())
        .is_some_and(|u| u.get_variant() == uuid::Variant::RFC4122 && u.get_version_num() != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_uuidv5() {
        let id = Uuid::parse_str("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap();
        let a = record_object_id("incident", id);
        assert_eq!(a, record_object_id("incident", id));
        assert!(is_id_of("incident", &a));
        let u = Uuid::parse_str(a.trim_start_matches("incident--")).unwrap();
        assert_eq!(u.get_version_num(), 5);
        assert_ne!(
            a,
            record_object_id("sighting", id).replace("sighting", "incident")
        );
    }

    #[test]
    fn published_ids_are_the_documented_ones() {
        // README.md and the schemas name these; Python's uuid.uuid5 gives
        // the same.
        assert_eq!(
            ai_incident_extension_id(),
            "extension-definition--113d0528-fbef-5d87-8f11-1e251e3907e8"
        );
        assert_eq!(
            evaluation_extension_id(),
            "extension-definition--2ea19136-b7b7-5e3b-b38e-7bc2ef139226"
        );
        assert_eq!(
            cairn_identity_id(),
            "identity--5ecdb70b-f7aa-5a05-b459-f2a2e7b97940"
        );
    }

    #[test]
    fn markings_round_trip_and_timestamps_have_milliseconds() {
        for label in [
            SharingLabel::TlpClear,
            SharingLabel::TlpGreen,
            SharingLabel::TlpAmber,
            SharingLabel::TlpAmberStrict,
            SharingLabel::TlpRed,
        ] {
            assert_eq!(label_of_marking(marking_id(label).unwrap()), Some(label));
        }
        assert!(marking_id(SharingLabel::Unspecified).is_err());
        let t = parse_timestamp("created", "2026-11-19T08:00:00.5Z").unwrap();
        assert_eq!(timestamp(t), "2026-11-19T08:00:00.500Z");
        assert!(parse_timestamp("created", "2026-11-19T08:00:00+01:00").is_err());
        assert!(!is_id_of("incident", "incident--nope"));
        assert!(!is_id_of(
            "incident",
            "sighting--0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        ));
    }
}
