//! Build script: turns the embedded schema (`schema/keys.yaml`, `schema/rules.yaml`) into compact
//! JSON in `OUT_DIR`, so the binary deserialises JSON at start-up instead of parsing 65 KB of YAML
//! on every run (the YAML parse was most of `sysprof validate`'s run time).
//!
//! The conversion is generic (YAML value → JSON value); the typed check happens at run time in
//! `Schema::embedded`, which falls back to the YAML text (and its `file:line` errors) if the JSON
//! does not deserialise, and a unit test asserts both paths give the same schema. A YAML file that
//! does not parse is not a build error here: an empty JSON file makes the run-time fallback report
//! it exactly as before.

use std::path::Path;

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["keys", "rules"] {
        let source = format!("schema/{name}.yaml");
        println!("cargo:rerun-if-changed={source}");
        let text = std::fs::read_to_string(&source).unwrap_or_default();
        let json = serde_norway::from_str::<serde_norway::Value>(&text)
            .ok()
            .and_then(|value| serde_json::to_string(&value).ok())
            .unwrap_or_default();
        let target = Path::new(&out_dir).join(format!("{name}.json"));
        std::fs::write(&target, json)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
    }
}
