//! The fields a record must have: features (in order, into the row) and the label.

use std::collections::HashMap;

pub struct Schema {
    names: Vec<Vec<u8>>, // features, then the label
    // Each name followed by its closing quote, for names a JSON string holds unescaped
    // (no quote, backslash or control character): the key can be matched in place.
    quoted: Vec<Option<Vec<u8>>>,
    // The same, when at most 8 bytes long: (bytes as a little-endian word, mask), one compare.
    words: Vec<Option<(u64, u64)>>,
    index: HashMap<Vec<u8>, usize>,
    pub n_features: usize,
    pub max_bytes: usize,
    pub classification: bool,
}

impl Schema {
    /// None if two fields share a name (the caller keeps the reference parser then).
    pub fn new(
        features: Vec<String>,
        label: String,
        max_bytes: usize,
        classification: bool,
    ) -> Option<Schema> {
        let n_features = features.len();
        let names: Vec<Vec<u8>> = features
            .into_iter()
            .chain(std::iter::once(label))
            .map(String::into_bytes)
            .collect();
        let index: HashMap<Vec<u8>, usize> =
            names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        if index.len() != names.len() {
            return None;
        }
        let quoted: Vec<Option<Vec<u8>>> = names
            .iter()
            .map(|name| {
                let plain = name.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
                plain.then(|| [name.as_slice(), b"\""].concat())
            })
            .collect();
        let words = quoted
            .iter()
            .map(|q: &Option<Vec<u8>>| {
                let q = q.as_deref().filter(|q| q.len() <= 8)?;
                let mut word = [0u8; 8];
                word[..q.len()].copy_from_slice(q);
                let mask = if q.len() == 8 { u64::MAX } else { (1u64 << (8 * q.len())) - 1 };
                Some((u64::from_le_bytes(word), mask))
            })
            .collect();
        Some(Schema {
            names,
            quoted,
            words,
            index,
            n_features,
            max_bytes,
            classification,
        })
    }

    pub fn fields(&self) -> usize {
        self.names.len()
    }

    /// The length of field `hint`'s key with its closing quote if `rest` (what follows an
    /// opening quote) starts with it: the common case, a record in the schema's order.
    #[inline]
    pub fn key_at(&self, rest: &[u8], hint: usize) -> Option<usize> {
        let quoted = self.quoted.get(hint)?.as_deref()?;
        if let (Some((word, mask)), Some(head)) = (self.words[hint], rest.first_chunk::<8>()) {
            return (u64::from_le_bytes(*head) & mask == word).then_some(quoted.len());
        }
        rest.starts_with(quoted).then_some(quoted.len())
    }

    pub fn lookup(&self, key: &[u8]) -> Option<usize> {
        self.index.get(key).copied()
    }
}
