//! Writing output files whole or not at all.
//!
//! A report that is half written (disk full, Ctrl-C, a crash) would later be read back by
//! `check --baseline` or `fleet` as garbage. So the bytes go to a temporary file in the same
//! directory (same file system, so the rename is atomic) and replace the target only when
//! complete.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file that could not be written; the target is unchanged.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
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

/// Writes `bytes` to `path`, replacing it only once they are all on disk.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let fail = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    let temp = temp_beside(path).map_err(fail)?;
    let written = write_synced(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        // The temporary file may not exist (creation failed); either way nothing is left.
        let _ = fs::remove_file(&temp);
        return Err(fail(e));
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `dir/.name.tmp-PID-N`: hidden, beside the target, unique per process and call (two threads
/// may write the same target at once; the last rename wins, whole).
fn temp_beside(path: &Path) -> io::Result<PathBuf> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    temp.push(format!(".tmp-{}-{call}", std::process::id()));
    Ok(path.with_file_name(temp))
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

    #[test]
    fn a_file_is_written_and_replaced_whole_with_nothing_left_beside_it() {
        let dir = scratch("ok");
        let path = dir.join("report.json");
        write_whole(&path, b"first").unwrap();
        write_whole(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_fails_naming_the_path_and_leaves_no_file() {
        let dir = scratch("missing");
        let path = dir.join("absent").join("report.json");
        let err = write_whole(&path, b"data").unwrap_err();
        assert!(err.to_string().contains("absent/report.json"), "{err}");
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = scratch("rename");
        // A directory where the file should go: the rename fails after the data was written.
        let path = dir.join("report.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"old").unwrap();
        let err = write_whole(&path, b"new").unwrap_err();
        assert!(err.to_string().contains("report.json"), "{err}");
        assert_eq!(fs::read(path.join("keep")).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
