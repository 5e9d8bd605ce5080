//! JSON read strictly: [`StrictValue`] is a `serde_json::Value` that refuses duplicate object keys at
//! any depth. serde_json keeps the last of two equal keys, so `{"sub":"a","sub":"admin"}` (a token)
//! or `{"percent":1,"percent":100}` (a config) could mean different things to different readers.
//! [`from_value_at`] reads a typed value out of one and says where an error is, as a JSON pointer.

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error as _, Expected, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use serde::{forward_to_deserialize_any, Deserialize};
use serde_json::{Error, Map, Value};
use std::cell::RefCell;
use std::fmt;

/// A JSON value with no duplicate object keys (see the module docs).
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)))
    }
    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(StrictValue(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            out.insert(key, v);
        }
        Ok(StrictValue(Value::Object(out)))
    }
}

/// Reads `T` from `value`. On failure: the JSON pointer (RFC 6901) of the value where the error
/// arose, and the error.
///
/// This is `serde_json::from_value` that keeps track of where it is. serde_path_to_error gives the
/// same pointers for any deserializer, but wraps every visitor of every config type to do so; tracking
/// the pointer in the one deserializer configs are read with costs no per-type code (BENCHMARKS.md,
/// module sizes).
pub fn from_value_at<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, (String, serde_json::Error)> {
    let first_error = RefCell::new(None);
    let result = T::deserialize(At { value, seg: Seg::Root, first_error: &first_error });
    result.map_err(|e| (first_error.into_inner().unwrap_or_default(), e))
}

/// Where a value is: a chain of keys and indexes back to the root, turned into a pointer only when
/// an error needs one.
#[derive(Clone, Copy)]
enum Seg<'p> {
    Root,
    Key(&'p Seg<'p>, &'p str),
    Index(&'p Seg<'p>, usize),
}

impl Seg<'_> {
    fn pointer(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Seg::Root => {}
            Seg::Key(parent, key) => {
                parent.write(out);
                out.push('/');
                out.push_str(&crate::config::escape_token(key));
            }
            Seg::Index(parent, index) => {
                parent.write(out);
                out.push('/');
                out.push_str(&index.to_string());
            }
        }
    }
}

/// The pointer of the deepest value an error came out of: the first one noted, since an error is
/// returned from the inside out.
type FirstError<'p> = &'p RefCell<Option<String>>;

fn note<T>(first_error: FirstError<'_>, seg: &Seg<'_>, result: Result<T, Error>) -> Result<T, Error> {
    if result.is_err() {
        note_at(first_error, seg);
    }
    result
}

/// Not generic, so not copied for every type read.
#[inline(never)]
fn note_at(first_error: FirstError<'_>, seg: &Seg<'_>) {
    let mut first = first_error.borrow_mut();
    if first.is_none() {
        *first = Some(seg.pointer());
    }
}

/// A value and where it is.
struct At<'de, 'p> {
    value: &'de Value,
    seg: Seg<'p>,
    first_error: FirstError<'p>,
}

