//! Fuzzes `Profile::load` through real files in a private directory, then validates and renders
//! what loads. The input is a child profile and, after the first NUL byte, the parent profile
//! that the child may extend as `parent.yaml`.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|text: &str| {
    let (child, parent) = text.split_once('\0').unwrap_or((text, "version: 1\nsysctls: {}\n"));
    invariants::check_profile(child, parent);
});
