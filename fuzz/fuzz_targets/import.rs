//! Fuzzes the sysctl.conf / sysctl.d reader (`import::parse`) and the merge of its entries.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|text: &str| {
    invariants::check_import(text);
});
