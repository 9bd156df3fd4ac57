//! inshape's compiled decoder for flat numeric records (see inshape_jobs.native).
//!
//! Two calls, both on whole batches so Python does nothing per record:
//! `record_spans` walks an uncompressed Kafka record section (v2) and returns where each
//! value lies; `Decoder.parse` decodes those values' JSON straight into the float64 training
//! rows, with the reference parser's reject reasons. The GIL is released while it parses.

mod batch;
mod json;
mod schema;

use pyo3::buffer::{Element, PyBuffer};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use json::{Label, RecordDecoder, Verdict};
use schema::Schema;

/// A numpy array's memory, checked to be C-contiguous (and writable if asked).
struct Raw<T> {
    ptr: *mut T,
    len: usize,
}

// The arrays are the caller's and outlive the call; nothing else writes them meanwhile.
unsafe impl<T> Send for Raw<T> {}

impl<T: Element> Raw<T> {
    fn of(buffer: &PyBuffer<T>, writable: bool, what: &str) -> PyResult<Raw<T>> {
        if !buffer.is_c_contiguous() || (writable && buffer.readonly()) {
            return Err(PyValueError::new_err(format!(
                "{what} must be a C-contiguous{} array",
                if writable { ", writable" } else { "" }
            )));
        }
        Ok(Raw {
            ptr: buffer.buf_ptr() as *mut T,
            len: buffer.item_count(),
        })
    }

    unsafe fn slice(&self) -> &[T] {
        std::slice::from_raw_parts(self.ptr, self.len)
    }
}

/// What parse found besides the rows: (index, reason) of every record not kept (reason 255:
/// left to the reference parser), and the rows whose class label is a string.
type ParseOutcome = (usize, Vec<(i64, u8)>, Vec<(usize, String)>);

#[pyclass(frozen, module = "inshape_fastdecode")]
struct Decoder {
    schema: Schema,
}

#[pymethods]
impl Decoder {
    #[new]
    fn new(
        features: Vec<String>,
        label: String,
        max_bytes: usize,
        classification: bool,
    ) -> PyResult<Self> {
        if features.is_empty() {
            return Err(PyValueError::new_err("A schema needs at least one feature"));
        }
        let schema = Schema::new(features, label, max_bytes, classification)
            .ok_or_else(|| PyValueError::new_err("Field names must be distinct"))?;
        Ok(Decoder { schema })
    }

