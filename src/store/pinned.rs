//! A bucket's store that answers the HEAD of an input object from what its listing (or its
//! check's HEAD) found ([`Pinned`]): the check would send a HEAD per object, and DataFusion
//! lists each input file it is given by a HEAD of its own as it plans the scan (in each
//! shard's plan): requests per object before the first row, a wave of them for a prefix of many
//! objects. The check and the scan then see the same object: its size and time, its footer
//! (seeded into DataFusion's metadata cache) and the key ranges cut from it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// A store whose HEADs of pinned objects ([`Pinned::pin`]) are answered from their pinned
/// metadata, without a request; every other request goes to the store it wraps.
#[derive(Debug)]
pub struct Pinned {
    inner: Arc<dyn ObjectStore>,
    heads: Mutex<HashMap<Path, ObjectMeta>>,
}

impl Pinned {
    /// `inner`, with nothing pinned.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Pinned {
            inner,
            heads: Mutex::default(),
        }
    }

    /// From now on in this process, a HEAD of `meta.location` gives `meta`. Only a job's inputs
    /// are pinned, as listed or checked: a run never writes where it reads (its output must lie
    /// outside its inputs).
    pub fn pin(&self, meta: ObjectMeta) {
        self.lock().insert(meta.location.clone(), meta);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Path, ObjectMeta>> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pinned metadata of `location` when `options` ask for its HEAD and nothing else
    /// (no range, version or condition, which only the store can answer).
    fn pinned_head(&self, location: &Path, options: &GetOptions) -> Option<ObjectMeta> {
        let plain = options.head
            && options.range.is_none()
            && options.version.is_none()
            && options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none();
        plain.then(|| self.lock().get(location).cloned()).flatten()
    }
}

impl fmt::Display for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pinned({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for Pinned {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        match self.pinned_head(location, &options) {
            Some(meta) => Ok(GetResult {
                payload: GetResultPayload::Stream(Box::pin(futures::stream::empty())),
                range: 0..meta.size,
                meta,
                attributes: Default::default(),
            }),
            None => self.inner.get_opts(location, options).await,
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn a_pinned_head_is_answered_from_the_pin_and_everything_else_by_the_store() {
        let inner = Arc::new(InMemory::new());
        let a = Path::from("in/a.parquet");
        inner
            .put(&a, PutPayload::from_static(b"0123456789"))
            .await
            .unwrap();
        let store = Pinned::new(inner.clone());
        let live = store.head(&a).await.unwrap();
        assert_eq!(live.size, 10);
        store.pin(live.clone());
        // The object changes in the store: a HEAD still gives what was pinned, reads the store.
        inner.put(&a, PutPayload::from_static(b"0123")).await.unwrap();
        assert_eq!(store.head(&a).await.unwrap(), live);
        assert_eq!(
            store.get(&a).await.unwrap().bytes().await.unwrap().as_ref(),
            b"0123"
        );
        let ranged = GetOptions::new().with_head(true).with_range(Some(0..2));
        assert_eq!(store.get_opts(&a, ranged).await.unwrap().meta.size, 4);
        // An object not pinned: the store's answer.
        let b = Path::from("in/b.parquet");
        assert!(matches!(
            store.head(&b).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }
}
