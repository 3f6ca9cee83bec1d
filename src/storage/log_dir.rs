//! What a node keeps in a log dir besides partitions: the lock that makes one process
//! its owner, and the broker registration that process last got from the controller.
//!
//! * `.lock` (Kafka's name): held with an exclusive `flock(2)` for as long as the node
//!   runs. The kernel drops it when the process ends, however it ends (kill -9 too),
//!   so a process holding it knows every earlier owner of the dir is gone.
//! * `broker-registration.properties`: the node id, incarnation id and broker epoch
//!   of the last registration the controller accepted, and which lock file it was
//!   recorded under ([`LockIdentity`]). A restart that holds that very lock file sends
//!   the epoch as its previous broker epoch (Kafka's PreviousBrokerEpoch, KIP-966),
//!   and the controller may replace that registration at once instead of waiting out
//!   its session. Kafka writes its epoch only at a clean shutdown; here every
//!   registration is recorded, so a crash restart proves itself too.
//!
//! Why the lock file's identity: a copy of the dir (`cp -a`, a restored backup, a
//! cloned volume) carries the registration file and a `.lock` of its own, which it can
//! lock while the original still runs. Only the lock on the *same* file proves the
//! earlier process gone. A file is named by its device and inode numbers, which no
//! other file on that machine has while it exists, and the running original keeps its
//! `.lock` open, so a copy never has them; the kernel's boot id tells one machine (and
//! one boot) from another, where the numbers could repeat. Everything else a dir holds
//! (`meta.properties`, a directory id) is copied with it. A restart after a reboot, a
//! moved dir or an old file without the identity names no previous epoch: it is then
//! refused (DUPLICATE_BROKER_REGISTRATION) until the old registration's session has
//! passed, as in Kafka.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::checkpoint::write_atomic;
use super::error::StorageError;

pub const LOCK_FILE: &str = ".lock";
pub const REGISTRATION_FILE: &str = "broker-registration.properties";
/// Where Linux tells its boot id: random at each boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Which `.lock` file a process held: the same values mean the same file on the same
/// machine in the same boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockIdentity {
    pub boot_id: String,
    pub dev: u64,
    pub ino: u64,
}

