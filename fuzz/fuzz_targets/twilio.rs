//! Any bytes: form decoding and the Twilio parser never panic; the signature string is built
//! from whatever parameters came in.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = lull_ingest::parse::twilio::params(data) {
        let _ = lull_ingest::auth::twilio_signed_string("https://x.test/webhook/twilio", &params);
        if let Ok(p) = lull_ingest::parse::twilio::parse(&params) {
            assert!(p.items.len() <= 1);
            for item in &p.items {
                assert!(!item.message.id.trim().is_empty());
            }
        }
    }
});
