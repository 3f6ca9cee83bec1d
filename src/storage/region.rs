//! A byte range of a segment file, handed to the network layer for `sendfile(2)`.

use std::fs::File;
use std::sync::Arc;

/// Bytes `[position, position + len)` of a segment file.
///
/// The file handle is shared: a reader holding a region keeps the inode alive even
/// after the log deletes (unlinks) the segment, so the bytes stay valid to send.
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

impl FileRegion {
    /// Copy the region into memory (the fallback where `sendfile` cannot serve, and tests).
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}
