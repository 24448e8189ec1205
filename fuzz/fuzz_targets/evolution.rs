//! Any bytes (and an optional path event): the Evolution parser never panics, and every message
//! it returns has an id, the body's instance as account, and a user.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (event, body) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => (Some("messages-upsert"), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    if let Ok(p) = lull_ingest::parse::evolution::parse(body, event) {
        assert_eq!(p.accounts.len(), 1);
        for item in &p.items {
            // An edit or unsend always names a message.
            if matches!(
                item.message.kind,
                lull_core::MessageKind::Edit | lull_core::MessageKind::Revoke
            ) {
                assert!(item
                    .message
                    .target
                    .as_ref()
                    .is_some_and(|t| !t.message_id.trim().is_empty()));
            }
            assert!(!item.message.id.trim().is_empty());
            assert!(!item.user.is_empty());
            assert_eq!(item.account, p.accounts[0]);
        }
    }
});
