//! Record-batch compression codecs (attribute bits 0-2 of a v2 batch): none, gzip,
//! snappy, lz4, zstd. Appends never need them (batches are stored as produced, the
//! CRC covers the compressed bytes); the log cleaner does, to read the keys of
//! compressed batches and to write back what survives with the batch's own codec, and
//! so do compacted topics' key checks on produce.
//!
//! Formats, as Kafka's clients write them:
//! - gzip: a gzip stream (members concatenated are accepted);
//! - snappy: either raw snappy (librdkafka) or the xerial framing the Java client
//!   writes (`\x82SNAPPY\0`, two version words, then length-prefixed raw blocks); a
//!   batch is re-encoded in the framing it came in;
//! - lz4: an LZ4 frame (written with independent 64 KiB blocks, no checksums, as the
//!   Java client's writer does);
//! - zstd: one or more zstd frames (written at zstd's fastest level).
//!
//! All four are pure-Rust crates: no C toolchain or system library is needed.
//! Decompression is bounded by the caller's `limit`, so a small batch cannot expand
//! into unbounded memory. [`recompress_batches`] applies a topic's `compression.type`.

use std::io::{Read, Write};

use crate::storage::batch::{compute_crc, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::storage::compact_records::{record_section_within, MAX_DECOMPRESSED_BYTES};
use crate::storage::error::StorageError;

pub const NONE: u8 = 0;
pub const GZIP: u8 = 1;
pub const SNAPPY: u8 = 2;
pub const LZ4: u8 = 3;
pub const ZSTD: u8 = 4;

/// The first 8 bytes of a snappy stream in the xerial framing.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Uncompressed bytes per xerial block (the Java client's default block size).
const XERIAL_BLOCK: usize = 32 * 1024;

/// The codec's name, for messages.
pub fn name(codec: u8) -> &'static str {
    match codec {
        NONE => "none",
        GZIP => "gzip",
        SNAPPY => "snappy",
        LZ4 => "lz4",
        ZSTD => "zstd",
        _ => "unknown",
    }
}

fn corrupt(codec: u8, e: impl std::fmt::Display) -> StorageError {
    StorageError::CorruptMessage(format!("{} records: {e}", name(codec)))
}

/// Read all of `r` onto `out`, failing once `out` would hold more than `limit` bytes.
fn read_bounded(
    codec: u8,
    r: impl Read,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let room = limit.saturating_sub(out.len()) as u64;
    r.take(room + 1)
        .read_to_end(out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(corrupt(
            codec,
            format_args!("decompress to more than {limit} bytes"),
        ));
    }
    Ok(())
}

/// The length a raw snappy block claims to decompress to, refused when no snappy
/// stream could expand that much (a copy element of 3 bytes yields at most 64), so a
/// few forged bytes cannot make the decoder allocate and zero-fill megabytes.
fn snappy_len(block: &[u8]) -> Result<usize, StorageError> {
    let n = snap::raw::decompress_len(block).map_err(|e| corrupt(SNAPPY, e))?;
    if n > block.len().saturating_mul(32).saturating_add(64) {
        return Err(corrupt(
            SNAPPY,
            format_args!("block of {} bytes claims {n}", block.len()),
        ));
    }
    Ok(n)
}

/// The records section `data` of a batch compressed with `codec`, decompressed; at
/// most `limit` bytes.
pub fn decompress(codec: u8, data: &[u8], limit: usize) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(3).min(limit).min(1 << 20));
    match codec {
        NONE => {
            if data.len() > limit {
                return Err(corrupt(codec, "records larger than the limit"));
            }
            out.extend_from_slice(data);
        }
        GZIP => read_bounded(
            codec,
            flate2::read::MultiGzDecoder::new(data),
            limit,
            &mut out,
        )?,
        SNAPPY if data.starts_with(XERIAL_MAGIC) => {
            // magic (8), version (4), compatible version (4), then [len: i32][block]...
            let mut rest = data
                .get(16..)
                .ok_or_else(|| corrupt(codec, "short xerial header"))?;
            let mut dec = snap::raw::Decoder::new();
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_at_checked(4)
                    .ok_or_else(|| corrupt(codec, "cut block length"))?;
                let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
                let block = tail.get(..len).ok_or_else(|| corrupt(codec, "cut block"))?;
                let n = snappy_len(block)?;
                if out.len() + n > limit {
                    return Err(corrupt(
                        codec,
                        format_args!("decompress to more than {limit} bytes"),
                    ));
                }
                let at = out.len();
                out.resize(at + n, 0);
                dec.decompress(block, &mut out[at..])
                    .map_err(|e| corrupt(codec, e))?;
                rest = &tail[len..];
            }
        }
        SNAPPY => {
            let n = snappy_len(data)?;
            if n > limit {
                return Err(corrupt(
                    codec,
                    format_args!("decompress to more than {limit} bytes"),
                ));
            }
            out.resize(n, 0);
            snap::raw::Decoder::new()
                .decompress(data, &mut out)
                .map_err(|e| corrupt(codec, e))?;
        }
        LZ4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(data),
            limit,
            &mut out,
        )?,
        ZSTD => {
            let mut rest = data;
            while !rest.is_empty() {
                let dec = ruzstd::decoding::StreamingDecoder::new(&mut rest)
                    .map_err(|e| corrupt(codec, e))?;
                read_bounded(codec, dec, limit, &mut out)?;
            }
        }
        other => {
            return Err(StorageError::CorruptMessage(format!(
                "unknown compression codec {other}"
            )))
        }
    }
    Ok(out)
}

