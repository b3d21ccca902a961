//! Output files written whole or not at all, and never over an input.
//!
//! [`OutputFile`] writes to a temporary file in the destination's directory
//! (`.NAME.changeling-<pid>-<n>.tmp`), and [`OutputFile::commit`] flushes
//! it, syncs it to disk and renames it over the destination: a reader sees
//! the previous file or the complete new one, never a shortened one. When
//! the writer is dropped without a commit (an error), its temporary file is
//! removed; on SIGINT, SIGTERM or SIGHUP the binary's handler calls
//! [`remove_all_on_signal`], which removes the temporary files and the
//! spill directories. Only SIGKILL (or a crash of the machine) can leave a
//! temporary file behind, and never a partial file at the destination; the
//! next run that writes the same destination removes those of processes
//! that are gone ([`crate::spill::remove_left_by_dead_processes`]).
//!
//! A destination that exists and is not a regular file (`/dev/null`, a
//! named pipe, a terminal) is written directly: it cannot be replaced by a
//! rename, and there is no previous content to keep.
//!
//! [`check_not_input`] refuses a destination that is, or would be read as,
//! a file of a dataset: the same path, a symbolic or hard link to an input
//! file, or a name inside the dataset directory that names a table.
//!
//! Write errors name the file. For tests, the environment variable
//! `CHANGELING_FAULT_OUT_FULL_AFTER=N` makes every output file fail with
//! "no space left on device" after N bytes, and
//! `CHANGELING_FAULT_SPILL_FULL_AFTER=N` the same for spill files (a full
//! disk, injected; see [`fault`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary output files to remove if the process is interrupted.
static LIVE_TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every temporary output file and every spill directory; for the
/// binary's signal handler, which then exits.
///
/// The registries stay locked afterwards, so that no temporary file or
/// spill directory can be made between this and the exit.
pub fn remove_all_on_signal() {
    crate::spill::remove_all_on_interrupt();
    if let Ok(temps) = LIVE_TEMPS.lock() {
        for t in temps.iter() {
            let _ = std::fs::remove_file(t);
        }
        std::mem::forget(temps);
    }
}

fn unregister(path: &Path) {
    if let Ok(mut temps) = LIVE_TEMPS.lock() {
        temps.retain(|p| p != path);
    }
}

/// An output file being written; see the module documentation.
pub struct OutputFile {
    /// The destination, as given.
    path: PathBuf,
    /// Where the rename goes (the destination with symbolic links resolved).
    target: PathBuf,
    /// The temporary file, when writing through one.
    temp: Option<PathBuf>,
    file: Option<io::BufWriter<fault::Limited<File>>>,
}

impl std::fmt::Debug for OutputFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputFile").field("path", &self.path).field("temp", &self.temp).finish()
    }
}

static TEMP_NUMBER: AtomicU64 = AtomicU64::new(0);

impl OutputFile {
    /// Starts writing `path`. Errors name the file.
    pub fn create(path: &Path) -> io::Result<OutputFile> {
        let named = |e: io::Error| named(path, "creating", e);
        // A symbolic link is followed: the file it points to is replaced.
        let target = match std::fs::canonicalize(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
            Err(e) => return Err(named(e)),
        };
        let existing = std::fs::metadata(&target).ok();
        if let Some(m) = &existing
            && !m.is_file()
        {
            if m.is_dir() {
                return Err(named(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")));
            }
            // A device or a pipe: written in place.
            let f = OpenOptions::new().write(true).truncate(true).open(&target).map_err(named)?;
            return Ok(OutputFile {
                path: path.to_path_buf(),
                target,
                temp: None,
                file: Some(io::BufWriter::with_capacity(1 << 16, fault::Limited::output(f))),
            });
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
        let (temp, f) = loop {
            let n = TEMP_NUMBER.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!(".{name}.changeling-{}-{n}.tmp", std::process::id()));
            // Made and registered under the lock: a signal handler either
            // sees it or runs before it exists.
            let mut temps = LIVE_TEMPS.lock().map_err(|_| io::Error::other("output registry poisoned"))?;
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(f) => {
                    temps.push(temp.clone());
                    break (temp, f);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(named(e)),
            }
        };
        // Temporary files of this destination left by runs killed with
        // SIGKILL (no handler removes them) go when their process is gone.
        crate::spill::remove_left_by_dead_processes(&dir, &format!(".{name}.changeling-"), &temp);
        if let Some(m) = existing {
            // The new file keeps the old one's permissions.
            let _ = f.set_permissions(m.permissions());
        }
        Ok(OutputFile {
            path: path.to_path_buf(),
            target,
            temp: Some(temp),
            file: Some(io::BufWriter::with_capacity(1 << 16, fault::Limited::output(f))),
        })
    }

    /// The destination, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> io::Result<()> {
        let path = self.path.clone();
        let w = self.file.take().expect("not yet committed");
        let f = w.into_inner().map_err(|e| named(&path, "writing", e.into_error()))?.into_inner();
        let Some(temp) = self.temp.take() else { return Ok(()) };
        let done = f
            .sync_all()
            .map_err(|e| named(&path, "writing", e))
            .and_then(|()| std::fs::rename(&temp, &self.target).map_err(|e| named(&path, "renaming into", e)));
        if done.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        unregister(&temp);
        done?;
        // The rename itself reaches the disk with the directory.
        if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let path = &self.path;
        self.file.as_mut().expect("not yet committed").write(buf).map_err(|e| named(path, "writing", e))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let path = &self.path;
        self.file.as_mut().expect("not yet committed").write_all(buf).map_err(|e| named(path, "writing", e))
    }

    fn flush(&mut self) -> io::Result<()> {
        let path = &self.path;
        self.file.as_mut().expect("not yet committed").flush().map_err(|e| named(path, "writing", e))
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            self.file = None;
            let _ = std::fs::remove_file(&temp);
            unregister(&temp);
        }
    }
}

