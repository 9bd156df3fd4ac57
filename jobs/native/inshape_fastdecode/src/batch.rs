//! The records section of a Kafka record batch (message format v2), uncompressed.
//!
//! A record is: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint, key, valueLength varint, value, headers (skipped: the length says where
//! the next record starts). Varints are zigzag encoded; a length of -1 means null.

pub struct Spans {
    pub offsets: Vec<i64>,
    pub starts: Vec<i64>,
    pub lengths: Vec<i64>,
}

/// Err(position) where the section is truncated or malformed.
pub fn record_spans(
    data: &[u8],
    at: usize,
    count: i64,
    base_offset: i64,
    start: i64,
    end: i64,
) -> Result<Spans, usize> {
    let capacity = count.clamp(0, 1 << 20) as usize;
    let mut spans = Spans {
        offsets: Vec::with_capacity(capacity),
        starts: Vec::with_capacity(capacity),
        lengths: Vec::with_capacity(capacity),
    };
    let mut pos = at;
    for _ in 0..count.max(0) {
        let length = varint(data, &mut pos)?;
        if length < 0 {
            return Err(pos);
        }
        let record_end = pos.checked_add(length as usize).ok_or(pos)?;
        if record_end > data.len() {
            return Err(pos);
        }
        let record = &data[..record_end];
        pos += 1; // attributes
        varint(record, &mut pos)?; // timestampDelta
        let offset = base_offset + varint(record, &mut pos)?;
        if offset < start {
            pos = record_end;
            continue;
        }
        if offset >= end {
            break;
        }
        let key_length = varint(record, &mut pos)?;
        if key_length > 0 {
            pos += key_length as usize;
        }
        let value_length = varint(record, &mut pos)?;
        if value_length > 0 && pos + value_length as usize > record_end {
            return Err(pos);
        }
        spans.offsets.push(offset);
        spans.starts.push(pos as i64);
        spans.lengths.push(value_length.max(-1));
        pos = record_end;
    }
    Ok(spans)
}

/// A zigzag varint (up to 64 bits) at *pos, which moves past it.
#[inline]
fn varint(data: &[u8], pos: &mut usize) -> Result<i64, usize> {
    let mut z: u64 = 0;
    let mut shift = 0;
    loop {
        let Some(&b) = data.get(*pos) else {
            return Err(*pos);
        };
        *pos += 1;
        z |= u64::from(b & 0x7F) << shift;
        if b < 0x80 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
        shift += 7;
        if shift > 63 {
            return Err(*pos);
        }
    }
}
