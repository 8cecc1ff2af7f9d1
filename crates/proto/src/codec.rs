//! The wire codec of every cairn service and client: prost's, with one
//! difference DESIGN.md section 5 requires. A request whose bytes are not
//! the protobuf message it should be is the caller's mistake, so it is
//! `INVALID_ARGUMENT` naming the message, not the `INTERNAL` that
//! `tonic_prost::ProstCodec` answers (which would tell the caller to report
//! a server bug instead of fixing its request).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};

/// `application/grpc+proto` via prost; malformed messages are
/// `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder { _pd: PhantomData }
    }
}

/// Decodes `U`, refusing malformed bytes with `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Default)]
pub struct CheckedDecoder<U> {
    _pd: PhantomData<U>,
}

/// The message's protobuf-style short name, for people.
fn short_name<U>() -> &'static str {
    let full = std::any::type_name::<U>();
    full.rsplit("::").next().unwrap_or(full)
}

impl<U: Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            Status::invalid_argument(format!(
                "the message is not a valid {} protobuf encoding ({e})",
                short_name::<U>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_name_is_the_message_name() {
        assert_eq!(short_name::<crate::common::v1::RecordId>(), "RecordId");
    }
}
