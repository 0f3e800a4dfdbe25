//! Fuzzes the position-keeping YAML reader: it never panics or recurses without bound.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|text: &str| {
    invariants::check_yaml(text);
});
