//! Model files and sessions: the file read once (its errors name it), sessions built on the
//! chosen execution provider, and `segscore inspect`'s view of a model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::session::Session;

use crate::error::{Error, Result};
use crate::model::onnx::ModelGraph;
use crate::model::runtime::{self, Provider, Runtime};
use crate::model::signature::ModelSignature;

pub(crate) fn model_name(path: &Path) -> String {
    path.display().to_string()
}

/// A model file's bytes, and those of the external data files its weights are in (large
/// exports keep them beside the graph: `model.onnx.data`), read once: every session is built
/// from these bytes, and they are what [`ModelFile::sha256`] identifies.
pub struct ModelFile {
    /// The model file (the graph, and the weights it holds itself).
    pub bytes: Vec<u8>,
    /// Each external data file: its name as the model gives it (relative to the model's
    /// folder), and its bytes.
    pub external: Vec<(String, Arc<[u8]>)>,
    /// The graph, decoded once from `bytes` (what segscore reads of it).
    pub graph: ModelGraph,
}

impl ModelFile {
    /// Reads the model file at `path` (local or `s3://`) and the external data files it names
    /// from beside it; errors name the file at fault.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_file(path, path)?;
        let bad = |reason: String| Error::ModelFile {
            path: path.to_path_buf(),
            reason,
        };
        let graph = ModelGraph::decode(&bytes);
        let names = graph.external_data_files().map_err(bad)?;
        let mut external = Vec::with_capacity(names.len());
        for name in names {
            let file = data_path(path, &name).map_err(bad)?;
            let data = read_file(&file, path).map_err(|e| {
                let reason = match e {
                    Error::ModelFile { reason, .. } => reason,
                    e => e.to_string(),
                };
                bad(format!(
                    "its weights are in the external data file {} (`{name}` beside it): {reason}",
                    file.display()
                ))
            })?;
            external.push((name, Arc::from(data)));
        }
        Ok(ModelFile {
            bytes,
            external,
            graph,
        })
    }

    /// sha256 of the model file's bytes followed by its external data files' (in the order the
    /// model names them), hex: the model file's own sha256 when it holds its weights.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(&self.bytes);
        for (_, data) in &self.external {
            h.update(data);
        }
        hex::encode(h.finalize())
    }
}

/// Where external data file `name` of the model at `model` is: `name` is relative and stays
/// inside the model's folder (ONNX Runtime refuses anything else, and so does segscore,
/// before reading it).
fn data_path(model: &Path, name: &str) -> std::result::Result<PathBuf, String> {
    use std::path::Component;
    let relative = Path::new(name);
    let inside = !name.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    match inside {
        true => Ok(model.parent().unwrap_or(Path::new("")).join(relative)),
        false => Err(format!(
            "its weights are in an external data file `{name}`, which is not a path inside the model's folder"
        )),
    }
}

/// Reads `file` (the model at `model`, or one of its external data files), naming `file` in
/// the error.
fn read_file(file: &Path, model: &Path) -> Result<Vec<u8>> {
    let read = match crate::store::read_object(file) {
        Some(object) => Ok(object?),
        None => std::fs::read(file),
    };
    match read {
        Ok(bytes) if bytes.is_empty() => Err(Error::ModelFile {
            path: model.to_path_buf(),
            reason: "file is empty".into(),
        }),
        Ok(bytes) => Ok(bytes),
        Err(_) if file.is_dir() => Err(Error::ModelFile {
            path: model.to_path_buf(),
            reason: folder_of_models(file),
        }),
        Err(e) => Err(Error::ModelFile {
            path: model.to_path_buf(),
            reason: format!("cannot read: {e}"),
        }),
    }
}

/// Why a folder given as the model cannot be read, naming the `.onnx` files in it (an export
/// folder holds `model.onnx` beside its tokenizer and config).
fn folder_of_models(dir: &Path) -> String {
    let mut models: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    models.sort();
    match models.len() {
        0 => "is a folder, with no .onnx file in it; give the model file".into(),
        _ => format!("is a folder; give the model file in it: {}", models.join(", ")),
    }
}

fn session_builder_err<T>(
    model: &Path,
    r: std::result::Result<T, ort::Error<ort::session::builder::SessionBuilder>>,
) -> Result<T> {
    r.map_err(|e| Error::ModelFile {
        path: model.to_path_buf(),
        reason: format!("ONNX Runtime: {}", e.message()),
    })
}

