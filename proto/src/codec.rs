//! The gRPC codec of every wagate service and client: prost's, plus one
//! check of every request a server decodes ([`crate::text::Incoming`]): a
//! string field holding a NUL is refused with INVALID_ARGUMENT naming the
//! field, and a request that is not valid protobuf (e.g. a string that is
//! not UTF-8) is INVALID_ARGUMENT too (prost's codec says INTERNAL, which
//! the REST face would turn into a 500). Replies decoded by clients are
//! passed through unchanged.
//!
//! Cost: one `memchr`-style scan of each string field of a request (the
//! request is already in memory, decoded); measured in `text.rs`'s bench test.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

use crate::text::{Incoming, nul_error};

/// [`tonic_prost::ProstCodec`] with the request check.
#[derive(Debug, Clone)]
pub struct CheckedCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Incoming + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder { inner: ProstDecoder::new(BufferSettings::default()) }
    }
}

/// Decodes with prost, then refuses a request with a NUL in a string.
#[derive(Debug, Clone)]
pub struct CheckedDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: Message + Default + Incoming> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let item = match self.inner.decode(buf) {
            Ok(item) => item,
            Err(status) if U::REQUEST => {
                return Err(crate::error::ApiError::new(
                    crate::error::ErrorCode::ValidationError,
                    format!("request is not valid protobuf: {}", status.message()),
                )
                .to_status());
            }
            Err(status) => return Err(status),
        };
        if let Some(field) = item.as_ref().and_then(Incoming::refused_field) {
            return Err(nul_error(&field).to_status());
        }
        Ok(item)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
