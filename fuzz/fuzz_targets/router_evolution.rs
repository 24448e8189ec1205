//! The whole webhook Router over in-memory adapters, for every evolution route: any method,
//! headers and body, signed and unsigned, one or several tenants (see `lull_fuzz::run`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lull_fuzz::run(lull_fuzz::Gateway::Evolution, data);
});
