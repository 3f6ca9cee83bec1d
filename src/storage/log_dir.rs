//! What a node keeps in a log dir besides partitions: the lock that makes one process
//! its owner, and the broker registration that process last got from the controller.
//!
//! * `.lock` (Kafka's name): held with an exclusive `flock(2)` for as long as the node
//!   runs. The kernel drops it when the process ends, however it ends (kill -9 too),
//!   so a process holding it knows every earlier owner of the dir is gone.
//! * `broker-registration.properties`: the node id, incarnation id and broker epoch
//!   of the last registration the controller accepted. A restart sends that epoch as
//!   its previous broker epoch (Kafka's PreviousBrokerEpoch, KIP-966), and, because of
//!   the lock, the controller may replace that registration at once instead of waiting
//!   out its session. Kafka writes its epoch only at a clean shutdown; here every
//!   registration is recorded, so a crash restart proves itself too.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::checkpoint::write_atomic;
use super::error::StorageError;

pub const LOCK_FILE: &str = ".lock";
pub const REGISTRATION_FILE: &str = "broker-registration.properties";

/// An exclusive lock on one log dir, held until dropped (or the process ends).
#[derive(Debug)]
pub struct LogDirLock {
    dir: PathBuf,
    /// The open `.lock` file: closing it releases the `flock`.
    _file: File,
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
            _file: file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The registration a broker recorded in its log dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRegistration {
    pub node_id: i32,
    pub incarnation_id: [u8; 16],
    pub broker_epoch: i64,
}

impl RecordedRegistration {
    pub fn to_text(&self) -> String {
        format!(
            "#Written by troupe at each broker registration: a restart names broker.epoch as its previous broker epoch\nversion=1\nnode.id={}\nincarnation.id={}\nbroker.epoch={}\n",
            self.node_id,
            uuid::Uuid::from_bytes(self.incarnation_id),
            self.broker_epoch
        )
    }

    /// `None` for anything but a complete version-1 file: a restart then registers
    /// without a previous epoch, which only costs it the wait Kafka would impose.
    pub fn parse(text: &str) -> Option<RecordedRegistration> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::trim)
        };
        if field("version")? != "1" {
            return None;
        }
        Some(RecordedRegistration {
            node_id: field("node.id")?.parse().ok()?,
            incarnation_id: *uuid::Uuid::parse_str(field("incarnation.id")?)
                .ok()?
                .as_bytes(),
            broker_epoch: field("broker.epoch")?.parse().ok()?,
        })
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

    #[test]
    fn a_recorded_registration_round_trips_and_bad_files_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RecordedRegistration::read(dir.path(), 2), None);
        let r = RecordedRegistration {
            node_id: 2,
            incarnation_id: [7; 16],
            broker_epoch: 4711,
        };
        r.write(dir.path()).unwrap();
        assert_eq!(RecordedRegistration::read(dir.path(), 2), Some(r.clone()));
        assert_eq!(
            RecordedRegistration::read(dir.path(), 3),
            None,
            "another node's"
        );
        let text = r.to_text();
        // (file text, parses)
        let table = [
            (text.clone(), true),
            (text.replace("version=1", "version=2"), false),
            (text.replace("broker.epoch=4711", "broker.epoch=x"), false),
            (text.replace("broker.epoch=4711\n", ""), false),
            (text.replace("incarnation.id=", "incarnation.id=zz"), false),
            (text[..text.len() / 2].to_string(), false), // torn
            (String::new(), false),
        ];
        for (t, ok) in table {
            assert_eq!(RecordedRegistration::parse(&t).is_some(), ok, "{t:?}");
        }
    }
}
