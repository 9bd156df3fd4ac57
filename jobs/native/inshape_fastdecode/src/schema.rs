//! The fields a record must have: features (in order, into the row) and the label.

use std::collections::HashMap;

pub struct Schema {
    names: Vec<Vec<u8>>, // features, then the label
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
        Some(Schema {
            names,
            index,
            n_features,
            max_bytes,
            classification,
        })
    }

    pub fn fields(&self) -> usize {
        self.names.len()
    }

    /// The field a key names; tries `hint` (the field after the previous one) first.
    #[inline]
    pub fn find(&self, key: &[u8], hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|name| name.as_slice() == key) {
            return Some(hint);
        }
        self.lookup(key)
    }

    pub fn lookup(&self, key: &[u8]) -> Option<usize> {
        self.index.get(key).copied()
    }
}
