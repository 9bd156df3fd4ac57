//! The fields a record must have: features (in order, into the row) and the label.

use std::collections::HashMap;

pub struct Schema {
    names: Vec<Vec<u8>>, // features, then the label
    // Each name followed by its closing quote, for names a JSON string holds unescaped
    // (no quote, backslash or control character): the key can be matched in place.
    quoted: Vec<Option<Vec<u8>>>,
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
        let quoted = names
            .iter()
            .map(|name| {
                let plain = name.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
                plain.then(|| [name.as_slice(), b"\""].concat())
            })
            .collect();
        Some(Schema {
            names,
            quoted,
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
        rest.starts_with(quoted).then_some(quoted.len())
    }

    pub fn lookup(&self, key: &[u8]) -> Option<usize> {
        self.index.get(key).copied()
    }
}
