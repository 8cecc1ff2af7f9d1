//! The gateway's collections: one per record kind and TLP label (so a
//! local tool can be given, say, only the TLP:CLEAR and TLP:GREEN
//! incidents), and one holding the network's member identities, the TLP
//! 2.0 marking definitions and cairn's extension definitions.

use cairn_record::pb::{RecordKind, SharingLabel};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::STIX_MEDIA_TYPE;
use crate::auth::User;

/// What a collection holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// Incidents and what follows them up (sightings, mitigations and the
    /// relationships between them); tools may add incidents.
    Incidents,
    /// Evaluation results.
    Evaluations,
    /// Identities, marking and extension definitions.
    Network,
}

/// One TAXII collection.
#[derive(Clone, Debug)]
pub struct Collection {
    /// Its TAXII id (a UUID derived from the alias, stable everywhere).
    pub id: String,
    /// A readable name, also accepted in URLs.
    pub alias: String,
    /// Title.
    pub title: String,
    /// What it holds.
    pub holds: Holds,
    /// The label of every object in it (none for the network collection).
    pub label: Option<SharingLabel>,
}

const LABELS: [SharingLabel; 5] = [
    SharingLabel::TlpClear,
    SharingLabel::TlpGreen,
    SharingLabel::TlpAmber,
    SharingLabel::TlpAmberStrict,
    SharingLabel::TlpRed,
];

impl Collection {
    fn new(alias: String, title: String, holds: Holds, label: Option<SharingLabel>) -> Self {
        let name = format!("taxii-collection:{alias}");
        let id = Uuid::new_v5(&cairn_stix::vocab::NAMESPACE, name.as_bytes()).to_string();
        Self {
            id,
            alias,
            title,
            holds,
            label,
        }
    }

    /// Whether `user` may read it: its label is at most the user's.
    pub fn can_read(&self, user: &User) -> bool {
        self.label.is_none_or(|l| l as i32 <= user.max_label as i32)
    }

    /// Whether `user` may add objects: incident collections it may read.
    pub fn can_write(&self, user: &User) -> bool {
        self.holds == Holds::Incidents && self.can_read(user)
    }

    /// The collection resource (TAXII 2.1 section 5.2.1) as `user` sees it.
    pub fn resource(&self, user: &User) -> Value {
        let description = match (self.holds, self.label) {
            (Holds::Network, _) => "The network's members as identities, the TLP 2.0 marking \
                 definitions and cairn's extension definitions."
                .to_owned(),
            (holds, Some(l)) => format!(
                "{} labelled TLP:{} that this member may open.{}",
                if holds == Holds::Incidents {
                    "Incidents, sightings, mitigations and their relationships"
                } else {
                    "Evaluation results"
                },
                cairn_stix::vocab::label_name(l).to_uppercase(),
                if holds == Holds::Incidents {
                    " Incidents added here are shared through cairn under this label."
                } else {
                    ""
                }
            ),
            (_, None) => String::new(),
        };
        json!({
            "id": self.id,
            "title": self.title,
            "description": description,
            "alias": self.alias,
            "can_read": self.can_read(user),
            "can_write": self.can_write(user),
            "media_types": [STIX_MEDIA_TYPE],
        })
    }
}

/// All of the gateway's collections.
#[derive(Clone, Debug)]
pub struct Collections {
    all: Vec<Collection>,
}

impl Default for Collections {
    fn default() -> Self {
        Self::new()
    }
}

impl Collections {
    /// The fixed set.
    pub fn new() -> Self {
        let mut all = Vec::new();
        for (holds, alias, title) in [
            (Holds::Incidents, "incidents", "Incidents"),
            (Holds::Evaluations, "evaluations", "Evaluation results"),
        ] {
            for label in LABELS {
                let name = cairn_stix::vocab::label_name(label);
                all.push(Collection::new(
                    format!("{alias}-tlp-{}", name.replace('+', "-")),
                    format!("{title} (TLP:{})", name.to_uppercase()),
                    holds,
                    Some(label),
                ));
            }
        }
        all.push(Collection::new(
            "network".into(),
            "Network members and definitions".into(),
            Holds::Network,
            None,
        ));
        Self { all }
    }

    /// Every collection.
    pub fn all(&self) -> &[Collection] {
        &self.all
    }

    /// The collection with this id or alias.
    pub fn find(&self, id: &str) -> Option<&Collection> {
        self.all.iter().find(|c| c.id == id || c.alias == id)
    }

    /// The network collection.
    pub fn network(&self) -> &Collection {
        &self.all[self.all.len() - 1]
    }

    /// Where the STIX form of a record of `kind` labelled `label` goes.
    pub fn for_record(&self, kind: RecordKind, label: SharingLabel) -> Option<&Collection> {
        let holds = match kind {
            RecordKind::EvaluationResult => Holds::Evaluations,
            RecordKind::Incident
            | RecordKind::Sighting
            | RecordKind::Mitigation
            | RecordKind::Acknowledgement => Holds::Incidents,
            _ => return None,
        };
        self.all
            .iter()
            .find(|c| c.holds == holds && c.label == Some(label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_label_has_one_collection_and_labels_bound_reading() {
        let c = Collections::new();
        assert_eq!(c.all().len(), 11);
        let green = c
            .for_record(RecordKind::Incident, SharingLabel::TlpGreen)
            .unwrap();
        assert_eq!(green.alias, "incidents-tlp-green");
        assert_eq!(c.find(&green.id).unwrap().alias, green.alias);
        assert!(
            c.for_record(RecordKind::DirectoryChange, SharingLabel::TlpGreen)
                .is_none()
        );
        let user = User {
            name: "misp".into(),
            max_label: SharingLabel::TlpGreen,
        };
        assert!(green.can_read(&user) && green.can_write(&user));
        let red = c.find("incidents-tlp-red").unwrap();
        assert!(!red.can_read(&user) && !red.can_write(&user));
        assert!(c.network().can_read(&user) && !c.network().can_write(&user));
        assert_eq!(
            c.find("evaluations-tlp-amber-strict").unwrap().holds,
            Holds::Evaluations
        );
    }
}
