//! Reading key files (size-capped) and writing them (private files 0600, public ones 0644,
//! atomically, never through a symbolic link), and telling whether a directory or file is
//! writable by others than its owner.

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
    /// Readable by anyone, writable by the owner only (0644, less if the umask says so):
    /// public key sets.
    Public,
}

fn options(access: Access) -> OpenOptions {
    let mut options = OpenOptions::new();
    // `create_new` is O_CREAT|O_EXCL: it fails on any existing name, a (dangling) symbolic
    // link included, so a file is never written through a link someone planted.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(match access {
            Access::Private => 0o600,
            Access::Public => 0o644,
        });
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
/// so a reader (a service polling `jwks.json`) never sees a half-written file. A symbolic
/// link at `path` is replaced, not followed.
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

/// The permission bits of `path` (following a symbolic link) when group or others may write
/// to it, `None` when only its owner may. A sticky `/tmp`-style directory still counts as
/// writable by others: anyone can add a file there. Always `None` off unix.
pub(crate) fn writable_by_others(path: &Path) -> Result<Option<u32>, CliError> {
    let metadata = fs::metadata(path).map_err(CliError::io(path))?;
    Ok(others_write_bits(&metadata))
}

#[cfg(unix)]
fn others_write_bits(metadata: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o7777;
    (mode & 0o022 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn others_write_bits(_: &fs::Metadata) -> Option<u32> {
    None
}

/// Why `path` is not a file only its owner can change (`Ok(Some(reason))`): a symbolic link,
/// not a regular file, or writable by group or others. `Ok(None)` when it is; `Err` when it
/// cannot be looked at.
pub(crate) fn not_owner_only_file(path: &Path) -> Result<Option<String>, CliError> {
    let metadata = fs::symlink_metadata(path).map_err(CliError::io(path))?;
    Ok(if metadata.file_type().is_symlink() {
        Some("is a symbolic link".to_owned())
    } else if !metadata.is_file() {
        Some("is not a regular file".to_owned())
    } else {
        others_write_bits(&metadata)
            .map(|mode| format!("is writable by group or others (mode {mode:o})"))
    })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn files_are_created_owner_only_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        let link = dir.path().join("k1.pem");
        std::os::unix::fs::symlink(&victim, &link).unwrap();

        assert!(matches!(
            create_new(&link, Access::Private, b"key"),
            Err(CliError::Exists(_))
        ));
        replace(&link, Access::Private, b"key").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(fs::read(&link).unwrap(), b"key");
        assert!(
            !fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&link), 0o600);
        let public = dir.path().join("jwks.json");
        create_new(&public, Access::Public, b"{}").unwrap();
        assert_eq!(mode(&public) & !0o644, 0, "{:o}", mode(&public));
    }

    #[test]
    fn writable_by_others_and_owner_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        for (mode, expected) in [
            (0o700, None),
            (0o755, None),
            (0o770, Some(0o770)),
            (0o1777, Some(0o1777)),
            (0o702, Some(0o702)),
        ] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(writable_by_others(path).unwrap(), expected, "{mode:o}");
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).unwrap();

        let file = path.join("f");
        fs::write(&file, b"x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(not_owner_only_file(&file).unwrap(), None);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(not_owner_only_file(&file).unwrap().unwrap().contains("666"));
        let link = path.join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            not_owner_only_file(&link).unwrap().unwrap(),
            "is a symbolic link"
        );
        assert_eq!(
            not_owner_only_file(path).unwrap().unwrap(),
            "is not a regular file"
        );
    }
}
