//! Revoking one TLS certificate of a member through the log: once the
//! change is in force, intake refuses the certificate's new handshakes and
//! closes its open connection within 5 s, while the member's other
//! certificates go on working; the revocation cannot be withdrawn while the
//! CA that issued it is in force.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_proto::intake::v1 as intake;
use cairn_tests::{Net, closed_within_5s, refused_in_transport};
use tonic::Code;

fn serial_of(cert_pem: &str) -> String {
    cairn_member::ca::serial(cert_pem).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_and_its_connection_closed() {
    let net = Net::start(Duration::from_secs(5)).await;
    let fr = net.new_organisation("fr-inesia", "INESIA", "FR");
    let member = &fr.members[0];
    let main = member.tls.tls_identity().unwrap();
    // A second certificate from the same CA: a laptop that is then stolen.
    let laptop_cert = member
        .ca
        .issue(&cairn_devpki::LeafSpec::member(
            net.directory.trust_domain(),
            "fr-inesia",
        ))
        .unwrap();
    let laptop = laptop_cert.tls_identity().unwrap();
    let serial = serial_of(&laptop_cert.cert_pem);
    assert_ne!(serial, serial_of(&member.tls.cert_pem));

    let mut doc = net.genesis_document();
    doc.members.push(fr.directory.members[0].clone());
    net.change_to(&doc).await;
    net.intake_at(1).await;
    let mut watch = net
        .intake_as(&laptop)
        .watch_incidents(intake::WatchIncidentsRequest::default())
        .await
        .expect("the laptop's certificate connects before its revocation")
        .into_inner();

    // Revoked, with the serial written as openssl prints it.
    let colons: Vec<&str> = (0..serial.len())
        .step_by(2)
        .map(|i| &serial[i..i + 2])
        .collect();
    let fr_entry = doc
        .members
        .iter_mut()
        .find(|m| m.id == "fr-inesia")
        .unwrap();
    fr_entry
        .revoked_certificates
        .push(colons.join(":").to_uppercase());
    net.change_to(&doc).await;
    net.intake_at(2).await;

    let refused = net
        .intake_as(&laptop)
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .unwrap_err();
    assert!(refused_in_transport(&refused), "{refused:?}");
    closed_within_5s(&mut watch, "the revoked certificate").await;
    net.intake_as(&main)
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .expect("the member's other certificate still connects");

    // Taking the revocation back is refused, and nothing is appended.
    let (g, _) = net.governed("uk-aisi").await;
    let previous = *g.current().directory.digest();
    let size = net.log_size("uk-aisi").await;
    let mut withdrawn = doc.clone();
    withdrawn
        .members
        .iter_mut()
        .find(|m| m.id == "fr-inesia")
        .unwrap()
        .revoked_certificates
        .clear();
    let proposal = net.proposal("uk-aisi", &withdrawn, &previous, 2);
    let status = net.submit_change("uk-aisi", proposal).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(&format!(
            "certificate {serial} of member fr-inesia is revoked"
        )),
        "{status:?}"
    );
    assert_eq!(
        net.log_size("uk-aisi").await,
        size,
        "a refusal was appended"
    );
}
