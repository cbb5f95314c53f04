//! Deserialization helpers the generated code uses.

use serde::{Deserialize, Deserializer};

/// Decodes `null` as the type's default (an empty `Vec` or map), and any other value as usual.
///
/// `cargo xtask codegen` puts `#[serde(deserialize_with = "::postmark_core::de::null_as_default")]` on every optional
/// array and object field of the generated types: Postmark accepts `"Attachments": null` and real clients send it,
/// and for a collection `null`, absent and empty mean the same.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