    /// Decodes a chunk's values: the first counts[0] records lie in buffers[0], the next
    /// counts[1] in buffers[1], and so on; record i is buffer[starts[i] : starts[i] +
    /// lengths[i]] (length -1: a null value). Good records fill features' and labels' rows
    /// from the first, in order; kept gets each one's i. Returns (rows filled, rejects,
    /// string labels). One call per chunk, so the chunk is split across cores.
    #[allow(clippy::too_many_arguments)]
    fn parse(
        &self,
        py: Python<'_>,
        buffers: Vec<Bound<'_, PyBytes>>,
        counts: Vec<usize>,
        starts: PyBuffer<i64>,
        lengths: PyBuffer<i64>,
        features: PyBuffer<f64>,
        labels: &Bound<'_, PyAny>,
        kept: PyBuffer<i64>,
    ) -> PyResult<ParseOutcome> {
        if buffers.len() != counts.len() {
            return Err(PyValueError::new_err("One count per buffer"));
        }
        let buffers: Vec<&[u8]> = buffers.iter().map(|b| b.as_bytes()).collect();
        let starts = Raw::of(&starts, false, "starts")?;
        let lengths = Raw::of(&lengths, false, "lengths")?;
        let feature_rows = Raw::of(&features, true, "features")?;
        let kept = Raw::of(&kept, true, "kept")?;
        let n = starts.len;
        let n_features = self.schema.n_features;
        if counts.iter().sum::<usize>() != n {
            return Err(PyValueError::new_err("The counts must add up to the records"));
        }
        if lengths.len != n || kept.len < n || feature_rows.len < n * n_features {
            return Err(PyValueError::new_err("Arrays too short for the records"));
        }
        let label_out = LabelOut::of(labels, self.schema.classification)?;
        if label_out.len() < n {
            return Err(PyValueError::new_err("Labels too short for the records"));
        }
        let out = Out {
            rows: feature_rows,
            labels: label_out,
            kept,
            n_features,
        };
        let segments = Segments { buffers, counts };
        let schema = &self.schema;
        py.detach(move || {
            let (starts, lengths) = unsafe { (starts.slice(), lengths.slice()) };
            let parts = parts(n);
            // Each part fills rows from its own first record's row (a part keeps at most as
            // many rows as it has records, so parts never overlap), then closes up the gaps.
            let results: Vec<Result<Part, String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = parts
                    .iter()
                    .map(|range| {
                        let range = range.clone();
                        let (out, segments) = (&out, &segments);
                        scope.spawn(move || {
                            decode_part(schema, segments, starts, lengths, out, range)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("decoder thread")).collect()
            });
            let mut filled = 0usize;
            let mut rejects = Vec::new();
            let mut str_labels = Vec::new();
            for (range, result) in parts.iter().zip(results) {
                let part = result.map_err(PyValueError::new_err)?;
                unsafe { out.move_rows(range.start, filled, part.filled) };
                str_labels.extend(part.str_labels.into_iter().map(|(row, s)| (filled + row, s)));
                rejects.extend(part.rejects);
                filled += part.filled;
            }
            Ok((filled, rejects, str_labels))
        })
    }
}

// Below this many records a second thread costs more than it saves.
const MIN_PART: usize = 4096;

/// The chunk's buffers and how many records each holds, in order.
struct Segments<'a> {
    buffers: Vec<&'a [u8]>,
    counts: Vec<usize>,
}

impl Segments<'_> {
    /// The buffer holding record `i`, and the first record after that buffer's.
    fn at(&self, i: usize) -> (usize, usize) {
        let mut end = 0;
        for (segment, count) in self.counts.iter().enumerate() {
            end += count;
            if i < end {
                return (segment, end);
            }
        }
        (self.counts.len(), usize::MAX)
    }
}

/// The record ranges decoded in parallel: one per core, up to four.
fn parts(n: usize) -> Vec<std::ops::Range<usize>> {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| {
        std::thread::available_parallelism().map_or(1, |c| c.get()).min(4)
    });
    let count = (n / MIN_PART).clamp(1, cores);
    let size = n.div_ceil(count);
    (0..count).map(|i| i * size..((i + 1) * size).min(n)).filter(|r| !r.is_empty()).collect()
}

/// One part's outcome; rows are counted from the part's first record's row.
struct Part {
    filled: usize,
    rejects: Vec<(i64, u8)>,
    str_labels: Vec<(usize, String)>,
}

/// Where good rows go: the caller's arrays.
struct Out {
    rows: Raw<f64>,
    labels: LabelOut,
    kept: Raw<i64>,
    n_features: usize,
}

// Threads write disjoint rows of the arrays (see parts()); the arrays outlive the call.
unsafe impl Sync for Out {}

impl Out {
    /// Writes row `row`: its features slice, then label and kept.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, row: usize) -> &mut [f64] {
        let n = self.n_features;
        std::slice::from_raw_parts_mut(self.rows.ptr.add(row * n), n)
    }

    unsafe fn finish_row(&self, row: usize, label: Label, index: i64) -> Option<String> {
        *self.kept.ptr.add(row) = index;
        match (label, &self.labels) {
            (Label::Int(v), LabelOut::Int(raw)) => *raw.ptr.add(row) = v,
            (Label::Float(v), LabelOut::Float(raw)) => *raw.ptr.add(row) = v,
            (Label::Str(text), LabelOut::Int(raw)) => {
                *raw.ptr.add(row) = 0;
                return Some(text);
            }
            _ => unreachable!("the schema decides the label's type"),
        }
        None
    }

    /// Moves `count` rows from `from` down to `to` (to <= from).
    unsafe fn move_rows(&self, from: usize, to: usize, count: usize) {
        if from == to || count == 0 {
            return;
        }
        let n = self.n_features;
        std::ptr::copy(self.rows.ptr.add(from * n), self.rows.ptr.add(to * n), count * n);
        std::ptr::copy(self.kept.ptr.add(from), self.kept.ptr.add(to), count);
        match &self.labels {
            LabelOut::Int(raw) => std::ptr::copy(raw.ptr.add(from), raw.ptr.add(to), count),
            LabelOut::Float(raw) => std::ptr::copy(raw.ptr.add(from), raw.ptr.add(to), count),
        }
    }
}

