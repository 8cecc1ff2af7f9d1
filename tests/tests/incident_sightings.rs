//! Sightings and mitigations from other members, on a real network through
//! the SDK: about an incident or a model, sealed to whom their author
//! chooses, never reaching anyone a TLP:RED incident is hidden from; and
//! `related`, which gathers them with the thread and the evaluation
//! results about the same model.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_client::{ClientError, Share};
use cairn_proto::intake::v1 as intake;
use cairn_record::pb;
use cairn_tests::Net;
use time::OffsetDateTime;
use tonic::Code;

fn refusal(e: ClientError) -> tonic::Status {
    match e {
        ClientError::Status(s) => s,
        other => panic!("not a refusal: {other}"),
    }
}

fn ids<T>(v: &[(pb::StoredRecord, T)]) -> Vec<String> {
    v.iter()
        .map(|(s, _)| cairn_client::verify::stored_id(s))
        .collect()
}

fn sighting(model: Option<&str>) -> intake::Sighting {
    intake::Sighting {
        description: "the same dosage answer, seen in a Japanese deployment".into(),
        observed_at: Some(cairn_record::header::time_to_timestamp(
            OffsetDateTime::now_utc() - time::Duration::hours(3),
        )),
        jurisdiction: "JP".into(),
        model: model.map(|m| intake::ModelIdentifier {
            id: m.into(),
            digest: String::new(),
        }),
        evidence: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sightings_and_mitigations_reach_only_those_who_may_see_their_incident() {
    let net = Net::start(Duration::from_secs(10)).await;
    let (uk, jp, eu) = (
        net.client("uk-aisi"),
        net.client("jp-aisi"),
        net.client("eu-aio"),
    );
    let incident =
        cairn_client::json::incident_from_json(include_str!("../../examples/incident.json"))
            .unwrap();
    let red = uk
        .submit_incident(
            &uk.prepare_incident(&incident, &Share::Red(vec!["jp-aisi".into()]))
                .unwrap(),
        )
        .await
        .unwrap()
        .record_id;

    // A sighting of a RED incident stays among its recipients.
    let green = jp
        .prepare_sighting(&sighting(None), &Share::Green, Some(&red))
        .unwrap();
    let err = refusal(jp.submit_incident(&green).await.unwrap_err());
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("is TLP:RED, to that record's recipients only"),
        "{err:?}"
    );
    let to_uk = Share::Red(vec!["uk-aisi".into()]);
    let seen = jp
        .submit_incident(
            &jp.prepare_sighting(&sighting(None), &to_uk, Some(&red))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(seen.verified_in_tree_of.is_some(), "logged like any record");

    // An advisory about the model only, for every member.
    let advisory = intake::Mitigation {
        title: "Disable dosing answers".into(),
        description: "Until the retrieval corpus is fixed.".into(),
        advisory: true,
        model: Some(intake::ModelIdentifier {
            id: "example-med-2026-09".into(),
            digest: String::new(),
        }),
        evidence: vec![],
    };
    let advised = eu
        .submit_incident(
            &eu.prepare_mitigation(&advisory, &Share::Green, None)
                .unwrap(),
        )
        .await
        .unwrap();
    // And a result about the same system.
    let mut result =
        cairn_client::json::result_from_json(include_str!("../../examples/result.json")).unwrap();
    result.model.as_mut().unwrap().name = "MedAssist".into();
    let evaluated = jp
        .publish_result(&jp.prepare_result(&result, &Share::Green).unwrap())
        .await
        .unwrap();

    // The incident's author sees all of it together.
    let r = uk.related(&red).await.unwrap();
    assert_eq!(r.timeline.thread, red);
    assert_eq!(ids(&r.sightings), std::slice::from_ref(&seen.record_id));
    assert_eq!(r.sightings[0].1.as_ref().unwrap().jurisdiction, "JP");
    assert_eq!(
        ids(&r.mitigations),
        std::slice::from_ref(&advised.record_id)
    );
    let results: Vec<_> = r
        .results
        .iter()
        .map(cairn_client::verify::stored_id)
        .collect();
    assert_eq!(results, std::slice::from_ref(&evaluated.record_id));

    // For eu-aio neither the incident nor its sighting exists.
    assert_eq!(
        refusal(eu.related(&red).await.unwrap_err()).code(),
        Code::NotFound
    );
    assert_eq!(
        refusal(eu.get_incident(&seen.record_id, false).await.unwrap_err()).code(),
        Code::NotFound
    );
    let (listed, _) = eu
        .list_incidents(
            pb::RecordFilter {
                kinds: vec![pb::RecordKind::Sighting as i32],
                ..Default::default()
            },
            50,
            String::new(),
        )
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    // Its own sighting of the RED id answers as for an unknown id.
    let unknown = uuid::Uuid::now_v7().hyphenated().to_string();
    let answer = |target: String| {
        let eu = &eu;
        async move {
            let p = eu
                .prepare_sighting(&sighting(None), &Share::Green, Some(&target))
                .unwrap();
            let s = refusal(eu.submit_incident(&p).await.unwrap_err());
            (s.code(), s.message().replace(&target, "<id>"))
        }
    };
    let of_red = answer(red.clone()).await;
    assert_eq!(of_red.0, Code::NotFound);
    assert_eq!(of_red, answer(unknown).await);
    // A sighting about nothing is refused before it is sent.
    assert!(matches!(
        jp.prepare_sighting(&sighting(None), &Share::Green, None),
        Err(ClientError::AboutNothing { .. })
    ));
}

/// Every label of an incident × every reader: a recipient's sighting and
/// acknowledgement of it (shared with the author, RED where the incident
/// is) are seen by exactly those who may see the incident and are among
/// their recipients; to the others they do not exist or show no body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sightings_and_acknowledgements_follow_their_incident_at_every_label() {
    use pb::AcknowledgementState as State;
    let net = Net::start(Duration::from_secs(10)).await;
    let (uk, jp, eu) = (
        net.client("uk-aisi"),
        net.client("jp-aisi"),
        net.client("eu-aio"),
    );
    let incident =
        cairn_client::json::incident_from_json(include_str!("../../examples/incident.json"))
            .unwrap();
    let to_jp = || vec!["jp-aisi".to_owned()];
    let shares = [
        Share::Clear,
        Share::Green,
        Share::Amber(to_jp()),
        Share::AmberStrict(to_jp()),
        Share::Red(to_jp()),
    ];
    for share in shares {
        let label = share.label();
        let id = uk
            .submit_incident(&uk.prepare_incident(&incident, &share).unwrap())
            .await
            .unwrap()
            .record_id;
        let seen_by_jp = jp.get_incident(&id, false).await.unwrap();
        let ack = jp
            .submit_incident(
                &jp.prepare_acknowledgement(&seen_by_jp, State::Received, "", &[])
                    .unwrap(),
            )
            .await
            .unwrap()
            .record_id;
        let to_uk = match label {
            pb::SharingLabel::TlpRed => Share::Red(vec!["uk-aisi".into()]),
            _ => Share::Amber(vec!["uk-aisi".into()]),
        };
        let sighting = jp
            .submit_incident(
                &jp.prepare_sighting(&sighting(None), &to_uk, Some(&id))
                    .unwrap(),
            )
            .await
            .unwrap()
            .record_id;
        for rec in [&ack, &sighting] {
            // The author and the sender open it.
            for who in [&uk, &jp] {
                let got = who.get_incident(rec, false).await.unwrap();
                assert!(
                    who.open(&got).is_ok(),
                    "{label:?} {rec} by {}",
                    who.member()
                );
            }
            // eu-aio: the header where the incident's header reaches it,
            // nothing at all where the incident is RED.
            let err = refusal(eu.get_incident(rec, false).await.unwrap_err());
            let want = if label == pb::SharingLabel::TlpRed {
                Code::NotFound
            } else {
                Code::PermissionDenied
            };
            assert_eq!(err.code(), want, "{label:?}: {err:?}");
        }
        let (listed, _) = eu
            .list_incidents(
                pb::RecordFilter {
                    about: Some(pb::RecordId { uuid: id.clone() }),
                    ..Default::default()
                },
                50,
                String::new(),
            )
            .await
            .unwrap();
        let expect = usize::from(label != pb::SharingLabel::TlpRed);
        assert_eq!(listed.len(), expect, "{label:?}: eu-aio lists {listed:?}");
    }
}