impl LockIdentity {
    /// The identity of `file`, or `None` when the boot id cannot be read (the numbers
    /// alone could match a file on another machine).
    fn of(file: &File) -> Option<LockIdentity> {
        let boot_id = std::fs::read_to_string(BOOT_ID).ok()?.trim().to_string();
        let meta = file.metadata().ok()?;
        (!boot_id.is_empty()).then(|| LockIdentity {
            boot_id,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// An exclusive lock on one log dir, held until dropped (or the process ends).
#[derive(Debug)]
pub struct LogDirLock {
    dir: PathBuf,
    /// The open `.lock` file: closing it releases the `flock`.
    _file: File,
    /// Of the locked file, read from its descriptor: the file locked, not whatever the
    /// path names by now.
    identity: Option<LockIdentity>,
}

impl LogDirLock {
    /// Lock `dir` (which must exist). `Err` with `ErrorKind::WouldBlock` when another
    /// open file holds it: another process, or another node in this one.
    pub fn acquire(dir: &Path) -> io::Result<LogDirLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        // SAFETY: flock on a file descriptor this function owns, open until `file` drops.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(LogDirLock {
            dir: dir.to_path_buf(),
            identity: LockIdentity::of(&file),
            _file: file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The locked file's identity (`None`: unknown, so no previous epoch is claimed).
    pub fn identity(&self) -> Option<&LockIdentity> {
        self.identity.as_ref()
    }
}

/// The registration a broker recorded in its log dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRegistration {
    pub node_id: i32,
    pub incarnation_id: [u8; 16],
    pub broker_epoch: i64,
    /// The lock the recording process held (`None` in version-1 files, written before
    /// it was recorded, and where it was unknown).
    pub lock: Option<LockIdentity>,
}

impl RecordedRegistration {
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "#Written by troupe at each broker registration: a restart holding the same lock file names broker.epoch as its previous broker epoch\nversion=2\nnode.id={}\nincarnation.id={}\nbroker.epoch={}\n",
            self.node_id,
            uuid::Uuid::from_bytes(self.incarnation_id),
            self.broker_epoch
        );
        if let Some(l) = &self.lock {
            text += &format!(
                "lock.boot.id={}\nlock.dev={}\nlock.ino={}\n",
                l.boot_id, l.dev, l.ino
            );
        }
        text
    }

    /// `None` for anything but a complete version-1 or version-2 file: a restart then
    /// registers without a previous epoch, which only costs it the wait Kafka would
    /// impose. A version-1 file (no lock identity) reads with `lock: None`.
    pub fn parse(text: &str) -> Option<RecordedRegistration> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::trim)
        };
        let version = field("version")?;
        if version != "1" && version != "2" {
            return None;
        }
        let lock = match (field("lock.boot.id"), field("lock.dev"), field("lock.ino")) {
            (Some(boot_id), Some(dev), Some(ino)) if version == "2" && !boot_id.is_empty() => {
                Some(LockIdentity {
                    boot_id: boot_id.to_string(),
                    dev: dev.parse().ok()?,
                    ino: ino.parse().ok()?,
                })
            }
            (None, None, None) => None,
            // Part of an identity, or one in a version-1 file: not a file this wrote.
            _ => return None,
        };
        Some(RecordedRegistration {
            node_id: field("node.id")?.parse().ok()?,
            incarnation_id: *uuid::Uuid::parse_str(field("incarnation.id")?)
                .ok()?
                .as_bytes(),
            broker_epoch: field("broker.epoch")?.parse().ok()?,
            lock,
        })
    }

    /// The previous broker epoch a process holding the lock `held` may name: the
    /// recorded one only if it was recorded under that same lock file, which proves the
    /// recording process gone (see the module doc). A copied dir, an old file without
    /// the identity, or an unknown identity name none.
    pub fn previous_epoch(&self, held: Option<&LockIdentity>) -> Option<i64> {
        match (&self.lock, held) {
            (Some(recorded), Some(held)) if recorded == held => Some(self.broker_epoch),
            _ => None,
        }
    }

    /// What `dir` recorded for `node_id` (a file written for another node id is not
    /// this node's registration).
    pub fn read(dir: &Path, node_id: i32) -> Option<RecordedRegistration> {
        let text = std::fs::read_to_string(dir.join(REGISTRATION_FILE)).ok()?;
        Self::parse(&text).filter(|r| r.node_id == node_id)
    }

    /// Replace the file at once (write, fsync, rename). Blocks: not on an event loop.
    pub fn write(&self, dir: &Path) -> Result<(), StorageError> {
        write_atomic(&dir.join(REGISTRATION_FILE), &self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_log_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = LogDirLock::acquire(dir.path()).unwrap();
        let err = LogDirLock::acquire(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        let again = LogDirLock::acquire(dir.path()).unwrap();
        assert_eq!(again.dir(), dir.path());
    }

    fn lock(boot: &str, dev: u64, ino: u64) -> LockIdentity {
        LockIdentity {
            boot_id: boot.to_string(),
            dev,
            ino,
        }
    }

    #[test]
    fn a_recorded_registration_round_trips_and_bad_files_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RecordedRegistration::read(dir.path(), 2), None);
        let r = RecordedRegistration {
            node_id: 2,
            incarnation_id: [7; 16],
            broker_epoch: 4711,
            lock: Some(lock("b00t", 2049, 131_075)),
        };
        r.write(dir.path()).unwrap();
        assert_eq!(RecordedRegistration::read(dir.path(), 2), Some(r.clone()));
        assert_eq!(
            RecordedRegistration::read(dir.path(), 3),
            None,
            "another node's"
        );
        let text = r.to_text();
        let no_lock = RecordedRegistration {
            lock: None,
            ..r.clone()
        }
        .to_text();
        // What the previous version wrote.
        let v1 = "#Written by troupe\nversion=1\nnode.id=2\n\
                  incarnation.id=07070707-0707-0707-0707-070707070707\nbroker.epoch=4711\n";
        // (file text, parses, with a lock identity)
        let table = [
            (text.clone(), true, true),
            (no_lock.clone(), true, false),
            (v1.to_string(), true, false),
            (
                format!("{v1}lock.boot.id=b00t\nlock.dev=2049\nlock.ino=131075\n"),
                false,
                false,
            ),
            (text.replace("version=2", "version=3"), false, false),
            (text.replace("lock.ino=131075\n", ""), false, false), // part of an identity
            (text.replace("lock.dev=2049", "lock.dev=x"), false, false),
            (
                text.replace("lock.boot.id=b00t", "lock.boot.id="),
                false,
                false,
            ),
            (
                text.replace("broker.epoch=4711", "broker.epoch=x"),
                false,
                false,
            ),
            (text.replace("broker.epoch=4711\n", ""), false, false),
            (
                text.replace("incarnation.id=", "incarnation.id=zz"),
                false,
                false,
            ),
            (text[..text.len() / 2].to_string(), false, false), // torn
            (String::new(), false, false),
        ];
        for (t, ok, locked) in table {
            let parsed = RecordedRegistration::parse(&t);
            assert_eq!(parsed.is_some(), ok, "{t:?}");
            assert_eq!(parsed.is_some_and(|p| p.lock.is_some()), locked, "{t:?}");
        }
        let parsed = RecordedRegistration::parse(v1).unwrap();
        assert_eq!((parsed.node_id, parsed.broker_epoch), (2, 4711));
    }

    #[test]
    fn only_a_process_holding_the_same_lock_file_names_the_previous_epoch() {
        let here = lock("b00t", 2049, 131_075);
        // (lock recorded with the registration, lock held now) -> previous epoch
        let table = [
            (Some(here.clone()), Some(here.clone()), Some(4711)), // restart of the same dir
            (Some(here.clone()), Some(lock("b00t", 2049, 131_999)), None), // a copy beside it
            (Some(here.clone()), Some(lock("b00t", 2065, 131_075)), None), // other file system
            (Some(here.clone()), Some(lock("other", 2049, 131_075)), None), // other machine or boot
            (Some(here.clone()), None, None),                     // identity unknown now
            (None, Some(here.clone()), None),                     // version-1 file
            (None, None, None),
        ];
        for (recorded, held, want) in table {
            let r = RecordedRegistration {
                node_id: 2,
                incarnation_id: [7; 16],
                broker_epoch: 4711,
                lock: recorded.clone(),
            };
            assert_eq!(
                r.previous_epoch(held.as_ref()),
                want,
                "{recorded:?} {held:?}"
            );
        }
    }

    /// A log dir copied file by file (what `cp -a` does) while its owner holds it: the
    /// copy can be locked beside the original, but its lock file is another file, so
    /// the registration it carries names no previous epoch; the original's own restart
    /// does.
    #[test]
    fn a_copied_log_dir_cannot_claim_the_registration_its_original_recorded() {
        let original = tempfile::tempdir().unwrap();
        let lock = LogDirLock::acquire(original.path()).unwrap();
        let held = lock.identity().cloned();
        assert!(held.is_some(), "boot id and inode readable on Linux");
        RecordedRegistration {
            node_id: 2,
            incarnation_id: [7; 16],
            broker_epoch: 4711,
            lock: held,
        }
        .write(original.path())
        .unwrap();
        let copy = tempfile::tempdir().unwrap();
        for f in [LOCK_FILE, REGISTRATION_FILE] {
            std::fs::copy(original.path().join(f), copy.path().join(f)).unwrap();
        }
        let copy_lock = LogDirLock::acquire(copy.path()).unwrap();
        let carried = RecordedRegistration::read(copy.path(), 2).unwrap();
        assert_eq!(carried.previous_epoch(copy_lock.identity()), None);

        drop(lock);
        let restarted = LogDirLock::acquire(original.path()).unwrap();
        let recorded = RecordedRegistration::read(original.path(), 2).unwrap();
        assert_eq!(recorded.previous_epoch(restarted.identity()), Some(4711));
    }
}
