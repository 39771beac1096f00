//! Model files and sessions: the file read once (its errors name it), sessions built on the
//! chosen execution provider, and `segscore inspect`'s view of a model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::session::Session;

use crate::error::{Error, Result};
use crate::model::runtime::{self, Provider, Runtime};
use crate::model::signature::ModelSignature;

pub(crate) fn model_name(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a model file, naming it in the error.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    let read = match crate::store::read_object(path) {
        Some(object) => Ok(object?),
        None => std::fs::read(path),
    };
    match read {
        Ok(bytes) if bytes.is_empty() => Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: "file is empty".into(),
        }),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        }),
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
    bytes: &[u8],
    provider: Provider,
    intra_threads: usize,
) -> Result<Session> {
    let builder = Session::builder(runtime.environment())?;
    let mut builder = session_builder_err(path, builder.with_intra_threads(intra_threads.max(1)))?;
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
    builder.commit_from_memory(bytes).map_err(|e| Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!("ONNX Runtime cannot load it: {}", e.message()),
    })
}

/// Reads the model's signature without requiring its inputs to bind (for `segscore inspect`).
pub fn inspect(path: &Path) -> Result<(ModelSignature, &'static Runtime)> {
    let bytes = read_model_file(path)?;
    let rt = runtime::runtime(Provider::Cpu)?;
    let session = build_session(rt, path, &bytes, Provider::Cpu, 1)?;
    Ok((ModelSignature::of(&session), rt))
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
    /// `first`, and `more` sessions more built as [`build_session`] builds them from `bytes`.
    /// One that cannot be built is left out, with a warning (the first was built from the same
    /// bytes: what fails then is a resource, a GPU's memory say).
    pub(crate) fn new(
        first: Session,
        more: usize,
        runtime: &'static Runtime,
        path: &Path,
        bytes: Vec<u8>,
        provider: Provider,
        intra_threads: usize,
    ) -> Self {
        let slots: Arc<[OnceLock<Mutex<Session>>]> = (0..more).map(|_| OnceLock::new()).collect();
        let bytes = Arc::new(bytes);
        let building = (0..more)
            .filter_map(|i| {
                let (slots, bytes, model) = (Arc::clone(&slots), Arc::clone(&bytes), PathBuf::from(path));
                let build = move || match build_session(runtime, &model, &bytes, provider, intra_threads) {
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