/// `data` compressed with `codec`. `like` is the compressed section this one replaces:
/// snappy keeps its framing (xerial or raw), so readers see what the producer wrote.
pub fn compress(codec: u8, data: &[u8], like: &[u8]) -> Result<Vec<u8>, StorageError> {
    let io = |e: std::io::Error| corrupt(codec, e);
    Ok(match codec {
        NONE => data.to_vec(),
        GZIP => {
            let mut w = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::default(),
            );
            w.write_all(data).map_err(io)?;
            w.finish().map_err(io)?
        }
        SNAPPY if like.starts_with(XERIAL_MAGIC) => {
            let mut out = Vec::with_capacity(data.len() / 2 + 64);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = enc.compress_vec(chunk).map_err(|e| corrupt(codec, e))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        SNAPPY => snap::raw::Encoder::new()
            .compress_vec(data)
            .map_err(|e| corrupt(codec, e))?,
        LZ4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut w = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(data.len() / 2 + 64),
            );
            w.write_all(data).map_err(io)?;
            w.finish().map_err(|e| corrupt(codec, e))?
        }
        ZSTD => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        other => {
            return Err(StorageError::CorruptMessage(format!(
                "unknown compression codec {other}"
            )))
        }
    })
}

/// Batches of `records` recompressed so that every data batch uses `target` (0 =
/// uncompressed), for a topic whose `compression.type` is not `producer`; `None` when
/// every batch already does (control batches are never touched). Headers keep their
/// fields (offsets, producer id, sequence, timestamps); length, attributes and CRC are
/// recomputed. The batches must have been validated (whole, CRCs checked). A converted
/// batch larger than `max_batch` fails with MESSAGE_TOO_LARGE and a result larger than
/// `max_total` with RECORD_LIST_TOO_LARGE, each as soon as it is seen, so a request
/// cannot expand into more memory than an accepted append could use. Snappy is
/// written in the xerial framing, as Kafka's own broker writes it.
pub fn recompress_batches(
    records: &[u8],
    headers: &[BatchHeader],
    target: u8,
    max_batch: usize,
    max_total: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    if headers
        .iter()
        .all(|h| h.is_control() || h.compression() == target)
    {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut pos = 0;
    for h in headers {
        let batch = &records[pos..pos + h.total_size()];
        pos += h.total_size();
        if h.is_control() || h.compression() == target {
            out.extend_from_slice(batch);
            continue;
        }
        // Uncompressed, the batch must fit max_batch: decompress no further than that.
        let limit = match target {
            NONE => max_batch.saturating_sub(HEADER_SIZE),
            _ => MAX_DECOMPRESSED_BYTES,
        };
        let section = record_section_within(batch, h, limit).map_err(|e| match target {
            NONE if h.compression() != NONE => StorageError::RecordTooLarge {
                size: max_batch.saturating_add(1),
                max: max_batch,
            },
            _ => e,
        })?;
        let start = out.len();
        out.extend_from_slice(&batch[..HEADER_SIZE]);
        match target {
            NONE => out.extend_from_slice(&section),
            SNAPPY => out.extend_from_slice(&compress(SNAPPY, &section, XERIAL_MAGIC)?),
            t => out.extend_from_slice(&compress(t, &section, &[])?),
        }
        let size = out.len() - start;
        if size > max_batch {
            return Err(StorageError::RecordTooLarge {
                size,
                max: max_batch,
            });
        }
        if out.len() as u64 > max_total {
            return Err(StorageError::RecordListTooLarge {
                size: out.len() as u64,
                max: max_total,
            });
        }
        let b = &mut out[start..];
        let attributes = (h.attributes & !0x07) | i16::from(target);
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        let length = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = compute_crc(b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        // Compressible and not: repeated text, then pseudo-random bytes; > 2 xerial blocks.
        let mut v = b"troupe record bytes ".repeat(4000);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        v
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        let xerial_like = [XERIAL_MAGIC.as_slice(), &[0, 0, 0, 1, 0, 0, 0, 1]].concat();
        for (codec, like) in [
            (NONE, &[][..]),
            (GZIP, &[][..]),
            (SNAPPY, &[][..]),
            (SNAPPY, &xerial_like[..]),
            (LZ4, &[][..]),
            (ZSTD, &[][..]),
        ] {
            let c = compress(codec, &data, like).unwrap();
            if codec != NONE {
                assert!(c.len() < data.len(), "{} did not compress", name(codec));
            }
            assert_eq!(
                c.starts_with(XERIAL_MAGIC),
                !like.is_empty(),
                "{} framing",
                name(codec)
            );
            assert_eq!(
                decompress(codec, &c, data.len()).unwrap(),
                data,
                "{}",
                name(codec)
            );
        }
    }

    #[test]
    fn decompression_is_bounded() {
        let data = vec![0u8; 1 << 20];
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let c = compress(codec, &data, &[]).unwrap();
            let err = decompress(codec, &c, (1 << 20) - 1).unwrap_err();
            assert!(
                err.to_string().contains("more than"),
                "{}: {err}",
                name(codec)
            );
            assert_eq!(decompress(codec, &c, 1 << 20).unwrap().len(), 1 << 20);
        }
    }

    #[test]
    fn garbage_and_unknown_codecs_are_corrupt_messages() {
        let data = sample();
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let mut c = compress(codec, &data, &[]).unwrap();
            let mid = c.len() / 2;
            c.truncate(mid);
            assert!(
                matches!(
                    decompress(codec, &c, 1 << 24),
                    Err(StorageError::CorruptMessage(_))
                ),
                "{} accepted a cut stream",
                name(codec)
            );
            assert!(
                decompress(codec, b"not compressed at all", 1 << 20).is_err(),
                "{}",
                name(codec)
            );
        }
        assert!(matches!(
            decompress(5, b"x", 10),
            Err(StorageError::CorruptMessage(_))
        ));
        assert!(compress(7, b"x", &[]).is_err());
    }

    #[test]
    fn forged_snappy_lengths_are_refused_before_allocating() {
        // A varint claiming 200 MiB in a 5-byte block.
        let forged = [0x80, 0x80, 0x80, 0x64, 0x00];
        let err = decompress(SNAPPY, &forged, MAX_DECOMPRESSED_BYTES).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever bytes a producer sends as a compressed section, decompression
        /// answers (an error or at most `limit` bytes) and never panics.
        #[test]
        fn decompress_never_panics_on_arbitrary_input(
            codec in 0u8..8,
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            xerial in proptest::prelude::any::<bool>(),
        ) {
            let data = if xerial && codec == SNAPPY {
                [&XERIAL_MAGIC[..], &data].concat()
            } else {
                data
            };
            if let Ok(out) = decompress(codec, &data, 1 << 16) {
                proptest::prop_assert!(out.len() <= 1 << 16);
            }
        }

        /// Valid streams with a byte flipped: never a panic either.
        #[test]
        fn decompress_never_panics_on_damaged_streams(
            codec in 1u8..5,
            at in proptest::prelude::any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut c = compress(codec, &sample()[..4096], &[]).unwrap();
            let i = at.index(c.len());
            c[i] ^= flip;
            let _ = decompress(codec, &c, 1 << 16);
        }
    }

    #[test]
    fn concatenated_gzip_members_and_zstd_frames_are_read_whole() {
        let (a, b) = (b"first half, ".repeat(100), b"second half".repeat(100));
        for codec in [GZIP, ZSTD] {
            let mut c = compress(codec, &a, &[]).unwrap();
            c.extend(compress(codec, &b, &[]).unwrap());
            assert_eq!(
                decompress(codec, &c, 1 << 20).unwrap(),
                [a.clone(), b.clone()].concat(),
                "{}",
                name(codec)
            );
        }
    }
}
