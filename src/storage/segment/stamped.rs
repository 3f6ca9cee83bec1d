//! Writing a leader's batches without copying them: the only bytes a leader changes
//! (base offset and partition leader epoch, outside the CRC) sit in the first 16 bytes
//! of each batch, so the write is a small stamped prefix per batch plus the producer's
//! untouched remainder, gathered by one `pwritev(2)`.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

use crate::storage::batch::BatchHeader;

/// Bytes of a batch that a leader stamps: baseOffset (8), batchLength (4, unchanged)
/// and partitionLeaderEpoch (4). The magic byte and CRC follow.
pub(crate) const STAMPED_PREFIX: usize = 16;

/// Linux's limit on iovecs per call (`UIO_MAXIOV`); longer lists go in several calls.
const MAX_IOVECS: usize = 1024;

/// The first [`STAMPED_PREFIX`] bytes of the batch `h` describes, with its (assigned)
/// base offset and leader epoch.
pub(crate) fn stamped_prefix(h: &BatchHeader) -> [u8; STAMPED_PREFIX] {
    let mut p = [0u8; STAMPED_PREFIX];
    p[..8].copy_from_slice(&h.base_offset.to_be_bytes());
    p[8..12].copy_from_slice(&h.batch_length.to_be_bytes());
    p[12..].copy_from_slice(&h.partition_leader_epoch.to_be_bytes());
    p
}

/// Write every slice, in order, starting at byte `pos` of `file`. Positional like
/// `write_all_at`: the file cursor is neither used nor moved (fetches read the same file
/// through `pread`/`sendfile` with explicit offsets). Short writes and EINTR are retried.
pub(crate) fn write_all_vectored_at(
    file: &File,
    mut bufs: &mut [IoSlice<'_>],
    mut pos: u64,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let count = bufs.len().min(MAX_IOVECS);
        let offset = libc::off_t::try_from(pos)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
        // SAFETY: `IoSlice` is documented to be ABI-compatible with `iovec` on Unix, the
        // `count` slices are valid borrowed memory for the whole call, and the fd belongs
        // to `file`, which outlives it.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                count as libc::c_int,
                offset,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        pos += n as u64;
        IoSlice::advance_slices(&mut bufs, n as usize);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::assign_offset_and_epoch;
    use crate::storage::records::build_batch;
    use std::os::unix::fs::FileExt;

    #[test]
    fn prefix_equals_in_place_assignment() {
        let batch = build_batch(0, 5, &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))]);
        let mut header = BatchHeader::parse(&batch).unwrap();
        header.base_offset = 0x0102_0304_0506_0708;
        header.partition_leader_epoch = 77;
        let mut in_place = batch.to_vec();
        assign_offset_and_epoch(&mut in_place, header.base_offset, 77);
        assert_eq!(stamped_prefix(&header)[..], in_place[..STAMPED_PREFIX]);
    }

    #[test]
    fn writes_more_slices_than_one_call_takes_at_an_offset() {
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(b"head", 0).unwrap();
        // Sizes 0..=6 repeating, so some slices are empty and the count passes
        // MAX_IOVECS twice.
        let chunks: Vec<Vec<u8>> = (0..2 * MAX_IOVECS + 7)
            .map(|i| vec![(i % 251) as u8; i % 7])
            .collect();
        let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        write_all_vectored_at(&file, &mut slices, 4).unwrap();
        let expected: Vec<u8> = b"head".iter().copied().chain(chunks.concat()).collect();
        let mut got = vec![0u8; expected.len() + 1];
        let n = file.read_at(&mut got, 0).unwrap();
        assert_eq!(&got[..n], &expected[..]);
    }
}
