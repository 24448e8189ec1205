//! Any bytes: the generic parser never panics, and every message has an id and a user.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = lull_ingest::parse::generic::parse(data) {
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
            assert!(!item.message.id.trim().is_empty() && !item.user.trim().is_empty());
            assert_eq!(
                item.message.received_at.0, 0,
                "parsers never set received_at"
            );
        }
    }
});
