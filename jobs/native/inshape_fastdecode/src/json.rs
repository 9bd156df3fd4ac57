//! One record's JSON, decoded straight into a feature row, with the reference's verdict.
//!
//! The reference (inshape_jobs.records) accepts a record when msgspec's typed decode succeeds
//! and otherwise names the reason from json.loads. This scanner reproduces both on RFC 8259
//! JSON in valid UTF-8; where Python's json is more lenient than RFC JSON (NaN and Infinity
//! tokens, BOMs and UTF-16/32, lone surrogates) or where Python itself may behave unlike a
//! parser (deep nesting), the record is deferred: the caller runs the reference on it.

use crate::schema::Schema;

/// Why a record is out; the discriminants are the indices of records.Reject's members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Oversized = 0,
    NotJson = 1,
    NotObject = 2,
    MissingFeature = 3,
    NonNumericFeature = 4,
    NonFinite = 5,
    MissingLabel = 6,
    BadLabel = 7,
    /// Not decided here: the reference parser decides.
    Defer = 255,
}

/// A good record's label.
pub enum Label {
    Int(i64),
    Float(f64),
    Str(String),
}

// Nesting beyond this goes to the reference (json.loads raises RecursionError far deeper).
const MAX_DEPTH: u32 = 64;

/// What the last occurrence of a schema field held, as json.loads would see it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Absent,
    Null,
    Bool,
    Str,
    Compound, // array or object
    Number,
}

#[derive(Clone, Copy)]
struct Slot {
    kind: Kind,
    finite: bool, // numbers: the correctly rounded double is finite
    int_literal: bool,
    value: f64,
    int_value: Option<i64>, // integer literals that fit an int64
    str_at: (usize, usize), // label strings: the raw span between the quotes
    str_escaped: bool,
    str_empty: bool,
}

const EMPTY_SLOT: Slot = Slot {
    kind: Kind::Absent,
    finite: false,
    int_literal: false,
    value: 0.0,
    int_value: None,
    str_at: (0, 0),
    str_escaped: false,
    str_empty: true,
};

/// Scanner failure: invalid JSON (the reference says not_json) or a case it must decide.
enum Stop {
    Invalid,
    Defer,
}

type Scan<T> = Result<T, Stop>;

pub struct RecordDecoder<'s> {
    schema: &'s Schema,
    slots: Vec<Slot>,
    strict_failed: bool, // an occurrence of a field failed msgspec's typed check
    present: usize,      // fields seen at least once
    scratch: Vec<u8>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    non_ascii: bool, // a string held bytes >= 0x80: checked as UTF-8 at the end
}

impl<'s> RecordDecoder<'s> {
    pub fn new(schema: &'s Schema) -> Self {
        RecordDecoder {
            schema,
            slots: vec![EMPTY_SLOT; schema.fields()],
            strict_failed: false,
            present: 0,
            scratch: Vec::new(),
        }
    }

    /// Decodes one value: Ok(label) with the features written to `row`, or the verdict.
    pub fn decode(&mut self, value: &[u8], row: &mut [f64]) -> Result<Label, Verdict> {
        if value.len() > self.schema.max_bytes {
            return Err(Verdict::Oversized);
        }
        // json.loads guesses UTF-16/32 from zero bytes up front and strips a UTF-8 BOM.
        if value.starts_with(b"\xEF\xBB\xBF") || value.iter().take(4).any(|&b| b == 0) {
            return Err(Verdict::Defer);
        }
        // Only the kind says whether a slot is filled; the rest is written with it.
        for slot in self.slots.iter_mut() {
            slot.kind = Kind::Absent;
        }
        self.present = 0;
        self.strict_failed = false;
        let mut cur = Cursor {
            data: value,
            pos: 0,
            non_ascii: false,
        };
        let scanned = self.document(&mut cur, row);
        // Invalid UTF-8 anywhere: msgspec and json.loads part ways (msgspec skips unknown
        // strings unchecked; json.loads passes surrogates through), so the reference decides.
        if cur.non_ascii && std::str::from_utf8(value).is_err() {
            return Err(Verdict::Defer);
        }
        match scanned {
            Err(Stop::Invalid) => Err(Verdict::NotJson),
            Err(Stop::Defer) => Err(Verdict::Defer),
            Ok(false) => Err(Verdict::NotObject),
            Ok(true) => self.verdict(value),
        }
    }

    /// Ok(true): a valid object; Ok(false): valid JSON that is not an object.
    fn document(&mut self, cur: &mut Cursor, row: &mut [f64]) -> Scan<bool> {
        cur.skip_ws();
        let is_object = cur.peek() == Some(b'{');
        if is_object {
            self.object(cur, row)?;
        } else {
            cur.skip_value(0)?;
        }
        cur.skip_ws();
        if cur.pos != cur.data.len() {
            return Err(cur.invalid_here());
        }
        Ok(is_object)
    }

