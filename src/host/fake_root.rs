//! A fake file system root for the host tests: a temporary directory holding the `sys/` and
//! `proc/` files a test writes, removed when dropped.

use std::fs;
use std::path::PathBuf;

pub struct FakeRoot(pub PathBuf);

impl FakeRoot {
    pub fn new(name: &str) -> FakeRoot {
        let dir = std::env::temp_dir().join(format!("p2ptop-host-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sys/kernel")).unwrap();
        FakeRoot(dir)
    }

    pub fn file(&self, path: &str, text: &str) -> &FakeRoot {
        self.bytes(path, text.as_bytes())
    }

    pub fn bytes(&self, path: &str, bytes: &[u8]) -> &FakeRoot {
        let path = self.0.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
        self
    }

    pub fn dir(&self, path: &str) -> &FakeRoot {
        fs::create_dir_all(self.0.join(path)).unwrap();
        self
    }

    /// `link` pointing at `target` (both under the root), as sysfs links devices.
    pub fn link(&self, link: &str, target: &str) -> &FakeRoot {
        let link = self.0.join(link);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(self.0.join(target), link).unwrap();
        self
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
