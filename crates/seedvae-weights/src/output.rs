//! The output discipline every seedvae command follows (this is the one module that decides):
//!
//! - An output is written under a temporary name beside the target ([`temp_path`]) and renamed
//!   into place only after success; dropping an unfinished one removes it. Temporary paths are
//!   registered, so that a second Ctrl-C, which exits at once, still removes them
//!   ([`remove_temporaries`]).
//! - An existing output is replaced only with `--force`, and only when it is a regular file or a
//!   directory seedvae itself wrote (it holds [`DIR_MARKER`], which lists the files it wrote)
//!   and that holds nothing else since; never through a symbolic link,
//!   never `.`, `..`, the working directory or one of its parents, never a path that is also an
//!   input or holds one ([`check_output`]).

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// The file seedvae puts in every directory it writes as an output (PNG frames): a first line
/// [`DIR_MARKER_HEADER`], then the name of every file it wrote there, one a line.
pub const DIR_MARKER: &str = ".seedvae-output";
pub const DIR_MARKER_HEADER: &str = "frames written by seedvae";

/// Write `dir`'s marker listing `files` (names inside `dir`), the files seedvae wrote there.
pub fn write_dir_marker(dir: &Path, files: &[String]) -> Result<()> {
    let mut text = format!("{DIR_MARKER_HEADER}\n");
    for f in files {
        text.push_str(f);
        text.push('\n');
    }
    let path = dir.join(DIR_MARKER);
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
}

