//! The shape of the source tree, checked by reading it: the principal's modules import each
//! other in one direction only, and no source file grows past about 400 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level principal module a file belongs to (`coordinator` for
/// `src/principal/coordinator/dispatch.rs`), or None for `principal/mod.rs` itself.
fn module_of(principal: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(principal).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "mod").then(|| name.to_owned())
}

/// Which sibling principal modules a file names (in `use` lines or inline paths). `prefixes`
/// are the paths that reach a sibling from this file.
fn imports(
    text: &str,
    prefixes: &[&str],
    modules: &BTreeSet<String>,
    own: &str,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in prefixes {
        for (at, _) in text.match_indices(prefix) {
            // Only whole path starts: not `xsuper::` or the middle of `super::super::`.
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let name: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != own {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn principal_modules_import_each_other_in_one_direction() {
    let principal = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/principal");
    let files = rust_files(&principal);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(&principal, f))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(own) = module_of(&principal, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        // In a module's folder (`coordinator/runs.rs`) `super::` is the module itself and
        // `super::super::` the principal; in a top-level file `super::` is the principal.
        let top_level = file.parent() == Some(principal.as_path());
        let prefixes: &[&str] = if top_level {
            &["crate::principal::", "super::"]
        } else {
            &["crate::principal::", "super::super::"]
        };
        let found = imports(&text, prefixes, &modules, &own);
        edges.entry(own).or_default().extend(found);
    }
    // Depth-first search for a cycle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        visit(m, &edges, &mut Vec::new(), &mut done);
    }
    eprintln!("principal imports: {edges:?}");
    // The drawing in the README: the server is on top, the coordinator never reaches up.
    assert!(edges["coordinator"].iter().all(|m| m == "publisher"));
    assert!(edges["control"].contains("coordinator"));
    assert!(edges["server"].contains("control"));
}

#[test]
fn no_source_file_is_over_about_400_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).ok()?.lines().count();
            (lines > 420).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by job: {long:?}");
}

/// Whether a built binary contains DuckDB: the name of one of its settings, a string DuckDB
/// keeps in its read-only data (present when the binary is stripped too).
fn links_duckdb(binary: &str) -> bool {
    let bytes = std::fs::read(binary).expect("read the binary");
    bytes
        .windows(b"checkpoint_threshold".len())
        .any(|w| w == b"checkpoint_threshold")
}

#[test]
fn only_the_principal_links_duckdb() {
    // `cdktr::without_duckdb!` and `daemon::principal_main` keep it out of the others: they
    // start faster and stay small.
    assert!(links_duckdb(env!("CARGO_BIN_EXE_cdktr-principal")));
    for binary in [
        env!("CARGO_BIN_EXE_cdktr"),
        env!("CARGO_BIN_EXE_cdktr-agent"),
        env!("CARGO_BIN_EXE_cdktr-tui"),
    ] {
        assert!(!links_duckdb(binary), "{binary} contains DuckDB");
    }
}
