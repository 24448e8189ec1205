//! The data directory and its files are owner-only: the directory holds every buffered message,
//! the tenants' secrets (in the tenant table) and the log-hash key. Whoever creates them first
//! (`lull serve`, or `lull tenants apply` before any serve) creates them so: the directory 0700,
//! the SQLite database 0600 (SQLite gives its `-wal` and `-shm` files the database's mode), the
//! key file 0600.

use std::fs::File;
use std::path::Path;

/// Creates `dir` (owner-only, 0700, on Unix) or narrows an existing one to its owner: it holds
/// every buffered message and the log-hash key.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                data_dir = %dir.display(),
                mode = format!("{mode:o}"),
                "data directory was readable by others; narrowing it to 0700"
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Creates a new file readable by its owner only (0600 on Unix); fails if it exists.
pub fn create_file(path: &Path) -> std::io::Result<File> {
    let mut options = File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes sure the SQLite database at `path` exists with owner-only permissions before SQLite
/// opens it (SQLite would create it with the process umask, typically 0644): an empty file is a
/// valid new database. An existing database open to others is narrowed to 0600.
pub fn create_database(path: &Path) -> std::io::Result<()> {
    match create_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}