/// The first entry of the marked output directory `dir` that seedvae did not write: not the
/// marker, not a regular file listed in it. (A marker of an earlier seedvae, which listed
/// nothing, owns the `frame_NNNNNN.png` files it wrote.)
fn foreign_entry(dir: &Path) -> Result<Option<String>> {
    let marker = std::fs::read_to_string(dir.join(DIR_MARKER)).map_err(|e| Error::io(dir, e))?;
    let mut lines = marker.lines();
    if lines.next() != Some(DIR_MARKER_HEADER) {
        return Ok(Some(DIR_MARKER.to_string()));
    }
    let listed: BTreeSet<&str> = lines.filter(|l| !l.is_empty()).collect();
    let legacy = |n: &str| {
        n.strip_prefix("frame_")
            .and_then(|r| r.strip_suffix(".png"))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == DIR_MARKER {
            continue;
        }
        let file = e.file_type().is_ok_and(|t| t.is_file());
        let own = if listed.is_empty() {
            legacy(&name)
        } else {
            listed.contains(name.as_str())
        };
        if !(file && own) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

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
        // Nothing there (or a parent that is not a directory): the writer reports its own error.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(())
        }
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
            "already exists; pass `force` to overwrite it or choose another `output` path",
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
            "is the working directory or one of its parents; seedvae never replaces it: choose a new `output` path",
        ));
    }
    if !b.join(DIR_MARKER).is_file() {
        return Err(refuse(
            path,
            "is a directory seedvae did not write (it has no .seedvae-output marker); `force` only \
             replaces seedvae's own outputs: remove it yourself or choose another `output` path",
        ));
    }
    if let Some(name) = foreign_entry(&b)? {
        return Err(refuse(
            path,
            &format!(
                "holds '{name}', which seedvae did not write there; `force` only replaces a \
                 folder of seedvae's own frames: move it out or choose another `output` path"
            ),
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
                    "is also an input ({}); choose another `output` path",
                    input.display()
                ),
            ));
        }
        if i.starts_with(&target) {
            return Err(refuse(
                path,
                &format!(
                    "holds an input ({}); choose another `output` path",
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
        let _ = if old.is_dir() {
            std::fs::remove_dir_all(&old)
        } else {
            std::fs::remove_file(&old)
        };
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
            .contains("`force`"));
    }

    /// Every file under `dir` with its bytes (links as their target, not followed).
    fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.file_type().is_symlink() {
                    out.insert(
                        p.clone(),
                        std::fs::read_link(&p)
                            .unwrap()
                            .to_string_lossy()
                            .as_bytes()
                            .to_vec(),
                    );
                } else if m.is_dir() {
                    out.insert(p.clone(), b"<dir>".to_vec());
                    stack.push(p);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    /// The output discipline as a property: for random things at the output path (nothing, a
    /// file, seedvae's own directory, someone's directory, links to either) × write a file or a
    /// directory × succeed, fail or be interrupted × with or without --force, no byte that is
    /// not the output's own is ever lost, and no temporary file stays.
    #[test]
    fn no_pre_existing_byte_but_the_outputs_is_ever_lost() {
        let mut rng = crate::synth::Rng::new(2026);
        for case in 0..500 {
            let t = tempfile::tempdir().unwrap();
            let root = t.path();
            let victim = root.join("victim");
            std::fs::create_dir(&victim).unwrap();
            std::fs::write(victim.join("keep.txt"), format!("precious {case}")).unwrap();
            std::fs::write(root.join("sibling.txt"), b"also precious").unwrap();
            let target = root.join("out");
            let kind = rng.next_u64() % 10;
            let mut own = false; // is what sits at `target` seedvae's own output?
            match kind {
                0 => {}
                1 => {
                    std::fs::write(&target, b"old output").unwrap();
                    own = true;
                }
                2 => {
                    std::fs::create_dir(&target).unwrap();
                    std::fs::write(target.join(DIR_MARKER), DIR_MARKER_HEADER).unwrap();
                    std::fs::write(target.join("frame_000000.png"), b"old frame").unwrap();
                    own = true;
                }
                3 => {
                    std::fs::create_dir(&target).unwrap();
                    std::fs::write(target.join("theirs.txt"), b"not seedvae's").unwrap();
                }
                // seedvae's frames, then the user's own notes and folder added beside them.
                7 => {
                    std::fs::create_dir(&target).unwrap();
                    write_dir_marker(&target, &["frame_000000.png".into()]).unwrap();
                    std::fs::write(target.join("frame_000000.png"), b"old frame").unwrap();
                    std::fs::write(target.join("notes.txt"), b"mine").unwrap();
                    std::fs::create_dir(target.join("keep")).unwrap();
                    std::fs::write(target.join("keep/x.txt"), b"mine too").unwrap();
                }
                // An earlier seedvae's marker (no list): its frames, and a file of the user's.
                8 => {
                    std::fs::create_dir(&target).unwrap();
                    std::fs::write(target.join(DIR_MARKER), DIR_MARKER_HEADER).unwrap();
                    std::fs::write(target.join("frame_000000.png"), b"old frame").unwrap();
                    std::fs::write(target.join("frame_000000.png.txt"), b"mine").unwrap();
                }
                // seedvae's frames and nothing else, listed: replaceable.
                9 => {
                    std::fs::create_dir(&target).unwrap();
                    write_dir_marker(&target, &["frame_000000.png".into()]).unwrap();
                    std::fs::write(target.join("frame_000000.png"), b"old frame").unwrap();
                    own = true;
                }
                #[cfg(unix)]
                4 => std::os::unix::fs::symlink(&victim, &target).unwrap(),
                #[cfg(unix)]
                5 => std::os::unix::fs::symlink(victim.join("keep.txt"), &target).unwrap(),
                _ => {
                    std::fs::create_dir(&target).unwrap();
                    std::fs::create_dir(target.join("sub")).unwrap();
                    std::fs::write(target.join("sub/deep.txt"), b"deep").unwrap();
                }
            }
            let force = rng.next_u64().is_multiple_of(2);
            let outcome = rng.next_u64() % 3; // 0 success, 1 failure, 2 interrupted
            let as_dir = rng.next_u64().is_multiple_of(2);
            let trailing = rng.next_u64().is_multiple_of(2);
            let given = if trailing {
                PathBuf::from(format!("{}/", target.display()))
            } else {
                target.clone()
            };
            let before = snapshot(root);
            let wrote = (|| -> Result<bool> {
                check_output(&given, force, &[&victim.join("keep.txt")])?;
                if as_dir {
                    let tmp = temp_path(&bare(&given));
                    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
                    register_temporary(&tmp);
                    write_dir_marker(&tmp, &["frame_000000.png".into()]).unwrap();
                    std::fs::write(tmp.join("frame_000000.png"), b"new frame").unwrap();
                    match outcome {
                        0 => replace_dir(&tmp, &given, force).map(|_| true),
                        1 => {
                            std::fs::remove_dir_all(&tmp).unwrap();
                            forget_temporary(&tmp);
                            Ok(false)
                        }
                        _ => {
                            remove_temporaries();
                            Ok(false)
                        }
                    }
                } else {
                    let mut f = AtomicFile::create(bare(&given))?;
                    f.write_all(b"new output").unwrap();
                    match outcome {
                        0 => f.commit().map(|_| true),
                        1 => Ok(false),
                        _ => {
                            remove_temporaries();
                            std::mem::forget(f);
                            Ok(false)
                        }
                    }
                }
            })()
            .unwrap_or(false);
            let after = snapshot(root);
            let what = format!("case {case}: kind {kind}, force {force}, outcome {outcome}, dir {as_dir}, slash {trailing}");
            for (p, bytes) in &before {
                let part_of_output = p == &target || (own && p.starts_with(&target));
                if part_of_output && wrote {
                    continue;
                }
                assert_eq!(
                    after.get(p),
                    Some(bytes),
                    "{what}: {} lost or changed",
                    p.display()
                );
            }
            if wrote {
                assert!(
                    kind == 0 || own,
                    "{what}: replaced something that was not seedvae's output"
                );
            }
            let temps: Vec<_> = after
                .keys()
                .filter(|p| p.to_string_lossy().contains("seedvae-tmp"))
                .collect();
            assert!(temps.is_empty(), "{what}: temporaries left: {temps:?}");
        }
    }
}
