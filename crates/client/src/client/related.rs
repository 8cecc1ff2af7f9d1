//! Sightings and mitigations from other members, and everything related
//! to an incident that the caller can open: its thread (with
//! acknowledgements and the Art. 73 clock), the sightings and mitigations
//! about any of its reports or its models, and evaluation results about
//! the same models.

use cairn_proto::intake::v1 as intake;
use cairn_record::pb;

use super::Client;
use crate::error::ClientError;
use crate::prepare::{self, Prepared, Share};
use crate::thread::Timeline;
use crate::verify::{self, Content};

/// What is related to one incident, as far as the caller may see.
#[derive(Clone, Debug)]
pub struct Related {
    /// The incident's thread.
    pub timeline: Timeline,
    /// Sightings about one of its reports or naming one of its models,
    /// opened where the caller may (`None`: sealed to others).
    pub sightings: Vec<(pb::StoredRecord, Option<intake::Sighting>)>,
    /// Mitigations and advisories, likewise.
    pub mitigations: Vec<(pb::StoredRecord, Option<intake::Mitigation>)>,
    /// Evaluation results whose model is one the incident names.
    pub results: Vec<pb::StoredRecord>,
}

impl Client {
    /// Validates, seals and signs a sighting about the incident `about`
    /// (or, without one, about the model the sighting names).
    pub fn prepare_sighting(
        &self,
        sighting: &intake::Sighting,
        share: &Share,
        about: Option<&str>,
    ) -> Result<Prepared, ClientError> {
        prepare::sighting(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            sighting,
            share,
            about,
        )
    }

    /// Validates, seals and signs a mitigation or advisory about the
    /// incident `about` (or the model it names).
    pub fn prepare_mitigation(
        &self,
        mitigation: &intake::Mitigation,
        share: &Share,
        about: Option<&str>,
    ) -> Result<Prepared, ClientError> {
        prepare::mitigation(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            mitigation,
            share,
            about,
        )
    }

    /// Everything related to the incident `record_id` that the caller may
    /// see.
    pub async fn related(&self, record_id: &str) -> Result<Related, ClientError> {
        let timeline = self.timeline(record_id).await?;
        let reports: Vec<&str> = timeline
            .reports
            .iter()
            .map(|r| r.record_id.as_str())
            .collect();
        let mut models: Vec<String> = Vec::new();
        for r in &timeline.reports {
            let opened = self.get_incident(&r.record_id, false).await.ok();
            let system = opened
                .and_then(|s| self.open(&s).ok())
                .and_then(|o| o.incident().and_then(|i| i.ai_system.clone()));
            if let Some(sys) = system {
                models.push(sys.name.clone());
                for m in sys.models {
                    models.extend([m.id, m.digest]);
                }
            }
        }
        models.retain(|m| !m.is_empty());
        models.sort();
        models.dedup();
        let kinds = vec![
            pb::RecordKind::Sighting as i32,
            pb::RecordKind::Mitigation as i32,
        ];
        let (mut sightings, mut mitigations) = (Vec::new(), Vec::new());
        for s in self
            .all_incidents(pb::RecordFilter {
                kinds,
                ..Default::default()
            })
            .await?
        {
            let about = verify::stored_header(&s)?.about.map(|a| a.uuid);
            let about_this = about.as_deref().is_some_and(|a| reports.contains(&a));
            let names = |m: &Option<intake::ModelIdentifier>| {
                m.as_ref()
                    .is_some_and(|m| models.contains(&m.id) || models.contains(&m.digest))
            };
            match self.open(&s).ok().map(|o| o.content) {
                Some(Content::Sighting(c)) if about_this || names(&c.model) => {
                    sightings.push((s, Some(c)))
                }
                Some(Content::Mitigation(c)) if about_this || names(&c.model) => {
                    mitigations.push((s, Some(c)))
                }
                None if about_this => match verify::stored_header(&s)?.kind() {
                    pb::RecordKind::Sighting => sightings.push((s, None)),
                    _ => mitigations.push((s, None)),
                },
                _ => {}
            }
        }
        let mut results = Vec::new();
        for model in &models {
            let by_model = pb::EvaluationFilter {
                model_name: model.clone(),
                ..Default::default()
            };
            let found = self
                .all_results(pb::RecordKind::EvaluationResult, Some(by_model))
                .await?;
            results.extend(found);
        }
        Ok(Related {
            timeline,
            sightings,
            mitigations,
            results,
        })
    }

    /// Every incident-service record matching `filter`, all pages.
    async fn all_incidents(
        &self,
        filter: pb::RecordFilter,
    ) -> Result<Vec<pb::StoredRecord>, ClientError> {
        let (mut all, mut token) = (Vec::new(), String::new());
        loop {
            let (page, next) = self.list_incidents(filter.clone(), 500, token).await?;
            all.extend(page);
            if next.is_empty() {
                return Ok(all);
            }
            token = next;
        }
    }
}
