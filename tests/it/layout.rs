//! The source layout stays as ARCHITECTURE.md describes it: the modules in pipeline order, each
//! importing only the ones before it; every file with a `//!` line saying what it is for, and
//! named in ARCHITECTURE.md's table; no file over 600 lines.

use std::path::{Path, PathBuf};

use crate::common::repo;

/// The top-level modules, lowest first (ARCHITECTURE.md, lib.rs).
const ORDER: [&str; 20] = [
    "panics",
    "error",
    "faults",
    "contract",
    "store",
    "engine",
    "source",
    "model",
    "validate",
    "loss",
    "metrics",
    "shard",
    "functions",
    "cluster",
    "sink",
    "evaluate",
    "report",
    "pipeline",
    "sample",
    "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (None for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

#[test]
fn modules_import_only_lower_modules_and_files_state_their_job() {
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let shown = f.strip_prefix(repo()).unwrap().display().to_string();
        if !text.starts_with("//!") {
            problems.push(format!("{shown}: does not start with a //! line stating its job"));
        }
        let lines = text.lines().count();
        if lines > 600 {
            problems.push(format!("{shown}: {lines} lines (at most 600)"));
        }
        let Some(module) = module_of(&src, f) else {
            continue;
        };
        let Some(level) = ORDER.iter().position(|m| *m == module) else {
            problems.push(format!("{shown}: module `{module}` is not in the layout's order"));
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue; // doc links may point anywhere
            }
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                match ORDER.iter().position(|m| *m == used) {
                    Some(l) if l > level => problems.push(format!(
                        "{shown}:{}: `{module}` imports the higher module `{used}`",
                        n + 1
                    )),
                    _ => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "layout problems:\n{}", problems.join("\n"));
}

/// ARCHITECTURE.md's table names every source file: a top-level file by its name (`loss.rs`),
/// a folder by its name (`model/`), and each file of a folder (`tokens.rs`) or sub-folder
/// (`ranges/`) in that folder's row, so that a new file cannot go unexplained.
#[test]
fn architecture_names_every_source_file() {
    let src = repo().join("src");
    let doc = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let rows: Vec<(String, &str)> = doc
        .lines()
        .filter_map(|l| {
            let key = l.strip_prefix("| `")?.split('`').next()?;
            Some((key.to_string(), l))
        })
        .collect();
    let row = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, l)| *l);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut missing = Vec::new();
    for f in &files {
        let rel: Vec<String> = f
            .strip_prefix(&src)
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let ok = match rel.as_slice() {
            [top] if top == "lib.rs" || top == "main.rs" => true,
            [top] => row(top).is_some(),
            [dir, file] if file == "mod.rs" => row(&format!("{dir}/")).is_some(),
            [dir, file] => row(&format!("{dir}/")).is_some_and(|l| l.contains(&format!("`{file}`"))),
            [dir, sub, ..] => row(&format!("{dir}/")).is_some_and(|l| l.contains(&format!("`{sub}/"))),
            [] => true,
        };
        if !ok {
            missing.push(f.strip_prefix(repo()).unwrap().display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's table does not name: {}",
        missing.join(", ")
    );
}