/// `e` with the file and what was being done in its message, of the same
/// kind (a broken pipe stays one). Named once only.
fn named(path: &Path, doing: &str, e: io::Error) -> io::Error {
    let shown = path.display().to_string();
    if e.to_string().contains(&shown) {
        return e;
    }
    io::Error::new(e.kind(), format!("{doing} {shown}: {e}"))
}

/// Writes `bytes` to `path` atomically (see [`OutputFile`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OutputFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Whether `path` can be written, checked before a run: its temporary file
/// is made beside it and removed again (a missing directory, a directory
/// given as the file, a directory without write permission are errors
/// naming the path, as they would be after the run). A destination that
/// exists and is not a regular file (`/dev/null`, a pipe) is not opened: it
/// is written directly, and opening a pipe would wait for its reader.
pub fn check_writable(path: &Path) -> io::Result<()> {
    if let Ok(m) = std::fs::metadata(path)
        && !m.is_file()
        && !m.is_dir()
    {
        return Ok(());
    }
    OutputFile::create(path).map(drop)
}

/// Why an output path is refused: it is, or would be read as, a file of the
/// dataset `data`.
pub fn check_not_input(out: &Path, data: &Path) -> Result<(), String> {
    let out_abs = absolute(out);
    let Ok(data_abs) = std::fs::canonicalize(data) else { return Ok(()) };
    let out_meta = std::fs::metadata(out).ok();
    if out_meta.as_ref().is_some_and(|m| !m.is_file() && !m.is_dir()) {
        // A device or a pipe is no table.
        return Ok(());
    }
    let refuse = |what: &str| {
        Err(format!(
            "refusing to write {}: {what} of the dataset {}; write the output outside the dataset directory",
            out.display(),
            data.display()
        ))
    };
    if out_abs == data_abs {
        return refuse("it is the directory");
    }
    // Every input file, by path and by (device, inode): a hard link has
    // another path but the same inode.
    for path in crate::data::source::input_files(&data_abs) {
        let same_path = std::fs::canonicalize(&path).is_ok_and(|p| p == out_abs);
        if same_path || same_inode(out_meta.as_ref(), &path) {
            return refuse(&format!("it is the input file {}", path.display()));
        }
    }
    if let Ok(rest) = out_abs.strip_prefix(&data_abs)
        && crate::data::source::would_be_read(rest)
    {
        return refuse("it would be read as a table");
    }
    Ok(())
}

/// `path` made absolute with symbolic links resolved, as far as it exists.
fn absolute(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(p), Some(name)) => p.join(name),
        _ => path.to_path_buf(),
    }
}

