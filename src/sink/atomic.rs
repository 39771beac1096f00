//! Atomic files: written under a temporary name (`.NAME.inprogress` beside the final name),
//! synced, then renamed into place, so a reader sees the whole file or none. A file dropped
//! before [`AtomicFile::commit`] (an error, a cancelled run) is removed: nothing half-written
//! is left under any name.
//!
//! On Linux, a file being written asks the kernel to start writing its pages out every
//! [`WRITEBACK_BYTES`] (`sync_file_range`, which does not wait), so the disk works while the
//! run does and the sync at commit waits for the last stretch only, not the whole file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written under its temporary name; [`AtomicFile::commit`] puts it in place.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    /// Bytes written since the last writeback was started.
    unflushed: u64,
}

/// Bytes written between two requests to start writing a file's pages out.
pub const WRITEBACK_BYTES: u64 = 8 << 20;

/// Asks the kernel to start writing the file's dirty pages out, without waiting for them
/// (Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)`); a hint, so a failure is ignored: the
/// sync at commit is what makes the file durable, and reports errors.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open (borrowed from `file` for the call); offset 0 and
    // length 0 mean the whole file; the call reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}

impl AtomicFile {
    /// Starts writing `path` (as `.NAME.inprogress` in the same folder).
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = inprogress_name(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            unflushed: 0,
        })
    }

    /// The name the file will have.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the file and renames it to its final name; returns that name.
    pub fn commit(mut self) -> Result<PathBuf> {
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        }
        fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(std::mem::take(&mut self.path))
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the file was already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file()?.write(buf)?;
        self.unflushed += n as u64;
        if self.unflushed >= WRITEBACK_BYTES {
            self.unflushed = 0;
            start_writeback(self.file()?);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not committed: nothing of it stays.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a whole file atomically ([`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)
        .map_err(|e| Error::io(inprogress_name(path), e))?;
    f.commit().map(drop)
}

/// A whole file's bytes, or None when there is no such file.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `dir/.name.inprogress`: where a file is written before it is renamed to `dir/name`.
pub fn inprogress_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.inprogress"))
}

/// Syncs a directory, so the names renamed into it last (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        assert!(inprogress_name(&path).exists());
        drop(f);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        write_atomic(&path, b"whole").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A file written past several writeback requests, in uneven pieces, holds every byte.
    #[test]
    fn writeback_requests_keep_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..(2 * WRITEBACK_BYTES + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut f = AtomicFile::create(&path).unwrap();
        for piece in bytes.chunks(1_000_003) {
            f.write_all(piece).unwrap();
        }
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}