    fn object(&mut self, cur: &mut Cursor, row: &mut [f64]) -> Scan<()> {
        let schema = self.schema;
        cur.pos += 1; // '{'
        cur.skip_ws();
        if cur.peek() == Some(b'}') {
            cur.pos += 1;
            return Ok(());
        }
        let mut hint = 0usize; // records usually list the fields in the schema's order
        loop {
            if cur.peek() != Some(b'"') {
                return Err(cur.invalid_here());
            }
            let field = if let Some(len) = schema.key_at(&cur.data[cur.pos + 1..], hint) {
                cur.pos += 1 + len;
                Some(hint)
            } else {
                self.key(cur)?
            };
            cur.skip_ws();
            if cur.peek() != Some(b':') {
                return Err(cur.invalid_here());
            }
            cur.pos += 1;
            cur.skip_ws();
            match field {
                Some(index) if index < schema.n_features && cur.at_number() => {
                    // The common case: a feature and its number, straight into the row.
                    hint = index + 1;
                    let (value, _) = cur.double()?;
                    row[index] = value;
                    let slot = &mut self.slots[index];
                    self.present += usize::from(slot.kind == Kind::Absent);
                    slot.kind = Kind::Number;
                    slot.finite = value.is_finite();
                    self.strict_failed |= !slot.finite;
                }
                Some(index) => {
                    hint = index + 1;
                    let slot = value_slot(cur)?;
                    if index < schema.n_features && slot.kind == Kind::Number {
                        row[index] = slot.value;
                    }
                    self.occurrence(index, slot);
                }
                None => cur.skip_value(1)?,
            }
            cur.skip_ws();
            match cur.peek() {
                Some(b',') => {
                    cur.pos += 1;
                    cur.skip_ws();
                }
                Some(b'}') => {
                    cur.pos += 1;
                    return Ok(());
                }
                _ => return Err(cur.invalid_here()),
            }
        }
    }

    /// The field a key at pos (on its opening quote) names, if any.
    fn key(&mut self, cur: &mut Cursor) -> Scan<Option<usize>> {
        let schema = self.schema;
        let (start, end, escaped) = cur.string()?;
        Ok(if escaped {
            self.scratch.clear();
            unescape(&cur.data[start..end], &mut self.scratch)?;
            schema.lookup(&self.scratch)
        } else {
            schema.lookup(&cur.data[start..end])
        })
    }

    /// Keeps the last occurrence (json.loads) and whether any occurrence failed msgspec's
    /// typed check (it checks each occurrence as it reads it).
    fn occurrence(&mut self, index: usize, slot: Slot) {
        let strict_ok = if index < self.schema.n_features || !self.schema.classification {
            slot.kind == Kind::Number && slot.finite
        } else {
            match slot.kind {
                Kind::Number => slot.int_value.is_some(),
                Kind::Str => !slot.str_empty,
                _ => false,
            }
        };
        self.present += usize::from(self.slots[index].kind == Kind::Absent);
        self.slots[index] = slot;
        self.strict_failed |= !strict_ok;
    }

    fn verdict(&mut self, value: &[u8]) -> Result<Label, Verdict> {
        let schema = self.schema;
        let n = schema.n_features;
        let missing = self.present < self.slots.len();
        if !self.strict_failed && !missing {
            return self.label(value);
        }
        // classify_bad_record: features in schema order, then the label.
        for slot in &self.slots[..n] {
            match slot.kind {
                Kind::Absent => return Err(Verdict::MissingFeature),
                Kind::Number if !slot.finite => return Err(Verdict::NonFinite),
                Kind::Number => {}
                _ => return Err(Verdict::NonNumericFeature),
            }
        }
        let label = &self.slots[n];
        let label_ok = match label.kind {
            Kind::Absent | Kind::Null => return Err(Verdict::MissingLabel),
            Kind::Number if schema.classification => label.int_literal && label.int_value.is_some(),
            Kind::Number => label.finite,
            Kind::Str => schema.classification && !label.str_empty,
            _ => false,
        };
        if !label_ok {
            return Err(Verdict::BadLabel);
        }
        // Good to json.loads, refused by msgspec for an earlier duplicate: the reference's
        // catch-all reason.
        Err(Verdict::NonFinite)
    }

