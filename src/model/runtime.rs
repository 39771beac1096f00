//! Finding and loading the ONNX Runtime shared library, and choosing the execution provider.
//!
//! segscore links ONNX Runtime dynamically (`ort`'s `load-dynamic`), so the library is found
//! at run time, in this order:
//!
//! 1. `ORT_DYLIB_PATH`, when set (it must point at an existing file);
//! 2. `$SEGSCORE_ORT_DIR/{cuda,cpu}/libonnxruntime.so.1.31.1`;
//! 3. `.ort/{cuda,cpu}/` in the source checkout the binary was built from, or in any folder
//!    above the binary (`scripts/fetch-ort.sh` puts it there);
//! 4. `~/.local/share/segscore/ort/{cuda,cpu}/`.
//!
//! The CUDA build is looked for first when the provider is `cuda` or `auto`; the CPU build
//! serves `cpu`, and `auto` when no CUDA build is present.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::{Error, Result};

/// The ONNX Runtime version segscore pins and `scripts/fetch-ort.sh` fetches.
pub const ORT_VERSION: &str = "1.31.1";

/// Which execution provider runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// The CUDA provider; fails with an error when it cannot be registered.
    Cuda,
    /// CUDA when the loaded ONNX Runtime can register it, else the CPU.
    #[default]
    Auto,
}

impl Provider {
    /// The name used on the command line and in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::Auto => "auto",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "auto" => Ok(Provider::Auto),
            other => Err(format!("unknown provider `{other}` (expected cpu, cuda or auto)")),
        }
    }
}

/// The loaded ONNX Runtime: the library it came from and its version.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The shared library loaded.
    pub library: PathBuf,
    /// ONNX Runtime's version, e.g. "1.31.1".
    pub version: String,
    env: Environment,
}

impl Runtime {
    /// The process-wide ONNX Runtime environment.
    pub fn environment(&self) -> &Environment {
        &self.env
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Loads ONNX Runtime once per process (later calls return the same runtime).
///
/// The `segscore` binary sets `ORT_DISABLE_TELEMETRY=1` before anything else (unless the
/// environment sets it): ONNX Runtime 1.29 and later record and upload telemetry on Linux
/// from the moment the library starts, and only that variable, read then, turns it all off.
/// A program using this library should set it before its first thread starts.
pub fn runtime(provider: Provider) -> Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let library = locate_library(provider)?;
    let builder = ort::init_from(&library).map_err(|e| {
        Error::OrtLibrary(format!(
            "could not load ONNX Runtime from {}: {e}. Fetch the pinned build with `scripts/fetch-ort.sh` or point ORT_DYLIB_PATH at libonnxruntime.so.{ORT_VERSION}",
            library.display()
        ))
    })?;
    let env = builder.with_name("segscore").with_telemetry(false).build()?;
    let version = version_of(&library);
    tracing::info!(library = %library.display(), %version, "loaded ONNX Runtime");
    Ok(RUNTIME.get_or_init(|| Runtime {
        library,
        version,
        env,
    }))
}

fn version_of(library: &Path) -> String {
    // The version is in the file name of the libraries we fetch (libonnxruntime.so.1.31.1);
    // otherwise ask the build info ("... git-branch=rel-1.31.1 ...").
    let name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(v) = name.strip_prefix("libonnxruntime.so.") {
        if v.split('.').all(|p| p.parse::<u32>().is_ok()) {
            return v.to_string();
        }
    }
    let info = ort::info();
    info.split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("git-branch=rel-"))
        .map(str::to_string)
        .unwrap_or_else(|| info.to_string())
}

/// The places searched for the library, in order, for the given provider preference.
pub fn candidate_paths(provider: Provider) -> Vec<PathBuf> {
    let file = format!("libonnxruntime.so.{ORT_VERSION}");
    let variants: &[&str] = match provider {
        Provider::Cpu => &["cpu"],
        Provider::Cuda | Provider::Auto => &["cuda", "cpu"],
    };
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("SEGSCORE_ORT_DIR") {
        roots.push(PathBuf::from(dir));
    }
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ort"));
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let candidate = dir.join(".ort");
            if !roots.contains(&candidate) {
                roots.push(candidate);
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(home).join(".local/share/segscore/ort"));
    }
    let mut out = Vec::new();
    for variant in variants {
        for root in &roots {
            out.push(root.join(variant).join(&file));
        }
    }
    out
}

/// Finds the ONNX Runtime shared library (see the module docs for the search order).
pub fn locate_library(provider: Provider) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(Error::OrtLibrary(format!(
            "ORT_DYLIB_PATH is set to {}, which is not a file. Unset it to use the library fetched by `scripts/fetch-ort.sh`, or point it at libonnxruntime.so.{ORT_VERSION}",
            path.display()
        )));
    }
    let candidates = candidate_paths(provider);
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let fetch = if provider == Provider::Cuda {
        "scripts/fetch-ort.sh --cuda"
    } else {
        "scripts/fetch-ort.sh"
    };
    Err(Error::OrtLibrary(format!(
        "ONNX Runtime {ORT_VERSION} shared library not found. Run `{fetch}` in the segscore checkout (it fetches the pinned PyPI wheel and extracts the library into .ort/), or set ORT_DYLIB_PATH to libonnxruntime.so.{ORT_VERSION}. Looked in: {}",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
