//! Fuzzes `SysctlKey::parse` and `KeyPattern::parse`: a parsed key never leaves the sysctl root
//! and round-trips through its display form.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|text: &str| {
    invariants::check_key(text);
    invariants::check_pattern(text);
});