    fn label(&mut self, value: &[u8]) -> Result<Label, Verdict> {
        let slot = self.slots[self.schema.n_features];
        if !self.schema.classification {
            return Ok(Label::Float(slot.value));
        }
        if slot.kind == Kind::Number {
            return slot.int_value.map(Label::Int).ok_or(Verdict::Defer);
        }
        let raw = &value[slot.str_at.0..slot.str_at.1];
        let text = if slot.str_escaped {
            self.scratch.clear();
            if unescape(raw, &mut self.scratch).is_err() {
                return Err(Verdict::Defer);
            }
            String::from_utf8(self.scratch.clone())
        } else {
            String::from_utf8(raw.to_vec())
        };
        text.map(Label::Str).map_err(|_| Verdict::Defer)
    }
}

/// A schema field's value: its kind, and for numbers the double msgspec would make.
fn value_slot(cur: &mut Cursor) -> Scan<Slot> {
    let mut slot = EMPTY_SLOT;
    match cur.peek() {
        Some(b'"') => {
            let (start, end, escaped) = cur.string()?;
            slot.kind = Kind::Str;
            slot.str_at = (start, end);
            slot.str_escaped = escaped;
            slot.str_empty = start == end;
        }
        Some(b'{') | Some(b'[') => {
            cur.skip_value(1)?;
            slot.kind = Kind::Compound;
        }
        Some(b'-') | Some(b'0'..=b'9') => {
            let start = cur.pos;
            let (value, is_int) = cur.double()?;
            slot.kind = Kind::Number;
            slot.int_literal = is_int;
            slot.value = value;
            slot.finite = value.is_finite();
            if is_int {
                slot.int_value = parse_i64(&cur.data[start..cur.pos]);
            }
        }
        Some(b't') | Some(b'f') => {
            cur.literal()?;
            slot.kind = Kind::Bool;
        }
        Some(b'n') => {
            cur.literal()?;
            slot.kind = Kind::Null;
        }
        _ => return Err(cur.invalid_here()),
    }
    Ok(slot)
}

fn parse_i64(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse::<i64>().ok()
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Invalid JSON at pos, unless json.loads would read a NaN or Infinity token there.
    fn invalid_here(&self) -> Stop {
        let rest = &self.data[self.pos.min(self.data.len())..];
        if rest.starts_with(b"NaN") || rest.starts_with(b"Infinity") || rest.starts_with(b"-Infinity")
        {
            Stop::Defer
        } else {
            Stop::Invalid
        }
    }

    /// A string at pos (on its opening quote): the span between the quotes, and whether it
    /// holds escapes. Control characters are invalid (as in both references).
    #[inline]
    fn string(&mut self) -> Scan<(usize, usize, bool)> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        let data = self.data;
        loop {
            // Plain characters in a tight loop; the rest one by one below.
            while data.get(self.pos).is_some_and(|&b| PLAIN[b as usize]) {
                self.pos += 1;
            }
            let Some(&b) = data.get(self.pos) else {
                return Err(Stop::Invalid);
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok((start, self.pos - 1, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0..=0x1F => return Err(Stop::Invalid),
                0x80.. => {
                    self.non_ascii = true;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// One escape at pos (on the backslash). A lone surrogate is deferred: json.loads takes
    /// it, msgspec does not.
    fn escape(&mut self) -> Scan<()> {
        let data = self.data;
        match data.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = hex4(data, self.pos + 2)?;
                self.pos += 6;
                if (0xDC00..0xE000).contains(&unit) {
                    return Err(Stop::Defer);
                }
                if (0xD800..0xDC00).contains(&unit) {
                    let low = if data.get(self.pos) == Some(&b'\\')
                        && data.get(self.pos + 1) == Some(&b'u')
                    {
                        hex4(data, self.pos + 2)?
                    } else {
                        return Err(Stop::Defer);
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(Stop::Defer);
                    }
                    self.pos += 6;
                }
                Ok(())
            }
            _ => Err(Stop::Invalid),
        }
    }

    #[inline]
    fn at_number(&self) -> bool {
        matches!(self.peek(), Some(b'-' | b'0'..=b'9'))
    }

    /// A number at pos as the double msgspec makes of it, and whether it is an integer
    /// literal. Correctly rounded, as msgspec and Python's float() are; an integer literal is
    /// an int to both, so its zero has no sign.
    #[inline]
    fn double(&mut self) -> Scan<(f64, bool)> {
        let (start, is_int) = self.number()?;
        let text = &self.data[start..self.pos];
        let parsed: f64 = match exact_decimal(text) {
            Some(value) => value,
            None => fast_float2::parse(text).map_err(|_| Stop::Invalid)?,
        };
        Ok((if is_int && parsed == 0.0 { 0.0 } else { parsed }, is_int))
    }

    /// A number per RFC 8259 at pos: its start and whether it is an integer literal.
    #[inline(always)]
    fn number(&mut self) -> Scan<(usize, bool)> {
        let data = self.data;
        let start = self.pos;
        if data.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match data.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.invalid_here_or(start)),
        }
        let mut is_int = true;
        if data.get(self.pos) == Some(&b'.') {
            is_int = false;
            self.pos += 1;
            if !matches!(data.get(self.pos), Some(b'0'..=b'9')) {
                return Err(Stop::Invalid);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = data.get(self.pos) {
            is_int = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = data.get(self.pos) {
                self.pos += 1;
            }
            if !matches!(data.get(self.pos), Some(b'0'..=b'9')) {
                return Err(Stop::Invalid);
            }
            self.digits();
        }
        Ok((start, is_int))
    }

    fn invalid_here_or(&self, start: usize) -> Stop {
        let at = Cursor {
            data: self.data,
            pos: start,
            non_ascii: false,
        };
        at.invalid_here()
    }

    #[inline]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.data.get(self.pos) {
            self.pos += 1;
        }
    }

    fn literal(&mut self) -> Scan<()> {
        let rest = &self.data[self.pos..];
        for word in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Ok(());
            }
        }
        Err(Stop::Invalid)
    }

    /// Any value, checked and skipped; depth counts the containers around it.
    fn skip_value(&mut self, depth: u32) -> Scan<()> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            Some(b't' | b'f' | b'n') => self.literal(),
            Some(open @ (b'{' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return Err(Stop::Defer);
                }
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        if self.peek() != Some(b'"') {
                            return Err(self.invalid_here());
                        }
                        self.string()?;
                        self.skip_ws();
                        if self.peek() != Some(b':') {
                            return Err(self.invalid_here());
                        }
                        self.pos += 1;
                        self.skip_ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => {
                            self.pos += 1;
                            self.skip_ws();
                        }
                        Some(c) if c == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.invalid_here()),
                    }
                }
            }
            _ => Err(self.invalid_here()),
        }
    }
}

