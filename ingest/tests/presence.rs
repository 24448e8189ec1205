//! Presence webhooks (Evolution API v2 and WAHA `presence.update`) parsed from the gateways' real
//! payload shapes (fixtures/README.md names where each one comes from).

use lull_core::turn::PresenceKind;
use lull_core::Millis;
use lull_ingest::parse::presence::{parse_evolution, parse_waha, PresenceItem};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn evolution_composing_names_the_instance_and_the_chat() {
    let p = parse_evolution(
        &fixture("evolution_v2_presence_update_composing.json"),
        None,
    )
    .unwrap();
    assert_eq!(
        p.items,
        vec![PresenceItem {
            account: "ElinaIA".into(),
            user: "5219991234567@s.whatsapp.net".into(),
            group: None,
            participant: "5219991234567@s.whatsapp.net".into(),
            kind: PresenceKind::Composing,
            sent_at: Some(Millis::parse_rfc3339("2025-12-03T12:00:01.250Z").unwrap()),
            lid: false,
        }]
    );
    assert!(p.skipped.is_empty());
}

#[test]
fn evolution_lid_chat_is_flagged() {
    let p = parse_evolution(
        &fixture("evolution_v2_presence_update_lid_paused.json"),
        None,
    )
    .unwrap();
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].kind, PresenceKind::Paused);
    assert_eq!(p.items[0].user, "140913951141911@lid");
    assert!(p.items[0].lid);
}

#[test]
fn evolution_group_reports_each_participant_under_the_group() {
    let p = parse_evolution(&fixture("evolution_v2_presence_update_group.json"), None).unwrap();
    let mut kinds: Vec<_> = p
        .items
        .iter()
        .map(|i| (i.participant.as_str(), i.kind))
        .collect();
    kinds.sort_by_key(|k| k.0);
    assert_eq!(
        kinds,
        vec![
            ("5219991234567@s.whatsapp.net", PresenceKind::Recording),
            ("5219997654321@s.whatsapp.net", PresenceKind::Available),
        ]
    );
    assert!(p
        .items
        .iter()
        .all(|i| i.group.as_deref() == Some("120363041967849074@g.us") && !i.lid));
}

#[test]
fn waha_typing_is_composing_with_the_event_timestamp() {
    let p = parse_waha(&fixture("waha_presence_update_typing.json")).unwrap();
    assert_eq!(p.items.len(), 1);
    let i = &p.items[0];
    assert_eq!(i.account, "default");
    assert_eq!(i.user, "5219991234567@c.us");
    assert_eq!(i.kind, PresenceKind::Composing);
    assert_eq!(i.sent_at, Some(Millis(1_764_763_201_250)));
}

#[test]
fn a_message_body_is_not_a_presence_event() {
    let e = parse_evolution(
        &fixture("evolution_v2_3_messages_upsert_text_n8n_fixture.json"),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a presence.update"), "{e}");
}
