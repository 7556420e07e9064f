//! Writing `-o` files: whole or not at all where that can be done, straight through otherwise.
//!
//! A report that is half written (disk full, Ctrl-C, a crash) would later be read back by
//! `check --baseline` or `fleet` as garbage. So a regular file gets its bytes in a temporary file
//! in the same directory (same file system, so the rename is atomic) that replaces it only when
//! complete, with the old file's mode and owner. But `-o` may also name something that is not a
//! file to replace: a symlink (its target is written, the link stays), `/dev/stdout` or
//! `/dev/fd/N` (this process's own descriptor, appending where the shell said `>>`), a FIFO, a
//! terminal or `/dev/null` (written straight; a rename would put a regular file in its place).
//! A regular file with other names (hard links) is written in place, so every name sees the new
//! report; its space is reserved first, so a full disk leaves it as it was.

use crate::exit;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Symlinks followed before giving up, as the kernel's own limit (ELOOP).
const MAX_SYMLINKS: usize = 40;

/// A file that could not be written; a regular file is unchanged.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl WriteError {
    /// 3 when the machine is at fault (disk full, quota, I/O error), else 2: the path is wrong
    /// (no such directory, no permission, a directory) and another one will do.
    pub fn exit_code(&self) -> u8 {
        environment_or_usage(&self.source)
    }

    /// The reader of a pipe or FIFO went away: its choice, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }
}

/// The exit code for an error writing output: 3 for what the machine lacks, 2 for the rest.
pub fn environment_or_usage(e: &io::Error) -> u8 {
    let machine = matches!(
        e.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::ReadOnlyFilesystem
    ) || e.raw_os_error() == Some(libc::EIO);
    if machine {
        exit::ENVIRONMENT
    } else {
        exit::USAGE
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Where the bytes for a path go, symlinks followed.
#[derive(Debug, PartialEq)]
enum Destination {
    /// Nothing there yet: a new file, created whole.
    New(PathBuf),
    /// A regular file with one name: replaced whole.
    Replace(PathBuf),
    /// A regular file with other names: written in place, so they all see it.
    InPlace(PathBuf),
    /// A device, FIFO or socket, or a file of /proc: opened and written, never replaced.
    Straight(PathBuf),
    /// This process's own descriptor N (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`).
    Descriptor(RawFd),
}

/// Checks, before anything is measured, that `path` can be written: its directory exists and
/// takes a new file, an existing file is writable. Nothing is left behind, and a FIFO or device
/// is not opened (that could block or have effects).
pub fn check(path: &Path) -> Result<(), WriteError> {
    let fail = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    match destination(path).map_err(fail)? {
        Destination::New(target) => {
            let temp = create_temp(&target).map_err(fail)?;
            let _ = fs::remove_file(temp.1);
        }
        Destination::Replace(target) | Destination::InPlace(target) => {
            OpenOptions::new().write(true).open(&target).map_err(fail)?;
        }
        Destination::Straight(_) | Destination::Descriptor(_) => {}
    }
    Ok(())
}

/// Writes `bytes` to `path` as the module's header says.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let fail = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    match destination(path).map_err(fail)? {
        Destination::New(target) => replace(&target, None, bytes),
        Destination::Replace(target) => match fs::metadata(&target) {
            Ok(old) => replace(&target, Some(&old), bytes),
            Err(e) => Err(e),
        },
        Destination::InPlace(target) => in_place(&target, bytes),
        Destination::Straight(target) => OpenOptions::new()
            .write(true)
            .open(&target)
            .and_then(|mut f| f.write_all(bytes)),
        Destination::Descriptor(fd) => descriptor(fd, bytes),
    }
    .map_err(fail)
}

/// Follows `path`'s symlinks to what it names. A link into /proc is not followed further: its
/// target's name (`pipe:[123]`, a file opened with O_APPEND) is not where the bytes belong.
fn destination(path: &Path) -> io::Result<Destination> {
    let mut current = path.to_owned();
    for _ in 0..MAX_SYMLINKS {
        let name = current
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?
            .to_owned();
        let dir = match current.parent() {
            Some(d) if !d.as_os_str().is_empty() => fs::canonicalize(d).map_err(|e| {
                let what = format!("no directory {}", d.display());
                match e.kind() {
                    io::ErrorKind::NotFound => io::Error::new(e.kind(), what),
                    _ => e,
                }
            })?,
            _ => std::env::current_dir()?,
        };
        if dir.starts_with("/proc") {
            return Ok(in_proc(&dir, &name));
        }
        let here = dir.join(&name);
        let meta = match fs::symlink_metadata(&here) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Destination::New(here)),
            other => other?,
        };
        if meta.file_type().is_symlink() {
            current = dir.join(fs::read_link(&here)?);
            continue;
        }
        return Ok(if !meta.is_file() {
            Destination::Straight(here)
        } else if meta.nlink() > 1 {
            Destination::InPlace(here)
        } else {
            Destination::Replace(here)
        });
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// `/proc/self/fd/N` (what `/dev/stdout` and `/dev/fd/N` lead to) is this process's descriptor;
/// anything else in /proc is written straight.
fn in_proc(dir: &Path, name: &std::ffi::OsStr) -> Destination {
    let own_fds = Path::new("/proc")
        .join(std::process::id().to_string())
        .join("fd");
    match name.to_str().and_then(|n| n.parse().ok()) {
        Some(fd) if dir == own_fds => Destination::Descriptor(fd),
        _ => Destination::Straight(dir.join(name)),
    }
}