/// String bytes that need no attention: not a quote, backslash, control or non-ASCII byte.
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x80 {
        table[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    table
};

fn hex4(data: &[u8], at: usize) -> Scan<u32> {
    let digits = data.get(at..at + 4).ok_or(Stop::Invalid)?;
    let mut unit = 0u32;
    for &d in digits {
        let v = (d as char).to_digit(16).ok_or(Stop::Invalid)?;
        unit = unit * 16 + v;
    }
    Ok(unit)
}

/// The UTF-8 bytes of a string's escaped content (already checked by Cursor::string).
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Scan<()> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        let simple = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0C,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => 0,
        };
        if c != b'u' {
            out.push(simple);
            continue;
        }
        let mut code = hex4(raw, i)?;
        i += 4;
        if (0xD800..0xDC00).contains(&code) {
            let low = hex4(raw, i + 2)?;
            i += 6;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        let ch = char::from_u32(code).ok_or(Stop::Defer)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Ok(())
}

/// Powers of ten a double holds exactly (10^22 is the last).
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path, for a number `number()` has already checked: when its digits make an
/// integer of at most 2^53 and its power of ten is at most 22, both are exact doubles, so one
/// IEEE multiply or divide rounds the value correctly. Records' numbers are mostly such short
/// decimals (`13.0`); anything else is None and goes to the full parser.
#[inline(always)]
fn exact_decimal(text: &[u8]) -> Option<f64> {
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut exponent: i32 = 0;
    let mut in_fraction = false;
    let mut at = 0;
    while let Some(&byte) = rest.get(at) {
        match byte {
            b'0'..=b'9' => {
                if digits == 19 {
                    return None; // the next digit could overflow a u64
                }
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                digits += 1;
                exponent -= i32::from(in_fraction);
            }
            b'.' => in_fraction = true,
            _ => break,
        }
        at += 1;
    }
    if let Some(b'e' | b'E') = rest.get(at) {
        let (sign, power) = match rest.get(at + 1) {
            Some(b'-') => (-1, &rest[at + 2..]),
            Some(b'+') => (1, &rest[at + 2..]),
            _ => (1, &rest[at + 1..]),
        };
        if power.len() > 3 {
            return None;
        }
        let written = power.iter().fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
        exponent += sign * written;
    }
    if mantissa > 1u64 << 53 || exponent.unsigned_abs() > 22 {
        return None;
    }
    let magnitude = mantissa as f64; // exact: at most 2^53
    let power = EXACT_POWERS_OF_TEN[exponent.unsigned_abs() as usize];
    let value = if exponent >= 0 { magnitude * power } else { magnitude / power };
    Some(if negative { -value } else { value })
}
