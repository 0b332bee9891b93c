//! Which processes have a SQLite database open: every `SqliteStore` holds a shared `flock` on
//! the sidecar file `<database>-lock` while it is open, so the CLI's bulk ingestion can tell
//! whether another process (a running `serve`) shares the database and must get the write lock
//! regularly (docs/decisions.md D42). `flock` locks are independent of the POSIX locks SQLite
//! takes on the database and `-shm` files, and this module never opens those files (closing a
//! descriptor of them would drop SQLite's own locks).

use crate::StoreError;
use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::path::Path;

pub(crate) struct Presence {
    file: File,
}

impl Presence {
    /// Opens (creating) `<database>-lock` and announces this process with a shared lock.
    pub(crate) fn announce(db: &Path) -> Result<Self, StoreError> {
        let mut name = db.as_os_str().to_owned();
        name.push("-lock");
        let path = std::path::PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::internal(format!("opening {}: {e}", path.display())))?;
        flock(&file, FlockOperation::LockShared)
            .map_err(|e| StoreError::internal(format!("locking {}: {e}", path.display())))?;
        Ok(Self { file })
    }

    /// True when another process has the database open (holds its shared lock too). Upgrading
    /// our lock succeeds only when nobody else holds one; it is then downgraded again. A failed
    /// upgrade may have dropped our shared lock (flock conversions are not atomic), so it is
    /// taken again; that can wait only while another process runs this same check.
    pub(crate) fn others_present(&self) -> bool {
        let alone = flock(&self.file, FlockOperation::NonBlockingLockExclusive).is_ok();
        if let Err(e) = flock(&self.file, FlockOperation::LockShared) {
            // Unannounced, another bulk session may miss us: only its pace is at stake.
            tracing::warn!(error = %e, "re-taking the database presence lock failed");
        }
        !alone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_seen_until_it_leaves() {
        let dir = tempfile_dir();
        let db = dir.join("p.db");
        let a = Presence::announce(&db).unwrap();
        assert!(!a.others_present(), "alone");
        let b = Presence::announce(&db).unwrap();
        assert!(a.others_present() && b.others_present());
        drop(b);
        assert!(!a.others_present(), "alone again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pe-presence-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
