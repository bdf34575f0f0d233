//! The directory a node works with: the last good one, replaced only by a verified newer one.
//!
//! [`DirectoryHolder`] keeps an `Arc<LoadedDirectory>` behind a lock that is held only to clone or swap the
//! `Arc`: readers take a snapshot with [`DirectoryHolder::current`] and resolve on it without any lock, while a
//! reload verifies and indexes the new directory *outside* the lock and then swaps it in. A reload that fails (an
//! unsigned, tampered, older or expired directory, a file that cannot be read) returns its typed error and leaves
//! the held directory untouched, so a node can call [`DirectoryHolder::load_file`] on a timer or on SIGHUP without
//! ever losing its routing.
//!
//! Versions: a higher version replaces the held one; a lower one is refused ([`Error::Older`]); the same version
//! with the same content (equal digest of the canonical form) is accepted as a no-op ([`Reload::Unchanged`]), so
//! re-reading an unchanged file is harmless; the same version with other content is refused
//! ([`Error::VersionReused`]).

use std::path::Path;
use std::sync::{Arc, RwLock};

use sdx_model::Timestamp;

use crate::error::{Error, Result};
use crate::signed::{LoadedDirectory, Verifier};

/// What a successful load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The new directory is now held.
    Installed {
        /// The version held before, if any.
        previous: Option<u64>,
        /// The version now held.
        version: u64,
    },
    /// The same directory was already held; nothing changed.
    Unchanged {
        /// Its version.
        version: u64,
    },
}

/// Holds the current verified directory; see the module docs.
#[derive(Debug)]
pub struct DirectoryHolder {
    verifier: Verifier,
    current: RwLock<Option<Arc<LoadedDirectory>>>,
}

impl DirectoryHolder {
    /// A holder with no directory yet, verifying with `verifier`.
    #[must_use]
    pub fn new(verifier: Verifier) -> DirectoryHolder {
        DirectoryHolder { verifier, current: RwLock::new(None) }
    }

    /// The directory held now (a snapshot: later reloads do not change it).
    #[must_use]
    pub fn current(&self) -> Option<Arc<LoadedDirectory>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Verify `bytes` (a signed directory) at time `now` and install it if it is newer than the one held.
    ///
    /// # Errors
    /// Every error of [`Verifier::verify`], [`Error::Older`], [`Error::VersionReused`]; the held directory stays.
    pub fn load_bytes(&self, bytes: &[u8], now: Timestamp) -> Result<Reload> {
        let new = self.verifier.verify(bytes, now)?;
        let mut slot = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = slot.as_ref().map(|c| c.version());
        if let Some(held) = slot.as_ref() {
            let (have, got) = (held.version(), new.version());
            if got < have {
                return Err(Error::Older { have, got });
            }
            if got == have {
                return if held.digest() == new.digest() {
                    Ok(Reload::Unchanged { version: got })
                } else {
                    Err(Error::VersionReused { version: got })
                };
            }
        }
        let version = new.version();
        *slot = Some(Arc::new(new));
        Ok(Reload::Installed { previous, version })
    }

    /// Read a signed directory from a file and load it as [`DirectoryHolder::load_bytes`] does, at the current
    /// time.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read (or is larger than [`crate::MAX_DIRECTORY_BYTES`]: then
    /// [`Error::TooLarge`]), else as [`DirectoryHolder::load_bytes`].
    pub fn load_file(&self, path: &Path) -> Result<Reload> {
        self.load_file_at(path, Timestamp::now())
    }

    /// [`DirectoryHolder::load_file`] at time `now`.
    ///
    /// # Errors
    /// As [`DirectoryHolder::load_file`].
    pub fn load_file_at(&self, path: &Path, now: Timestamp) -> Result<Reload> {
        let bytes = read_file(path)?;
        self.load_bytes(&bytes, now)
    }
}

/// Read a directory file, at most [`crate::MAX_DIRECTORY_BYTES`] (+1 to notice a larger one).
///
/// # Errors
/// [`Error::Io`], [`Error::TooLarge`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(crate::MAX_DIRECTORY_BYTES as u64 + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() > crate::MAX_DIRECTORY_BYTES {
        return Err(Error::TooLarge { limit: crate::MAX_DIRECTORY_BYTES });
    }
    Ok(buf)
}
