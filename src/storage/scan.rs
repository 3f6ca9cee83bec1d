//! Reading batches back from a segment file: single headers for lookups, and a
//! buffered sequential scan for recovery.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::storage::batch::{check_batch, BatchHeader, HEADER_SIZE, MIN_BATCH_LENGTH};

/// Read the batch header at `pos`, or `None` if fewer than a header's bytes remain.
pub fn read_header_at(file: &File, pos: u64, end: u64) -> std::io::Result<Option<BatchHeader>> {
    if end < pos + HEADER_SIZE as u64 {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut buf, pos)?;
    Ok(BatchHeader::parse(&buf))
}

/// Sequential reader for recovery: one large read serves many batches.
pub(crate) struct Scanner<'a> {
    pub(crate) file: &'a File,
    pub(crate) buf: Vec<u8>,
    pub(crate) buf_pos: u64,
}

impl Scanner<'_> {
    const CHUNK: usize = 1 << 20;

    /// Make `[pos, pos + n)` available in the buffer (fewer bytes at end of file).
    fn fill(&mut self, pos: u64, n: usize, file_len: u64) -> std::io::Result<&[u8]> {
        let have = pos >= self.buf_pos && pos + n as u64 <= self.buf_pos + self.buf.len() as u64;
        if !have {
            let want = n.max(Self::CHUNK).min((file_len - pos) as usize);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_pos = pos;
        }
        let from = (pos - self.buf_pos) as usize;
        let to = (from + n).min(self.buf.len());
        Ok(&self.buf[from..to])
    }

    /// The valid batch at `pos`, or `None` if it is torn, corrupt or out of order (the
    /// caller truncates there); an `Err` is a disk failure, which must not truncate.
    pub(crate) fn batch_at(
        &mut self,
        pos: u64,
        len: u64,
        (segment_base, expected): (i64, i64),
        verify_crc_from: i64,
    ) -> std::io::Result<Option<BatchHeader>> {
        let head = self.fill(pos, HEADER_SIZE, len)?;
        let Some(header) = BatchHeader::parse(head) else {
            return Ok(None);
        };
        let total = header.total_size();
        let plausible = header.magic == 2
            && header.batch_length >= MIN_BATCH_LENGTH
            && pos + total as u64 <= len
            && header.base_offset >= expected
            && header.last_offset_delta >= 0
            // The CRC does not cover the base offset: bound it by what a segment can index.
            && header.last_offset() - segment_base <= i32::MAX as i64;
        if !plausible {
            return Ok(None);
        }
        if header.last_offset() < verify_crc_from {
            return Ok(Some(header));
        }
        let bytes = self.fill(pos, total, len)?;
        Ok(check_batch(bytes, true).ok())
    }
}