/// Writes a temporary file beside `target` with `old`'s mode and owner and renames it over
/// `target`. A file this user cannot give its owner back is written in place instead.
fn replace(target: &Path, old: Option<&fs::Metadata>, bytes: &[u8]) -> io::Result<()> {
    let (mut file, temp) = create_temp(target)?;
    let result = (|| {
        if let Some(old) = old {
            file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))?;
            if std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid())).is_err() {
                return Ok(false);
            }
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, target).map(|()| true)
    })();
    match result {
        Ok(true) => Ok(()),
        Ok(false) => {
            let _ = fs::remove_file(&temp);
            in_place(target, bytes)
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Overwrites the file where it is: space for every byte reserved first (so a full disk fails
/// before anything changed), then the bytes, then the file cut to their length.
fn in_place(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(target)?;
    reserve(&file, bytes.len())?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
}

/// Allocates `len` bytes of the file without changing its size. File systems that cannot
/// (EOPNOTSUPP) are written without the reservation.
fn reserve(file: &File, len: usize) -> io::Result<()> {
    let Ok(len) = libc::off_t::try_from(len) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate on a descriptor this function borrows; it touches no memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) => Ok(()),
        _ => Err(e),
    }
}

/// Writes to a copy of this process's descriptor `fd`, so its file offset and O_APPEND apply.
fn descriptor(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: dup only reads the descriptor table; a closed `fd` makes it fail with EBADF.
    let copy = unsafe { libc::dup(fd) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh descriptor that nothing else owns; the File closes it.
    let mut file = unsafe { File::from_raw_fd(copy) };
    file.write_all(bytes)?;
    file.flush()
}

/// Creates `dir/.name.tmp-PID-N` beside `target`: hidden, unique per process and call (two
/// threads may write the same target at once; the last rename wins, whole).
fn create_temp(target: &Path) -> io::Result<(File, PathBuf)> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    temp.push(format!(".tmp-{}-{call}", std::process::id()));
    let temp = target.with_file_name(temp);
    Ok((File::create_new(&temp)?, temp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("p2ptop-write-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_is_written_and_replaced_whole_with_nothing_left_beside_it() {
        let dir = scratch("ok");
        let path = dir.join("report.json");
        write_output(&path, b"first").unwrap();
        write_output(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(names(&dir), ["report.json"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_fails_naming_the_path_and_leaves_no_file() {
        let dir = scratch("missing");
        let path = dir.join("absent").join("report.json");
        for err in [
            check(&path).unwrap_err(),
            write_output(&path, b"data").unwrap_err(),
        ] {
            assert!(err.to_string().contains("absent/report.json"), "{err}");
            assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
            assert_eq!(err.exit_code(), exit::USAGE);
        }
        assert!(!path.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_check_leaves_nothing_and_a_directory_is_refused() {
        let dir = scratch("check");
        check(&dir.join("report.json")).unwrap();
        assert!(names(&dir).is_empty());
        let err = write_output(&dir, b"new").unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::IsADirectory, "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_replaced_file_keeps_its_mode_and_a_linked_one_its_other_names() {
        let dir = scratch("mode");
        let path = dir.join("report.json");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_output(&path, b"new").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        let other = dir.join("other-name.json");
        fs::hard_link(&path, &other).unwrap();
        write_output(&path, b"newer, and longer than before").unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"newer, and longer than before");
        write_output(&path, b"short").unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"short");
        assert_eq!(names(&dir), ["other-name.json", "report.json"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlinks_lead_to_their_target_and_proc_descriptors_to_this_process() {
        let dir = scratch("links");
        std::os::unix::fs::symlink("sub/target.json", dir.join("link.json")).unwrap();
        fs::create_dir(dir.join("sub")).unwrap();
        assert_eq!(
            destination(&dir.join("link.json")).unwrap(),
            Destination::New(fs::canonicalize(&dir).unwrap().join("sub/target.json"))
        );
        std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
        assert_eq!(
            destination(&dir.join("loop")).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
        assert_eq!(
            destination(Path::new("/dev/stdout")).unwrap(),
            Destination::Descriptor(1)
        );
        assert_eq!(
            destination(Path::new("/dev/null")).unwrap(),
            Destination::Straight(PathBuf::from("/dev/null"))
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = scratch("rename");
        // A directory where the file should go: the rename fails after the data was written.
        let path = dir.join("report.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"old").unwrap();
        assert!(replace(&path, None, b"new").is_err());
        assert_eq!(fs::read(path.join("keep")).unwrap(), b"old");
        assert_eq!(names(&dir), ["report.json"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
