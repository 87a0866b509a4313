//! Reading key files (size-capped) and writing them (private files 0600, atomically).

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::CliError;

/// Key and key-set files larger than this are refused unread (no key file comes close).
pub(crate) const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Reads a key or key-set file. The buffer is wiped when dropped.
pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let file = File::open(path).map_err(CliError::io(path))?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(CliError::io(path))?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(CliError::bad_file(
            path,
            format!("larger than {MAX_KEY_FILE} bytes; not a key file"),
        ));
    }
    Ok(buf)
}

/// Who may read a file we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Only the owner (0600): private keys, secrets, secret key sets.
    Private,
    /// Readable by anyone the umask allows: public key sets.
    Public,
}

fn options(access: Access) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if access == Access::Private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = access;
    options
}

/// Creates `path`, failing if it exists (no race between the check and the write).
pub(crate) fn create_new(path: &Path, access: Access, content: &[u8]) -> Result<(), CliError> {
    let mut file = options(access).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Exists(path.to_owned())
        } else {
            CliError::io(path)(e)
        }
    })?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(CliError::io(path))
}

/// Writes `path` atomically: a temporary file next to it is written, then renamed over it,
/// so a reader (a service polling `jwks.json`) never sees a half-written file.
pub(crate) fn replace(path: &Path, access: Access, content: &[u8]) -> Result<(), CliError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    // A leftover from a crashed run of this same process id.
    let _ = fs::remove_file(&tmp);
    // The temporary file gets its final permissions at creation; the rename keeps them.
    let written = create_new(&tmp, access, content)
        .and_then(|()| fs::rename(&tmp, path).map_err(CliError::io(path)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Creates directory `dir` (and its parents) if missing; new directories are 0700 on unix.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CliError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(CliError::io(dir))
}
