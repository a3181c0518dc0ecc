//! Payload codecs: how a message's payload becomes the bytes JetStream stores.

use levee_queue::broker::BrokerError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Turns payloads into bytes and back. [`Json`] is the default; implement this for another
/// format (protobuf, bincode, raw bytes).
///
/// ```
/// use levee_nats::Codec;
/// use levee_queue::broker::BrokerError;
///
/// /// Payloads that are already bytes.
/// struct Raw;
///
/// impl Codec<Vec<u8>> for Raw {
///     fn encode(&self, payload: &Vec<u8>) -> Result<Vec<u8>, BrokerError> {
///         Ok(payload.clone())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BrokerError> {
///         Ok(bytes.to_vec())
///     }
/// }
/// assert_eq!(Raw.decode(&Raw.encode(&vec![1, 2]).unwrap()).unwrap(), vec![1, 2]);
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// The bytes of `payload`.
    ///
    /// # Errors
    /// [`BrokerError::Codec`] when the payload cannot be encoded.
    fn encode(&self, payload: &T) -> Result<Vec<u8>, BrokerError>;

    /// The payload in `bytes`.
    ///
    /// # Errors
    /// [`BrokerError::Codec`] when the bytes are not a payload (a message that cannot be
    /// decoded is dead-lettered, never handed out or lost).
    fn decode(&self, bytes: &[u8]) -> Result<T, BrokerError>;
}

/// serde JSON: the default codec.
///
/// ```
/// use levee_nats::{Codec, Json};
///
/// let bytes = Json.encode(&vec![1u32, 2, 3])?;
/// assert_eq!(bytes, b"[1,2,3]");
/// let back: Vec<u32> = Json.decode(&bytes)?;
/// assert_eq!(back, [1, 2, 3]);
/// # Ok::<(), levee_queue::broker::BrokerError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Codec<T> for Json {
    fn encode(&self, payload: &T) -> Result<Vec<u8>, BrokerError> {
        serde_json::to_vec(payload).map_err(|e| BrokerError::Codec { reason: e.to_string() })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BrokerError> {
        serde_json::from_slice(bytes).map_err(|e| BrokerError::Codec { reason: e.to_string() })
    }
}
