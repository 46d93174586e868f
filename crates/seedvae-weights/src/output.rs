//! The output discipline every seedvae command follows (this is the one module that decides):
//!
//! - An output is written under a temporary name beside the target ([`temp_path`]) and renamed
//!   into place only after success; dropping an unfinished one removes it. Temporary paths are
//!   registered, so that a second Ctrl-C, which exits at once, still removes them
//!   ([`remove_temporaries`]).
//! - An existing output is replaced only with `--force`, and only when it is a regular file or a
//!   directory seedvae itself wrote (it holds [`DIR_MARKER`]); never through a symbolic link,
//!   never `.`, `..`, the working directory or one of its parents, never a path that is also an
//!   input or holds one ([`check_output`]).

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// The file seedvae puts in every directory it writes as an output (PNG frames).
pub const DIR_MARKER: &str = ".seedvae-output";

/// Temporary outputs of this process not yet renamed or removed.
static TEMPORARIES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn temporaries() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Track `tmp` until [`forget_temporary`]; [`remove_temporaries`] removes what is left.
pub fn register_temporary(tmp: &Path) {
    temporaries().insert(tmp.to_path_buf());
}

pub fn forget_temporary(tmp: &Path) {
    temporaries().remove(tmp);
}

/// Remove every registered temporary output (files and directories). For a process about to
/// exit at once (a second Ctrl-C): nothing half-written stays behind.
pub fn remove_temporaries() {
    for p in std::mem::take(&mut *temporaries()) {
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}

/// `path` without trailing separators (`LINK/` names the link's target; `LINK` the link).
fn bare(path: &Path) -> PathBuf {
    let s = path.as_os_str().to_string_lossy();
    let t = s.trim_end_matches(['/', std::path::MAIN_SEPARATOR]);
    if t.is_empty() || t.len() == s.len() {
        path.to_path_buf()
    } else {
        PathBuf::from(t)
    }
}

fn refuse(path: &Path, why: &str) -> Error {
    Error::format(path, why)
}

/// Is `dir` (existing) the working directory or one of its parents, or named by `.` / `..`?
fn protected_dir(path: &Path, dir: &Path) -> bool {
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        && path.components().count() <= 1
        || path.as_os_str().is_empty()
    {
        return true;
    }
    let (Ok(d), Ok(cwd)) = (dir.canonicalize(), std::env::current_dir()) else {
        return true;
    };
    let cwd = cwd.canonicalize().unwrap_or(cwd);
    cwd.starts_with(&d)
}

/// May `path` be written, replacing what is there only with `force`? Every rule of the output
/// discipline but the inputs ([`check_output`] adds those); the error says what to do.
pub fn check_overwrite(path: &Path, force: bool) -> Result<()> {
    let b = bare(path);
    let meta = match std::fs::symlink_metadata(&b) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            path,
            "is a symbolic link; seedvae does not write through links: give the real path",
        ));
    }
    if !force {
        return Err(refuse(
            path,
            "already exists; pass --force to overwrite it or choose another -o path",
        ));
    }
    if meta.is_file() {
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(refuse(
            path,
            "is not a regular file or directory; refusing to replace it",
        ));
    }
    if protected_dir(path, &b) {
        return Err(refuse(
            path,
            "is the working directory or one of its parents; seedvae never replaces it: choose a new -o path",
        ));
    }
    if !b.join(DIR_MARKER).is_file() {
        return Err(refuse(
            path,
            "is a directory seedvae did not write (it has no .seedvae-output marker); --force only \
             replaces seedvae's own outputs: remove it yourself or choose another -o path",
        ));
    }
    Ok(())
}

/// [`check_overwrite`], and `path` is none of `inputs` and holds none of them.
pub fn check_output(path: &Path, force: bool, inputs: &[&Path]) -> Result<()> {
    let target = std::path::absolute(bare(path)).unwrap_or_else(|_| path.to_path_buf());
    let target = target.canonicalize().unwrap_or(target);
    for input in inputs {
        let Ok(i) = input.canonicalize() else {
            continue;
        };
        if i == target {
            return Err(refuse(
                path,
                &format!(
                    "is also an input ({}); choose another -o path",
                    input.display()
                ),
            ));
        }
        if i.starts_with(&target) {
            return Err(refuse(
                path,
                &format!(
                    "holds an input ({}); choose another -o path",
                    input.display()
                ),
            ));
        }
    }
    check_overwrite(path, force)
}

/// Replace `target` (a directory seedvae wrote, or nothing) with the finished directory `tmp`;
/// the rules are checked again at the last moment.
pub fn replace_dir(tmp: &Path, target: &Path, force: bool) -> Result<()> {
    check_overwrite(target, force)?;
    let b = bare(target);
    let old = b.exists().then(|| temp_path(&b));
    if let Some(old) = &old {
        std::fs::rename(&b, old).map_err(|e| Error::io(target, e))?;
    }
    if let Err(e) = std::fs::rename(tmp, &b) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, &b);
        }
        return Err(Error::io(target, e));
    }
    forget_temporary(tmp);
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
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
        register_temporary(&tmp);
        Ok(AtomicFile {
            target,
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 20, f)),
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flush, sync and rename into place; on any failure the temporary file is removed.
    pub fn commit(mut self) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Err(Error::format(&self.target, "already committed"));
        };
        let r = (|| {
            let f = w
                .into_inner()
                .map_err(|e| Error::io(&self.target, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(&self.target, e))?;
            drop(f);
            // A directory (or link) put there since the checks is not replaced.
            if std::fs::symlink_metadata(&self.target).is_ok_and(|m| !m.is_file()) {
                return Err(refuse(
                    &self.target,
                    "is not a regular file now; the output was not written",
                ));
            }
            std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        forget_temporary(&self.tmp);
        r
    }
}

impl AtomicFile {
    fn writer(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the output was already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer()?.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.writer()?.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer()?.flush()
    }
}

/// Outputs laid out channel-major (a video tensor written a chunk of frames at a time) need to
/// seek; `BufWriter` flushes before seeking.
impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.writer()?.seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            forget_temporary(&self.tmp);
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
