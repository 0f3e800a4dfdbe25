//! The layout is the pipeline: `src/` holds one directory per stage, modules import each other
//! without cycles, and command functions stay short. This test reads the source tree itself, so
//! a change that tangles the house fails here rather than in a reviewer's head.
//!
//! Nodes are the crate's modules, one per file; a file's private children (`key/chars.rs` under
//! `key.rs`, `doctor/checks.rs` under `doctor.rs`) count as part of their parent, since they are
//! one module split over files. An edge is any `crate::…` or `super::…` path in a file that
//! names another module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The module path of a file (`src/change/plan.rs` → `change::plan`, `src/cli/mod.rs` → `cli`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// Modules with their files, private children folded into the parent file's module.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let files = rust_files(&src());
    let names: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files.into_iter().filter(|f| !f.ends_with("main.rs")) {
        let mut name = module_of(&file);
        // `a/b/c.rs` next to `a/b.rs` (not `a/b/mod.rs`) is a child of the file module `a::b`.
        while let Some((parent, _)) = name.rsplit_once("::") {
            let parent_is_file = src()
                .join(format!("{}.rs", parent.replace("::", "/")))
                .exists();
            if names.contains(parent) && parent_is_file {
                name = parent.to_owned();
            } else {
                break;
            }
        }
        out.entry(name).or_default().push(file);
    }
    out
}

/// Code without comments, string literals and the unit tests at the bottom of the file (a
/// path in a doc comment is not an import; a test may use any module it likes).
fn code_only(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|line| {
            let line = line.split("//").next().unwrap_or("");
            let mut out = String::new();
            let mut in_str = false;
            for c in line.chars() {
                if c == '"' {
                    in_str = !in_str;
                } else if !in_str {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a module's files name, resolved to the longest known module prefix.
fn edges(name: &str, files: &[PathBuf], known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = code_only(&std::fs::read_to_string(file).unwrap());
        let own = module_of(file);
        for (start, _) in text
            .match_indices("crate::")
            .chain(text.match_indices("super::"))
        {
            let rest = &text[start..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<String> = Vec::new();
            if segments.first() == Some(&"crate") {
                segments.remove(0);
            } else {
                base = own.split("::").map(str::to_owned).collect();
                while segments.first() == Some(&"super") {
                    segments.remove(0);
                    base.pop();
                }
            }
            let full: Vec<String> = base
                .into_iter()
                .chain(segments.iter().map(|s| s.to_string()))
                .collect();
            let target = (1..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|m| known.contains(m));
            if let Some(target) =
                target.filter(|t| t != name && !name.starts_with(&format!("{t}::")))
            {
                out.insert(target);
            }
        }
    }
    out
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(name, files)| (name.clone(), edges(name, files, &known)))
        .collect()
}

#[test]
fn modules_import_each_other_without_cycles() {
    let graph = graph();
    let found = cycles(&graph);
    let shown: Vec<String> = found.iter().map(|c| c.join(" ↔ ")).collect();
    println!(
        "modules: {}, import edges: {}",
        graph.len(),
        graph.values().map(BTreeSet::len).sum::<usize>()
    );
    assert!(found.is_empty(), "import cycles:\n{}", shown.join("\n"));
}

#[test]
fn stages_depend_only_on_earlier_stages() {
    // The pipeline order; a stage may use any stage before it, never one after.
    const ORDER: &[&str] = &[
        "error", "files", "env", "profile", "schema", "kernel", "change", "canary", "adopt",
        "diagnose", "cli",
    ];
    let rank = |module: &str| {
        let top = module.split("::").next().unwrap();
        ORDER
            .iter()
            .position(|s| *s == top)
            .unwrap_or_else(|| panic!("{top} is not a stage in ORDER"))
    };
    let mut backwards = Vec::new();
    for (from, targets) in graph() {
        for to in targets {
            if rank(&to) > rank(&from) {
                backwards.push(format!("{from} → {to}"));
            }
        }
    }
    assert!(
        backwards.is_empty(),
        "a stage uses a later one:\n{}",
        backwards.join("\n")
    );
}

#[test]
fn the_top_level_reads_as_the_pipeline() {
    let mut entries: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert!(
        entries.len() <= 13,
        "src/ has {} entries: {entries:?}",
        entries.len()
    );
}

#[test]
fn command_functions_stay_short() {
    // A command builds options, calls the core and renders: a few dozen lines at most.
    let dir = src().join("cli/commands");
    let mut long = Vec::new();
    for file in rust_files(&dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or(&text)
            .to_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i]
                .trim_start_matches("pub ")
                .trim_start_matches("pub(super) ");
            if line.starts_with("fn ") && !lines[i].starts_with(' ') {
                let end = (i..lines.len()).find(|&j| lines[j] == "}").unwrap_or(i);
                let name: String = line[3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if end - i + 1 > 40 {
                    long.push(format!(
                        "{}::{name}: {} lines",
                        file.file_stem().unwrap().to_string_lossy(),
                        end - i + 1
                    ));
                }
                i = end;
            }
            i += 1;
        }
    }
    assert!(
        long.is_empty(),
        "command functions over 40 lines:\n{}",
        long.join("\n")
    );
}
