//! Model files and sessions: the file read once (its errors name it), sessions built on the
//! chosen execution provider, and `segscore inspect`'s view of a model.

use std::path::Path;

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