impl<'de> Deserializer<'de> for At<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => visit_number(n, visitor),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => self.visit_items(items, visitor),
            Value::Object(map) => self.visit_entries(map, visitor),
        };
        note(self.first_error, &self.seg, result)
    }

    // The typed entry points call only the visitor method their JSON type needs: a config type's
    // visitor is then not instantiated with every other branch of `deserialize_any`.

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            other => Err(invalid_type(other, &visitor)),
        };
        note(self.first_error, &self.seg, result)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            other => Err(invalid_type(other, &visitor)),
        };
        note(self.first_error, &self.seg, result)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Array(items) => self.visit_items(items, visitor),
            other => Err(invalid_type(other, &visitor)),
        };
        note(self.first_error, &self.seg, result)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Object(map) => self.visit_entries(map, visitor),
            other => Err(invalid_type(other, &visitor)),
        };
        note(self.first_error, &self.seg, result)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => note(self.first_error, &self.seg, visitor.visit_none()),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Object(map) => match map.iter().next() {
                Some((key, value)) if map.len() == 1 => {
                    visitor.visit_enum(Variant { key, value, parent: &self.seg, first_error: self.first_error })
                }
                _ => Err(Error::invalid_value(Unexpected::Map, &"a map with a single key")),
            },
            other => Err(Error::invalid_type(unexpected(other), &"a string or a map with a single key")),
        };
        note(self.first_error, &self.seg, result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        i8 i16 i128 u128 f32 char bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

impl<'de> At<'de, '_> {
    fn deserialize_number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Number(n) => visit_number(n, visitor),
            other => Err(invalid_type(other, &visitor)),
        };
        note(self.first_error, &self.seg, result)
    }

    fn visit_items<V: Visitor<'de>>(&self, items: &'de [Value], visitor: V) -> Result<V::Value, Error> {
        let mut seq = Items { items: items.iter().enumerate(), parent: &self.seg, first_error: self.first_error };
        let value = visitor.visit_seq(&mut seq)?;
        match seq.items.len() {
            0 => Ok(value),
            _ => Err(Error::invalid_length(items.len(), &"fewer elements in array")),
        }
    }

    fn visit_entries<V: Visitor<'de>>(&self, map: &'de Map<String, Value>, visitor: V) -> Result<V::Value, Error> {
        let mut entries =
            Entries { entries: map.iter(), pending: None, parent: &self.seg, first_error: self.first_error };
        let value = visitor.visit_map(&mut entries)?;
        match entries.entries.len() {
            0 => Ok(value),
            _ => Err(Error::invalid_length(map.len(), &"fewer elements in map")),
        }
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: &serde_json::Number, visitor: V) -> Result<V::Value, Error> {
    match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => visitor.visit_u64(u),
        (None, Some(i), _) => visitor.visit_i64(i),
        (None, None, f) => visitor.visit_f64(f.unwrap_or(f64::NAN)),
    }
}

/// The error for a value of the wrong JSON type; not generic, so not copied per visitor.
#[cold]
fn invalid_type(value: &Value, expected: &dyn Expected) -> Error {
    Error::invalid_type(unexpected(value), expected)
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// An object key, as a field name, a map key or a variant name.
struct Key<'de, 'p> {
    key: &'de str,
    seg: Seg<'p>,
    first_error: FirstError<'p>,
}

impl<'de> Deserializer<'de> for Key<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        note(self.first_error, &self.seg, visitor.visit_borrowed_str(self.key))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        note(self.first_error, &self.seg, visitor.visit_enum(self.key.into_deserializer()))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Items<'de, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    parent: &'p Seg<'p>,
    first_error: FirstError<'p>,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        match self.items.next() {
            Some((index, value)) => {
                // Noted here too: a type may refuse a value its deserializer read without error.
                let seg = Seg::Index(self.parent, index);
                note(self.first_error, &seg, seed.deserialize(At { value, seg, first_error: self.first_error }))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'de, 'p> {
    entries: serde_json::map::Iter<'de>,
    pending: Option<(&'de str, &'de Value)>,
    parent: &'p Seg<'p>,
    first_error: FirstError<'p>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.pending = Some((key, value));
        seed.deserialize(Key { key, seg: Seg::Key(self.parent, key), first_error: self.first_error }).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let (key, value) =
            self.pending.take().ok_or_else(|| Error::custom("a map value was asked for before its key"))?;
        // Noted here too: a type may refuse a value its deserializer read without error.
        let seg = Seg::Key(self.parent, key);
        note(self.first_error, &seg, seed.deserialize(At { value, seg, first_error: self.first_error }))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An externally tagged enum's `{"variant": value}`.
struct Variant<'de, 'p> {
    key: &'de str,
    value: &'de Value,
    parent: &'p Seg<'p>,
    first_error: FirstError<'p>,
}

impl<'de: 'p, 'p> EnumAccess<'de> for Variant<'de, 'p> {
    type Error = Error;
    type Variant = At<'de, 'p>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, At<'de, 'p>), Error> {
        // An unknown variant is the enum's error, a wrong value inside it the variant's.
        let variant = seed.deserialize(Key { key: self.key, seg: *self.parent, first_error: self.first_error })?;
        Ok((variant, At { value: self.value, seg: Seg::Key(self.parent, self.key), first_error: self.first_error }))
    }
}

impl<'de> VariantAccess<'de> for At<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Value::Null => Ok(()),
            other => note(self.first_error, &self.seg, Err(Error::invalid_type(unexpected(other), &"unit variant"))),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        let (seg, first_error) = (self.seg, self.first_error);
        note(first_error, &seg, seed.deserialize(self))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }
}