fn decode_part(
    schema: &Schema,
    segments: &Segments,
    starts: &[i64],
    lengths: &[i64],
    out: &Out,
    range: std::ops::Range<usize>,
) -> Result<Part, String> {
    let mut decoder = RecordDecoder::new(schema);
    let base = range.start;
    let mut part = Part {
        filled: 0,
        rejects: Vec::new(),
        str_labels: Vec::new(),
    };
    let (mut segment, mut segment_end) = segments.at(range.start);
    for i in range {
        if i >= segment_end {
            (segment, segment_end) = segments.at(i);
        }
        let buffer = segments.buffers[segment];
        let index = i as i64;
        let (start, length) = (starts[i], lengths[i]);
        if length < 0 {
            part.rejects.push((index, Verdict::NotJson as u8));
            continue;
        }
        let value = usize::try_from(start)
            .ok()
            .and_then(|s| buffer.get(s..s.checked_add(length as usize)?))
            .ok_or_else(|| format!("Record {index} lies outside its buffer"))?;
        let row = base + part.filled;
        match decoder.decode(value, unsafe { out.row(row) }) {
            Ok(label) => {
                if let Some(text) = unsafe { out.finish_row(row, label, index) } {
                    part.str_labels.push((part.filled, text));
                }
                part.filled += 1;
            }
            Err(verdict) => part.rejects.push((index, verdict as u8)),
        }
    }
    Ok(part)
}

/// The labels array: int64 (classes) or float64 (regression targets).
enum LabelOut {
    Int(Raw<i64>),
    Float(Raw<f64>),
}

unsafe impl Send for LabelOut {}

impl LabelOut {
    fn of(labels: &Bound<'_, PyAny>, classification: bool) -> PyResult<LabelOut> {
        Ok(if classification {
            LabelOut::Int(Raw::of(&PyBuffer::get(labels)?, true, "labels")?)
        } else {
            LabelOut::Float(Raw::of(&PyBuffer::get(labels)?, true, "labels")?)
        })
    }

    fn len(&self) -> usize {
        match self {
            LabelOut::Int(raw) => raw.len,
            LabelOut::Float(raw) => raw.len,
        }
    }

}

/// The records of one uncompressed record section at data[at:] (count records, offsets from
/// base_offset) whose offset is in [start, end): bytes of 3 x n int64s, the offsets, value
/// starts and value lengths (-1: null). Raises ValueError on a truncated section.
#[pyfunction]
fn record_spans<'py>(
    py: Python<'py>,
    data: &[u8],
    at: usize,
    count: i64,
    base_offset: i64,
    start: i64,
    end: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let spans = batch::record_spans(data, at, count, base_offset, start, end)
        .map_err(|at| PyValueError::new_err(format!("Truncated record at byte {at}")))?;
    let mut out = Vec::with_capacity(spans.offsets.len() * 24);
    for column in [&spans.offsets, &spans.starts, &spans.lengths] {
        for v in column {
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
    Ok(PyBytes::new(py, &out))
}

#[pymodule]
fn inshape_fastdecode(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Decoder>()?;
    m.add_function(wrap_pyfunction!(record_spans, m)?)?;
    Ok(())
}
