//! Any bytes: the Meta parser returns Ok or Err, never panics, and every message it returns has
//! an id, an account and a user.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = lull_ingest::parse::meta::parse(data) {
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
            assert!(!item.account.is_empty() && !item.user.is_empty());
            assert!(p.accounts.contains(&item.account));
        }
    }
});
