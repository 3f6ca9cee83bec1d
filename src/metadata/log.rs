//! The metadata log on disk: `<dir>/metadata.log`, a sequence of frames
//! `[len: u32 BE][crc32c(payload): u32 BE][payload: rmp-serde MetadataEntry]`.
//!
//! Metadata changes are rare and must survive a crash once acknowledged, so every append
//! is fsynced. On open, a torn or corrupt tail (a crash mid-append) is cut off.

use super::records::MetadataEntry;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What can go wrong with the metadata log.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    /// Reading or writing the file failed.
    #[error("metadata log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A record could not be serialized (a bug, not bad input).
    #[error("metadata record encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

pub struct MetadataLog {
    path: PathBuf,
    file: File,
    next_offset: i64,
}

const FRAME_HEADER: usize = 8;

impl MetadataLog {
    /// Open (or create) the log in `dir`, returning it with every intact entry.
    pub fn open(dir: &Path) -> Result<(MetadataLog, Vec<MetadataEntry>), MetadataLogError> {
        let path = dir.join("metadata.log");
        let io = |source| MetadataLogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;
        let mut entries = Vec::new();
        let mut pos = 0usize;
        while pos + FRAME_HEADER <= data.len() {
            let len = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
            let end = pos + FRAME_HEADER + len;
            if end > data.len() {
                break;
            }
            let payload = &data[pos + FRAME_HEADER..end];
            if crc32c::crc32c(payload) != crc {
                break;
            }
            match super::records::decode_entry(payload) {
                Ok(e) => entries.push(e),
                Err(_) => break,
            }
            pos = end;
        }
        if pos < data.len() {
            tracing::warn!(
                path = %path.display(),
                bytes = data.len() - pos,
                "metadata log has a torn or corrupt tail, truncating"
            );
            file.set_len(pos as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let next_offset = entries.last().map(|e| e.offset + 1).unwrap_or(0);
        Ok((
            MetadataLog {
                path,
                file,
                next_offset,
            },
            entries,
        ))
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Append records (one controller decision) atomically enough for recovery: they are
    /// written in one `write` and fsynced before this returns.
    pub fn append(
        &mut self,
        epoch: i32,
        records: Vec<super::MetadataRecord>,
    ) -> Result<Vec<MetadataEntry>, MetadataLogError> {
        let mut buf = Vec::new();
        let mut out = Vec::with_capacity(records.len());
        for (i, record) in records.into_iter().enumerate() {
            let entry = MetadataEntry {
                offset: self.next_offset + i as i64,
                epoch,
                record,
            };
            let payload = super::records::encode_entry(&entry)?;
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
            out.push(entry);
        }
        let io = |source| MetadataLogError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.next_offset += out.len() as i64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::MetadataRecord;
    use super::*;

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, entries) = MetadataLog::open(dir.path()).unwrap();
            assert!(entries.is_empty());
            log.append(
                1,
                vec![
                    MetadataRecord::RemoveTopic { topic_id: [1; 16] },
                    MetadataRecord::ProducerIds {
                        node_id: 1,
                        first: 0,
                        size: 1000,
                    },
                ],
            )
            .unwrap();
        }
        // A crash mid-append leaves half a frame behind.
        let path = dir.path().join("metadata.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2, 3]).unwrap();
        drop(f);
        let (mut log, entries) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].offset, 1);
        assert_eq!(log.next_offset(), 2);
        log.append(1, vec![MetadataRecord::RemoveTopic { topic_id: [2; 16] }])
            .unwrap();
        let (_, entries) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].offset, 2);
    }
}