pub(crate) fn build_session(
    runtime: &Runtime,
    path: &Path,
    model: &ModelFile,
    provider: Provider,
    intra_threads: usize,
) -> Result<Session> {
    let builder = Session::builder(runtime.environment())?;
    let mut builder = session_builder_err(path, builder.with_intra_threads(intra_threads.max(1)))?;
    // External data from memory, by the names the model gives: ONNX Runtime would otherwise
    // look for them in the working directory (a model loaded from bytes has no folder).
    for (name, data) in &model.external {
        builder = session_builder_err(
            path,
            builder.with_external_initializer_file_in_memory(name, Arc::clone(data)),
        )?;
    }
    if provider == Provider::Cuda {
        builder = builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| Error::Provider {
                provider: "cuda".into(),
                reason: format!(
                    "the CUDA execution provider could not be registered with ONNX Runtime {} loaded from {}: {}. Use the CUDA build (`scripts/fetch-ort.sh --cuda`, CUDA 13 and cuDNN 9 on the library path) or --provider cpu",
                    runtime.version,
                    runtime.library.display(),
                    e.message()
                ),
            })?;
    }
    builder
        .commit_from_memory(&model.bytes)
        .map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!("ONNX Runtime cannot load it: {}", e.message()),
        })
}

/// Reads the model's signature without requiring its inputs to bind (for `segscore inspect`),
/// with the model file read (its external data files among it).
pub fn inspect(path: &Path) -> Result<(ModelSignature, &'static Runtime, ModelFile)> {
    let model = ModelFile::read(path)?;
    let rt = runtime::runtime(Provider::Cpu)?;
    let session = build_session(rt, path, &model, Provider::Cpu, 1)?;
    Ok((ModelSignature::of(&session), rt, model))
}

/// A model's sessions: the first, built before anything uses the model (its signature binds
/// the inputs), and the others built on threads of their own while the job plans and starts:
/// the first calls run on the sessions built by then.
pub(crate) struct Sessions {
    first: Mutex<Session>,
    more: Arc<[OnceLock<Mutex<Session>>]>,
    building: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Sessions {
    /// `first`, and `more` sessions more built as [`build_session`] builds them from `model`.
    /// One that cannot be built is left out, with a warning (the first was built from the same
    /// bytes: what fails then is a resource, a GPU's memory say).
    pub(crate) fn new(
        first: Session,
        more: usize,
        runtime: &'static Runtime,
        path: &Path,
        model: ModelFile,
        provider: Provider,
        intra_threads: usize,
    ) -> Self {
        let slots: Arc<[OnceLock<Mutex<Session>>]> = (0..more).map(|_| OnceLock::new()).collect();
        let file = Arc::new(model);
        let building = (0..more)
            .filter_map(|i| {
                let (slots, file, model) = (Arc::clone(&slots), Arc::clone(&file), PathBuf::from(path));
                let build = move || match build_session(runtime, &model, &file, provider, intra_threads) {
                    Ok(session) => {
                        let _ = slots[i].set(Mutex::new(session));
                    }
                    Err(e) => left_out(&model, &e),
                };
                std::thread::Builder::new()
                    .name("segscore-session".into())
                    .spawn(build)
                    .map_err(|e| left_out(path, &e))
                    .ok()
            })
            .collect();
        Sessions {
            first: Mutex::new(first),
            more: slots,
            building: Mutex::new(building),
        }
    }

    /// How many sessions the model has once all are built.
    pub(crate) fn len(&self) -> usize {
        1 + self.more.len()
    }

    /// The first session, built with the model.
    pub(crate) fn first(&self) -> &Mutex<Session> {
        &self.first
    }

    /// Session `i`, if built.
    pub(crate) fn get(&self, i: usize) -> Option<&Mutex<Session>> {
        match i {
            0 => Some(&self.first),
            i => self.more.get(i - 1)?.get(),
        }
    }

    /// Waits until every session is built (or left out).
    pub(crate) fn wait(&self) {
        let building = std::mem::take(&mut *self.building.lock().unwrap_or_else(|e| e.into_inner()));
        for b in building {
            let _ = b.join();
        }
    }
}

impl Drop for Sessions {
    /// A model dropped (a job that failed while planning, say) waits for its sessions' builds:
    /// the process must not exit, and ONNX Runtime's library tear down, under a build.
    fn drop(&mut self) {
        self.wait();
    }
}

/// Warns that a session of the model at `path` could not be built.
fn left_out(path: &Path, error: &dyn std::fmt::Display) {
    tracing::warn!(model = %path.display(), error = %error, "a model session could not be built: the run goes on with fewer");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_data_paths_stay_inside_the_models_folder() {
        let model = Path::new("m/model.onnx");
        assert_eq!(
            data_path(model, "model.onnx.data"),
            Ok(PathBuf::from("m/model.onnx.data"))
        );
        assert_eq!(data_path(model, "./w/x.data"), Ok(PathBuf::from("m/./w/x.data")));
        assert_eq!(
            data_path(Path::new("s3://b/k/model.onnx"), "x.data"),
            Ok(PathBuf::from("s3://b/k/x.data"))
        );
        for bad in ["", "../x.data", "w/../../x.data", "/etc/x.data"] {
            assert!(
                data_path(model, bad).unwrap_err().contains("not a path inside"),
                "{bad}"
            );
        }
    }
}
