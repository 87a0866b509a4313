//! Fresh working directories under the system temp dir.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Result;

/// A fresh directory under the system temp dir, removed on drop unless kept.
pub(crate) struct WorkDir {
    path: PathBuf,
    keep: Cell<bool>,
}

impl WorkDir {
    /// Creates `<temp dir>/<prefix>-<process id>-<nanoseconds>-<count>`.
    pub(crate) fn create(prefix: &str) -> Result<WorkDir> {
        // The nanoseconds tell processes apart; the counter tells apart directories created
        // by one process (tests run in parallel).
        static CREATED: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
        let count = CREATED.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{nanos}-{count}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(WorkDir {
            path,
            keep: Cell::new(false),
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory when this is dropped.
    pub(crate) fn keep(&self) {
        self.keep.set(true);
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep.get() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_fresh_and_removed_unless_kept() {
        let (a, b) = (
            WorkDir::create("xtask-test").unwrap(),
            WorkDir::create("xtask-test").unwrap(),
        );
        assert_ne!(a.path(), b.path());
        assert!(a.path().is_dir() && b.path().is_dir());
        let (removed, kept) = (a.path().to_owned(), b.path().to_owned());
        b.keep();
        drop((a, b));
        assert!(!removed.exists());
        assert!(kept.is_dir());
        std::fs::remove_dir(&kept).unwrap();
    }
}
