//! The character-level rules of key names, with no dependency on the rest of the crate: build.rs
//! includes this file (`#[path]`) to check the schema's names by the same rules.

/// Splits a key into components by sysctl.d(5)'s first-separator rule: if the first separator
/// is `/`, slashes separate and dots stay; if it is `.`, dots separate and `/` stands for a dot.
pub fn split_separators(text: &str) -> Vec<String> {
    let slash_first = text
        .find(['.', '/'])
        .is_some_and(|i| text.as_bytes()[i] == b'/');
    if slash_first {
        text.split('/').map(str::to_owned).collect()
    } else {
        text.split('.').map(|c| c.replace('/', ".")).collect()
    }
}

/// Characters found in kernel sysctl names and Linux interface names we accept.
pub fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '+' | ':')
}
