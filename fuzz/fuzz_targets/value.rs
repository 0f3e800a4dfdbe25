//! Fuzzes value splitting, comparison and port-list canonicalisation. The input is up to three
//! values separated by NUL bytes, so that `same_as` is compared across different texts.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|text: &str| {
    let mut parts = text.splitn(3, '\0');
    let a = parts.next().unwrap_or_default();
    let b = parts.next().unwrap_or_default();
    let c = parts.next().unwrap_or_default();
    invariants::check_values(a, b, c);
    invariants::check_port_list(a);
});
