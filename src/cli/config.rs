//! `--config FILE`: a TOML file of flags for the command being run.
//!
//! Every key is the long name of one of the command's flags, or of a global one (`-` or `_`
//! alike): `input = ["a.parquet", "b.parquet"]` for a list, `report = true` for a switch,
//! `verbose = 2` for a counted flag, a string or number for the rest. Flags given on the
//! command line win over the file; an unknown key or a value of the wrong kind is a usage
//! error that names the file and the key. `--config` may stand anywhere on the command line.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory};

use super::Cli;

/// Whether `arg` is the `--config` flag (`--config FILE` or `--config=FILE`).
fn is_config_flag(arg: &OsStr) -> bool {
    arg == "--config" || arg.to_str().is_some_and(|s| s.starts_with("--config="))
}

/// The flags a config file added to the command line: its path as shown, and each key with
/// the long flag it became.
#[derive(Debug, Default)]
pub(crate) struct FromFile {
    path: String,
    keys: Vec<(String, String)>,
}

impl FromFile {
    /// clap's error `e`, told as the config file's when the flag it refuses came from the file
    /// (`threads = 0`: "config FILE: key `threads`: invalid value '0' for '--threads
    /// <THREADS>': ..."); None when it is the command line's (clap then reports it as usual).
    pub(crate) fn explain(&self, e: &clap::Error) -> Option<String> {
        let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
            return None;
        };
        let flag = arg.split([' ', '=']).next()?.strip_prefix("--")?;
        let (key, _) = self.keys.iter().find(|(_, long)| long == flag)?;
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        let reason = first.strip_prefix("error: ").unwrap_or(first);
        Some(format!("config {}: key `{key}`: {reason}", self.path))
    }
}

/// The command line with the config file's settings added as flags, and which flags those
/// are; or the command line as it is when there is no `--config` (or it has an error that
/// clap will report itself).
pub(crate) fn expand_config(args: Vec<OsString>) -> Result<(Vec<OsString>, FromFile), String> {
    let unchanged = |args| Ok((args, FromFile::default()));
    if !args.iter().any(|a| is_config_flag(a)) {
        return unchanged(args);
    }
    // Parse with nothing required, to find the command, the file and what the command line
    // already gives (the file may be what provides the required flags).
    let relaxed = Cli::command().mut_subcommands(|s| s.mut_args(|a| a.required(false)));
    let Ok(matches) = relaxed.try_get_matches_from(&args) else {
        return unchanged(args);
    };
    let Some((name, sub)) = matches.subcommand() else {
        return unchanged(args);
    };
    let Some(path) = sub
        .get_one::<PathBuf>("config")
        .or_else(|| matches.get_one::<PathBuf>("config"))
        .cloned()
    else {
        return unchanged(args);
    };
    let shown = path.display();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("config {shown}: {e}"))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("config {shown}: {e}"))?;
    let cmd = Cli::command();
    let command = cmd
        .find_subcommand(name)
        .ok_or_else(|| format!("no command `{name}`"))?;
    let given = |id: &str| {
        [sub, &matches].iter().any(|m: &&ArgMatches| {
            matches!(m.try_get_raw(id), Ok(Some(_))) && m.value_source(id) == Some(ValueSource::CommandLine)
        })
    };
    let mut from_file: Vec<OsString> = Vec::new();
    let mut keys = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .chain(cmd.get_arguments())
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| {
                format!("config {shown}: unknown key `{key}` (keys are the long flags of `segscore {name}`)")
            })?;
        if given(arg.get_id().as_str()) {
            continue; // the command line wins
        }
        keys.push((key.clone(), long.clone()));
        let bad = |what: &str| {
            format!(
                "config {shown}: key `{key}` {what}, not {} {}",
                if value.type_str().starts_with(['a', 'i']) {
                    "an"
                } else {
                    "a"
                },
                value.type_str()
            )
        };
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            _ => Err(bad("takes a string or a number")),
        };
        // `--flag=value`: a value that starts with '-' stays a value.
        let flag = |v: String| OsString::from(format!("--{long}={v}"));
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => match value {
                toml::Value::Boolean(b) => {
                    if *b == matches!(arg.get_action(), ArgAction::SetTrue) {
                        from_file.push(format!("--{long}").into());
                    }
                }
                _ => return Err(bad("is a switch: true or false")),
            },
            ArgAction::Count => match value {
                toml::Value::Integer(n) if (0..=255).contains(n) => {
                    from_file.extend((0..*n).map(|_| OsString::from(format!("--{long}"))));
                }
                _ => return Err(bad("counts: a whole number from 0")),
            },
            ArgAction::Append => match value {
                toml::Value::Array(items) => {
                    for item in items {
                        from_file.push(flag(scalar(item)?));
                    }
                }
                v => from_file.push(flag(scalar(v)?)),
            },
            _ => from_file.push(flag(scalar(value)?)),
        }
    }
    // After the command line's own flags (the command has no trailing arguments), before a
    // `--` that would make them positional.
    let mut out = args;
    let end = out.iter().position(|a| a == "--").unwrap_or(out.len());
    out.splice(end..end, from_file);
    Ok((
        out,
        FromFile {
            path: shown.to_string(),
            keys,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &[&str]) -> Result<Vec<String>, String> {
        expand_config(args.iter().map(OsString::from).collect())
            .map(|(v, _)| v.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn file_flags_follow_the_command_line_wherever_config_stands() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("job.toml");
        std::fs::write(
            &cfg,
            "input = [\"a.parquet\", \"-b.parquet\"]\nverbose = 2\nreport = true\noverwrite = false\nloss = \"huber\"\nhuber_delta = 0.5\n",
        )
        .unwrap();
        let c = cfg.to_str().unwrap();
        let expected_tail = [
            "--huber-delta=0.5",
            "--input=-b.parquet",
            "--input=a.parquet",
            "--loss=huber",
            "--report",
            "--verbose",
            "--verbose",
        ];
        for args in [
            vec!["segscore", "run", "--config", c, "-m", "m.onnx", "-o", "out"],
            vec![
                "segscore", "-q", "run", "-m", "m.onnx", "--config", c, "-o", "out",
            ],
            vec!["segscore", "--config", c, "run", "-m", "m.onnx", "-o", "out"],
        ] {
            let got = expand(&args).unwrap();
            assert_eq!(&got[..args.len()], &args[..], "{args:?}");
            let mut tail = got[args.len()..].to_vec();
            let at = |x: &str| tail.iter().position(|a| a == x);
            assert!(
                at("--input=a.parquet") < at("--input=-b.parquet"),
                "a list keeps its order"
            );
            tail.sort();
            assert_eq!(tail, expected_tail, "{args:?}");
        }
        // The command line wins, flag by flag.
        let got = expand(&["segscore", "run", "--config", c, "--loss", "absolute", "-v"]).unwrap();
        assert!(
            !got.iter().any(|a| a.starts_with("--loss=") || a == "--verbose"),
            "{got:?}"
        );
        // Wrong kinds of values name the key.
        std::fs::write(&cfg, "report = 1\n").unwrap();
        assert!(expand(&["segscore", "run", "--config", c])
            .unwrap_err()
            .contains("`report` is a switch"));
        std::fs::write(&cfg, "verbose = true\n").unwrap();
        assert!(expand(&["segscore", "run", "--config", c])
            .unwrap_err()
            .contains("`verbose` counts"));
        std::fs::write(&cfg, "config = \"x\"\n").unwrap();
        assert!(expand(&["segscore", "run", "--config", c])
            .unwrap_err()
            .contains("unknown key `config`"));
    }
}
