//! The demo's incident response: a serious incident reported to two
//! members, one of which is alerted by its subscription on the model;
//! acknowledged by both, sighted by one, followed up to its final report within the EU AI
//! Act Art. 73 period, as the timeline shows.

use anyhow::{anyhow, ensure};
use cairn_client::alerts::Subscription;
use cairn_client::thread::Clock;
use cairn_client::{Client, Share, json};
use cairn_record::pb::{AcknowledgementState, IncidentStatus, Severity};

use super::Steps;

/// The example incident as a report of this status, aware a day ago.
fn report(status: IncidentStatus) -> anyhow::Result<cairn_proto::intake::v1::Incident> {
    let mut i = json::incident_from_json(include_str!("../../../../examples/incident.json"))?;
    let aware = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let at = |d: time::Duration| Some(cairn_record::header::time_to_timestamp(aware + d));
    i.occurred_at = at(time::Duration::ZERO);
    i.detected_at = at(time::Duration::ZERO);
    i.reported_at = at(time::Duration::hours(1));
    if let Some(s) = i.serious_incident.as_mut() {
        s.aware_at = at(time::Duration::ZERO);
    }
    i.status = status as i32;
    Ok(i)
}

/// The first incident since `since` that `member`'s subscription to
/// MedAssist at high severity matches, as its watch delivers it.
async fn first_alert(member: &Client, since: time::OffsetDateTime) -> anyhow::Result<String> {
    use tokio_stream::StreamExt as _;
    let sub = Subscription {
        models: vec!["MedAssist".into()],
        min_severity: Severity::High,
        ..Default::default()
    };
    let mut filter = sub.filter();
    filter.created_after = Some(cairn_record::header::time_to_timestamp(since));
    let mut stream = member.watch_incidents(filter, String::new()).await?;
    while let Some(ev) = stream.next().await {
        let Some(stored) = ev?.record else { continue };
        let header = cairn_client::verify::stored_header(&stored)?;
        let content = member
            .open(&stored)
            .ok()
            .and_then(|o| o.incident().cloned());
        if sub.matches(&header, content.as_ref(), false).is_some() {
            return Ok(cairn_client::verify::stored_id(&stored));
        }
    }
    Err(anyhow!("the watch ended without an alert"))
}

/// uk-aisi reports to jp-aisi and eu-aio; both acknowledge; uk-aisi sends
/// an update and the final report; the timeline shows the clock met.
pub(super) async fn response_demo(
    uk: &Client,
    jp: &Client,
    eu: &Client,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let share = Share::Amber(vec!["jp-aisi".into(), "eu-aio".into()]);
    // eu-aio subscribes to incidents about the model it deploys.
    let since = time::OffsetDateTime::now_utc();
    let first = uk
        .submit_incident(&uk.prepare_incident(&report(IncidentStatus::Initial)?, &share)?)
        .await?;
    let thread = first.record_id.clone();
    steps.ok(format!(
        "uk-aisi reported a serious incident (initial report) to jp-aisi and eu-aio: thread {thread}"
    ));
    let alerted = tokio::time::timeout(std::time::Duration::from_secs(10), first_alert(eu, since))
        .await
        .map_err(|_| anyhow!("eu-aio's alert did not fire within 10 s"))??;
    ensure!(
        alerted == thread,
        "eu-aio was alerted of {alerted}, not {thread}"
    );
    steps.ok(
        "eu-aio's alert subscription on MedAssist (high severity or worse) fired for it".into(),
    );
    for (who, state) in [
        (jp, AcknowledgementState::Received),
        (eu, AcknowledgementState::Triaged),
    ] {
        let seen = who.get_incident(&thread, false).await?;
        who.submit_incident(&who.prepare_acknowledgement(&seen, state, "", &[])?)
            .await?;
    }
    steps.ok("jp-aisi acknowledged it (received), eu-aio too (triaged)".into());
    let sighting = cairn_proto::intake::v1::Sighting {
        description: "the same dosage answer in a Japanese deployment".into(),
        observed_at: Some(cairn_record::header::time_to_timestamp(
            time::OffsetDateTime::now_utc() - time::Duration::hours(2),
        )),
        jurisdiction: "JP".into(),
        ..Default::default()
    };
    let to_uk = Share::Amber(vec!["uk-aisi".into()]);
    let seen = jp
        .submit_incident(&jp.prepare_sighting(&sighting, &to_uk, Some(&thread))?)
        .await?;
    let related = uk.related(&thread).await?;
    ensure!(
        related
            .sightings
            .iter()
            .any(|(s, _)| cairn_client::verify::stored_id(s) == seen.record_id),
        "uk-aisi does not find jp-aisi's sighting with the incident"
    );
    steps.ok("jp-aisi reported a sighting of it in JP; uk-aisi finds it with the incident".into());
    for status in [IncidentStatus::Update, IncidentStatus::Final] {
        uk.submit_incident(&uk.prepare_follow_up(&report(status)?, &share, &thread)?)
            .await?;
    }
    steps.ok("uk-aisi sent an update and the final report in the thread".into());
    let t = jp.timeline(&thread).await?;
    ensure!(
        t.reports.len() == 3,
        "the thread has {} reports",
        t.reports.len()
    );
    let acked: Vec<&str> = t.reports[0]
        .acknowledged
        .iter()
        .map(|a| a.by.as_str())
        .collect();
    ensure!(
        t.reports[0].awaiting.is_empty() && acked.len() == 2,
        "the first report is acknowledged by {acked:?}, awaiting {:?}",
        t.reports[0].awaiting
    );
    let d = t
        .deadline
        .as_ref()
        .ok_or_else(|| anyhow!("no Art. 73 period"))?;
    let completed = t.completed.clone().ok_or_else(|| anyhow!("no clock"))?;
    ensure!(
        matches!(&completed, Clock::Met { hours_early, .. } if *hours_early >= 0),
        "the final report is not on time: {completed}"
    );
    steps.ok(format!(
        "the timeline jp-aisi computes: {}-day Art. 73 period; final report {completed}; the first report acknowledged by both",
        d.days
    ));
    Ok(())
}
