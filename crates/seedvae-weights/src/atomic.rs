//! Output files appear whole or not at all: written to a temporary file beside the target, then
//! renamed over it. Dropping an uncommitted file removes the temporary (errors, Ctrl-C unwinding).

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

/// Refuse to overwrite `path` unless `force`; the error says how to proceed.
pub fn check_overwrite(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(Error::format(
            path,
            "already exists; pass --force to overwrite it or choose another -o path",
        ));
    }
    Ok(())
}

/// A temporary name beside `target` that no other writer uses.
pub fn temp_path(target: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!(
        ".{name}.seedvae-tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    target.with_file_name(unique)
}

impl AtomicFile {
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let tmp = temp_path(&target);
        let f = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(&target, e))?;
        Ok(AtomicFile {
            target,
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 20, f)),
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flush, sync and rename into place.
    pub fn commit(mut self) -> Result<()> {
        let w = self.writer.take().expect("writer present until commit");
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&self.target, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.target, e))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.as_mut().expect("not committed").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.writer.as_mut().expect("not committed").write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().expect("not committed").flush()
    }
}

/// Outputs laid out channel-major (a video tensor written a chunk of frames at a time) need to
/// seek; `BufWriter` flushes before seeking.
impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.writer.as_mut().expect("not committed").seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `target` atomically with `f`; on error nothing is left behind.
pub fn write_atomic<T>(
    target: &Path,
    f: impl FnOnce(&mut AtomicFile) -> std::io::Result<T>,
) -> Result<T> {
    let mut a = AtomicFile::create(target)?;
    let v = f(&mut a).map_err(|e| Error::io(target, e))?;
    a.commit()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("out.bin");
        let r: Result<()> = write_atomic(&t, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        write_atomic(&t, |w| w.write_all(b"ok")).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"ok");
        assert!(check_overwrite(&t, false)
            .unwrap_err()
            .to_string()
            .contains("--force"));
    }
}
