//! Kafka framing: every request and response is a big-endian `i32` size followed by
//! that many bytes.
//!
//! [`split_frame`] cuts complete request frames off the front of a connection's read
//! buffer without copying: the returned `Bytes` shares the buffer's allocation, so a
//! produce request's record batches reach the log as slices of what the socket read.

use super::error::FrameError;
use bytes::{Buf, Bytes, BytesMut};

/// Bytes of the size prefix in front of every frame.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Takes the next complete frame body (size prefix removed) off the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete, leaving `buf` untouched so the
/// caller reads more and calls again. The size is checked as soon as the prefix is
/// there, before its body arrives, so an oversized or negative announcement closes
/// the connection without buffering anything.
pub fn split_frame(
    buf: &mut BytesMut,
    max_request_bytes: usize,
) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.get(..SIZE_PREFIX_LEN) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if size < 0 {
        return Err(FrameError::Negative { size });
    }
    let size = size as usize;
    if size > max_request_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_request_bytes,
        });
    }
    if buf.len() < SIZE_PREFIX_LEN + size {
        return Ok(None);
    }
    buf.advance(SIZE_PREFIX_LEN);
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(bodies: &[&[u8]]) -> BytesMut {
        let mut buf = BytesMut::new();
        for body in bodies {
            buf.extend_from_slice(&(body.len() as i32).to_be_bytes());
            buf.extend_from_slice(body);
        }
        buf
    }

    #[test]
    fn waits_for_the_prefix_and_the_body() {
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[5, 1, 2]);
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        assert_eq!(buf.len(), 6, "an incomplete frame is left in place");
        buf.extend_from_slice(&[3, 4, 5, 0xAA]);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap().unwrap(),
            Bytes::from_static(&[1, 2, 3, 4, 5])
        );
        assert_eq!(&buf[..], &[0xAA]);
    }

    #[test]
    fn splits_pipelined_frames_in_order() {
        let mut buf = framed(&[b"one", b"", b"three"]);
        assert_eq!(split_frame(&mut buf, 10).unwrap().unwrap(), &b"one"[..]);
        assert_eq!(split_frame(&mut buf, 10).unwrap().unwrap(), &b""[..]);
        assert_eq!(split_frame(&mut buf, 10).unwrap().unwrap(), &b"three"[..]);
        assert_eq!(split_frame(&mut buf, 10), Ok(None));
    }

    #[test]
    fn rejects_oversized_frames_before_their_body_arrives() {
        let mut buf = BytesMut::from(&1001i32.to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 1000),
            Err(FrameError::TooLarge {
                size: 1001,
                max: 1000
            })
        );
        let mut exact = framed(&[&[7u8; 1000]]);
        assert_eq!(split_frame(&mut exact, 1000).unwrap().unwrap().len(), 1000);
    }

    #[test]
    fn rejects_negative_sizes() {
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 1000),
            Err(FrameError::Negative { size: -1 })
        );
    }

    #[test]
    fn the_frame_shares_the_read_buffer() {
        let mut buf = framed(&[b"zero-copy"]);
        let start = buf.as_ptr() as usize;
        let frame = split_frame(&mut buf, 100).unwrap().unwrap();
        assert_eq!(frame.as_ptr() as usize, start + SIZE_PREFIX_LEN);
    }

    proptest! {
        /// However the byte stream is cut into reads, the same frames come out.
        #[test]
        fn any_read_boundaries_give_the_same_frames(
            bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..8),
            cuts in prop::collection::vec(1usize..40, 0..20),
        ) {
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let stream = framed(&refs);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut cuts = cuts.into_iter();
            while pos < stream.len() {
                let step = cuts.next().unwrap_or(usize::MAX).min(stream.len() - pos);
                buf.extend_from_slice(&stream[pos..pos + step]);
                pos += step;
                while let Some(frame) = split_frame(&mut buf, 64).unwrap() {
                    out.push(frame.to_vec());
                }
            }
            prop_assert_eq!(out, bodies);
            prop_assert!(buf.is_empty());
        }
    }
}
