//! Just enough protobuf to talk to gRPC services from a filter without a code generator in the Wasm
//! module: a writer for the messages we send and a bounds-checked reader for the ones we get back. The
//! reader never panics and never trusts a length: a malformed or hostile message is an `Err`.
//!
//! Wire format: <https://protobuf.dev/programming-guides/encoding/>. Tests check both directions
//! against prost-generated types of Envoy's own protos (`envoy-types`), i.e. what the service uses.

/// Builds a message field by field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.bytes.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// A varint field (uint32/uint64/bool/enum); zero is omitted, as proto3 does.
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            self.tag(field, 0);
            self.varint(v);
        }
        self
    }

    /// A length-delimited field (string, bytes, or an embedded message's bytes); empty is omitted for
    /// strings and bytes (use [`Writer::message`] for messages, which are written even when empty).
    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.message(field, v);
        }
        self
    }

    /// An embedded message (written even when empty: presence matters for optional messages).
    pub fn message(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.tag(field, 2);
        self.varint(v.len() as u64);
        self.bytes.extend_from_slice(v);
        self
    }
}

/// One field as read: its number and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
    /// A fixed32/fixed64 field (skipped by our messages, but read correctly).
    Fixed(u32),
}

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Reads the fields of one message, in order. Stops with `Err` on the first malformed byte.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        varint(&mut self.rest)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Malformed> {
        let n = usize::try_from(n).map_err(|_| Malformed)?;
        if n > self.rest.len() {
            return Err(Malformed);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Field<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let number = u32::try_from(key >> 3).map_err(|_| Malformed)?;
            if number == 0 {
                return Err(Malformed);
            }
            match key & 7 {
                0 => Ok(Field::Varint(number, self.varint()?)),
                1 => self.take(8).map(|_| Field::Fixed(number)),
                2 => {
                    let n = self.varint()?;
                    Ok(Field::Bytes(number, self.take(n)?))
                }
                5 => self.take(4).map(|_| Field::Fixed(number)),
                _ => Err(Malformed),
            }
        })();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }
}

/// Reads one base-128 varint (protobuf's varint, Wasm's unsigned LEB128) from the front of `bytes`,
/// advancing past it; at most 10 bytes, never reading past the end.
pub fn varint(bytes: &mut &[u8]) -> Result<u64, Malformed> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = bytes.split_first().ok_or(Malformed)?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let mut inner = Writer::default();
        inner.bytes(1, b"key").bytes(2, b"");
        let mut w = Writer::default();
        w.uint(1, 300).message(2, &inner.bytes).uint(3, 0);
        let fields: Vec<_> = Reader::new(&w.bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields, vec![Field::Varint(1, 300), Field::Bytes(2, &[10, 3, b'k', b'e', b'y'])]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [&[0x0a, 0x05, 1][..], &[0xff; 11], &[0x08], &[0x00, 0x01], &[0x0b], &[0x0d, 1, 2]] {
            assert!(Reader::new(bad).any(|f| f.is_err()), "{bad:?}");
        }
    }
}
