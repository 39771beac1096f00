//! `--config FILE`: a TOML file of flags for `segscore run`.

use super::Cli;

/// `segscore run --config job.toml ...`: every `run` flag can be a key of the file (its long
/// name, `-` or `_`); flags given on the command line win; an unknown key is an error that
/// names it. The file's settings become flags placed before the command line's.
pub(crate) fn expand_config(args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(at) = args
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    else {
        return Ok(args);
    };
    if args.get(1).map(String::as_str) != Some("run") {
        return Err("--config is an option of `segscore run`".into());
    }
    let (path, consumed) = match args[at].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (args.get(at + 1).cloned().ok_or("--config needs a file")?, 2),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("config {path}: {e}"))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("config {path}: {e}"))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let run = cmd.find_subcommand("run").ok_or("no run command")?;
    let mut rest: Vec<String> = args[..at].to_vec();
    rest.extend_from_slice(&args[at + consumed..]);
    let given = |arg: &clap::Arg, long: &str| {
        let short = arg.get_short().map(|c| format!("-{c}"));
        rest.iter().any(|a| {
            a == &format!("--{long}") || a.starts_with(&format!("--{long}=")) || Some(a) == short.as_ref()
        })
    };
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = run
            .get_arguments()
            .chain(cmd.get_arguments())
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| {
                format!("config {path}: unknown key `{key}` (keys are the long flags of `segscore run`)")
            })?;
        if given(arg, &long) {
            continue; // the command line wins
        }
        let flag = format!("--{long}");
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            other => Err(format!(
                "config {path}: key `{key}` has an unsupported value {other:?}"
            )),
        };
        match value {
            toml::Value::Boolean(true) if !arg.get_action().takes_values() => from_file.push(flag),
            toml::Value::Boolean(false) if !arg.get_action().takes_values() => {}
            toml::Value::Array(items) => {
                for item in items {
                    from_file.push(flag.clone());
                    from_file.push(scalar(item)?);
                }
            }
            v => {
                from_file.push(flag);
                from_file.push(scalar(v)?);
            }
        }
    }
    let mut out = rest[..2].to_vec();
    out.extend(from_file);
    out.extend_from_slice(&rest[2..]);
    Ok(out)
}
