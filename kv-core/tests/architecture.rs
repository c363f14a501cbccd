//! The shape the architecture promises, checked on the sources (issue 12): no engine
//! names a backend or reaches around the `Store` contract, no two sibling modules import
//! each other (directly or in a ring), and no engine source file grows past 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `.rs` files below `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The code of a file without comments and without its `#[cfg(test)] mod tests { .. }`.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("read");
    let text = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_test_file(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "tests")
}

#[test]
fn no_engine_names_a_backend_or_downcasts() {
    for engine in ["cache", "session", "rate_limit"] {
        for path in files(&src().join(engine)) {
            if is_test_file(&path) {
                continue;
            }
            let code = code(&path);
            for banned in [
                "MemoryStore",
                "RedisStore",
                "downcast",
                "as_memory",
                "feature = \"memory\"",
                "feature = \"redis\"",
            ] {
                assert!(!code.contains(banned), "{} uses {banned}", path.display());
            }
        }
    }
}

#[test]
fn no_sibling_modules_import_each_other() {
    let mut folders: BTreeSet<PathBuf> = BTreeSet::new();
    for path in files(&src()) {
        folders.insert(path.parent().expect("parent").to_owned());
    }
    for folder in folders {
        // module name -> the sibling modules it names through `super::`
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let entries = fs::read_dir(&folder).expect("dir");
        let mut modules = BTreeSet::new();
        for entry in entries {
            let path = entry.expect("entry").path();
            let name = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            if path.extension().is_some_and(|e| e == "rs")
                && name != "mod"
                && name != "lib"
                && name != "tests"
            {
                modules.insert(name);
            }
        }
        for name in &modules {
            let code = code(&folder.join(format!("{name}.rs")));
            let mut deps = BTreeSet::new();
            for (i, _) in code.match_indices("super::") {
                let rest = &code[i + "super::".len()..];
                // `super::a::..`, and `super::{a, b::c}`
                let words: Vec<&str> = if let Some(list) = rest.strip_prefix('{') {
                    let list = list.split('}').next().unwrap_or_default();
                    list.split(',')
                        .map(|w| w.trim().split("::").next().unwrap_or_default())
                        .collect()
                } else {
                    vec![
                        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or_default(),
                    ]
                };
                for w in words {
                    if modules.contains(w) && w != name {
                        deps.insert(w.to_owned());
                    }
                }
            }
            edges.insert(name.clone(), deps);
        }
        // A ring of any length: depth-first search with colours.
        fn visit(
            n: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            state: &mut BTreeMap<String, u8>,
            path: &mut Vec<String>,
        ) {
            state.insert(n.to_owned(), 1);
            path.push(n.to_owned());
            for m in &edges[n] {
                match state.get(m.as_str()).copied().unwrap_or(0) {
                    1 => panic!("import ring: {} -> {m}", path.join(" -> ")),
                    0 => visit(m, edges, state, path),
                    _ => {}
                }
            }
            path.pop();
            state.insert(n.to_owned(), 2);
        }
        let mut state = BTreeMap::new();
        for n in edges.keys() {
            if !state.contains_key(n.as_str()) {
                visit(n, &edges, &mut state, &mut Vec::new());
            }
        }
        let _ = &folder;
    }
}

#[test]
fn no_engine_source_file_is_over_600_lines() {
    for engine in ["cache", "session", "rate_limit"] {
        for path in files(&src().join(engine)) {
            let lines = fs::read_to_string(&path).expect("read").lines().count();
            assert!(lines <= 600, "{}: {lines} lines", path.display());
        }
    }
}