#[cfg(unix)]
fn same_inode(out: Option<&std::fs::Metadata>, input: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (out, std::fs::metadata(input)) {
        (Some(o), Ok(i)) => o.dev() == i.dev() && o.ino() == i.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: Option<&std::fs::Metadata>, _: &Path) -> bool {
    false
}

/// Injected faults, for the tests of a full disk: a writer that fails with
/// "no space left on device" once the bytes written by all such writers
/// reach the limit given in the environment.
pub mod fault {
    use std::io::{self, Write};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Output files fail after this many bytes.
    pub const OUT_ENV: &str = "CHANGELING_FAULT_OUT_FULL_AFTER";
    /// Spill files fail after this many bytes.
    pub const SPILL_ENV: &str = "CHANGELING_FAULT_SPILL_FULL_AFTER";

    struct Budget {
        limit: OnceLock<Option<u64>>,
        used: AtomicU64,
    }

    static OUT: Budget = Budget { limit: OnceLock::new(), used: AtomicU64::new(0) };
    static SPILL: Budget = Budget { limit: OnceLock::new(), used: AtomicU64::new(0) };

    impl Budget {
        fn take(&self, env: &str, n: usize) -> io::Result<()> {
            let limit = *self.limit.get_or_init(|| std::env::var(env).ok().and_then(|v| v.parse().ok()));
            if let Some(limit) = limit
                && self.used.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > limit
            {
                // ENOSPC, as a real full disk reports it.
                return Err(io::Error::from_raw_os_error(28));
            }
            Ok(())
        }
    }

    /// A daily run writing a state dies here (as if killed) when this names
    /// the step: `layers`, `files`, `manifest`, `switch` or `cleanup`.
    pub const STATE_KILL_ENV: &str = "CHANGELING_FAULT_STATE_KILL_AT";

    /// Dies at once, as a killed process does, when [`STATE_KILL_ENV`]
    /// names `step`.
    pub fn state_step(step: &str) {
        if std::env::var(STATE_KILL_ENV).is_ok_and(|s| s == step) {
            std::process::abort();
        }
    }

    /// Counts `n` bytes about to be written to a spill file: an error once
    /// past the injected limit, if any.
    pub fn spill(n: usize) -> io::Result<()> {
        SPILL.take(SPILL_ENV, n)
    }

    /// A writer under the injected output limit, if any.
    pub struct Limited<W> {
        inner: W,
    }

    impl<W> Limited<W> {
        /// `inner`, limited.
        pub fn output(inner: W) -> Self {
            Limited { inner }
        }

        /// The writer.
        pub fn into_inner(self) -> W {
            self.inner
        }
    }

    impl<W: Write> Write for Limited<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            OUT.take(OUT_ENV, buf.len())?;
            self.inner.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        {
            let mut f = OutputFile::create(&path).unwrap();
            f.write_all(b"half").unwrap();
            // Dropped without a commit: an error or a signal.
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let mut f = OutputFile::create(&path).unwrap();
        f.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n", "nothing appears before the commit");
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["alerts.jsonl"], "no temporary file is left");
    }

    #[test]
    fn a_symbolic_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.jsonl");
        let link = dir.path().join("link.jsonl");
        std::fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
    }

    #[test]
    fn a_device_is_written_in_place_and_errors_name_it() {
        write_file(Path::new("/dev/null"), b"x").unwrap();
        if Path::new("/dev/full").exists() {
            let e = write_file(Path::new("/dev/full"), b"x").unwrap_err();
            assert!(e.to_string().contains("/dev/full"), "{e}");
        }
    }

    #[test]
    fn outputs_over_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(data.join("items")).unwrap();
        std::fs::write(data.join("events.jsonl"), "{}\n").unwrap();
        std::fs::write(data.join("items/part-0.csv"), "id\n").unwrap();
        std::os::unix::fs::symlink(data.join("events.jsonl"), dir.path().join("link.jsonl")).unwrap();
        std::fs::hard_link(data.join("events.jsonl"), dir.path().join("hard.jsonl")).unwrap();
        for bad in [
            data.join("events.jsonl"),
            data.join("./events.jsonl"),
            dir.path().join("link.jsonl"),
            dir.path().join("hard.jsonl"),
            data.join("items/part-0.csv"),
            data.join("items/part-1.jsonl"),
            data.join("follows.csv.gz"),
            data.clone(),
        ] {
            let e = check_not_input(&bad, &data).expect_err(&bad.display().to_string());
            assert!(e.contains("refusing to write"), "{e}");
        }
        for good in [dir.path().join("alerts.jsonl"), data.join("alerts.jsonl"), PathBuf::from("/dev/null")] {
            check_not_input(&good, &data).unwrap();
        }
    }
}
