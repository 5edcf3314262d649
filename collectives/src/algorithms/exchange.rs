//! The exchanges in which every rank ends with data from every other.
//!
//! `all_gather` is recursive doubling over the folded tree (see
//! [`super::doubling`]): in step `k` partners swap everything they have,
//! so the data doubles per step and `⌈log2 n⌉` (+2 for a non-power of two)
//! steps suffice. Values are encoded once, by their owner, and forwarded as
//! bytes.
//!
//! `all_to_all` sends each rank its value directly, all messages at once, in
//! the staggered order `me+1, me+2, ...` so that no rank is the first
//! target of everyone: one step of latency, `n-1` messages per rank, which
//! every all-to-all needs.

use hpx_runtime::{codec, Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::tag;
use crate::payload::{Chunk, Payload};
use crate::round::Round;
use crate::tree::Shape;

/// Decodes the gathered values, keeping this rank's own value as it is.
fn decode_all<T: DeserializeOwned>(parts: Vec<Option<Chunk>>, me: u32, mine: T) -> Result<Vec<T>> {
    let mut mine = Some(mine);
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| match (i == me as usize, part) {
            (true, _) => mine
                .take()
                .ok_or_else(|| Error::BadArgument("all_gather: own value taken twice".into())),
            (false, Some(chunk)) => codec::decode(chunk.bytes()),
            (false, None) => Err(Error::BadArgument(format!(
                "all_gather: the value of rank {i} never arrived"
            ))),
        })
        .collect()
}

/// Shares the parts `range` for sending.
fn shared(parts: &[Option<Chunk>], range: std::ops::Range<u32>) -> Result<Payload> {
    let chunks = parts
        .get(range.start as usize..range.end as usize)
        .unwrap_or_default()
        .iter()
        .map(|part| {
            part.as_ref()
                .map(Chunk::share)
                .ok_or_else(|| Error::BadArgument("all_gather: a part is missing".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Payload::from_chunks(chunks))
}

/// Files received parts for the ranks `range`.
fn file(parts: &mut [Option<Chunk>], range: std::ops::Range<u32>, got: Payload) -> Result<()> {
    let chunks = got.into_exactly(range.len())?;
    for (slot, chunk) in parts
        .get_mut(range.start as usize..range.end as usize)
        .unwrap_or_default()
        .iter_mut()
        .zip(chunks)
    {
        *slot = Some(chunk.into_shared());
    }
    Ok(())
}

/// Every rank's value, in rank order, on every rank.
pub(crate) async fn all_gather<T: Serialize + DeserializeOwned + Send>(
    round: &Round,
    value: T,
) -> Result<Vec<T>> {
    let n = round.size();
    let me = round.rank();
    let shape = Shape::new(n);
    let mut parts: Vec<Option<Chunk>> = (0..n).map(|_| None).collect();
    if let Some(slot) = parts.get_mut(me as usize) {
        *slot = Some(Chunk::Owned(codec::encode_to_vec(&value)?).into_shared());
    }
    let folded = me < 2 * shape.r;
    let Some(v) = shape.virtual_of(me) else {
        round.send(me + 1, tag::FOLD, shared(&parts, me..me + 1)?)?;
        file(&mut parts, 0..n, round.recv(me + 1, tag::UNFOLD).await?)?;
        return decode_all(parts, me, value);
    };
    if folded {
        file(&mut parts, me - 1..me, round.recv(me - 1, tag::FOLD).await?)?;
    }
    for k in 0..shape.levels {
        let pv = v ^ (1 << k);
        let peer = shape.acting(pv);
        let block = |w: u32| shape.leaves((w >> k) << k..((w >> k) + 1) << k);
        round.send(peer, tag::GATHERING + k, shared(&parts, block(v))?)?;
        file(
            &mut parts,
            block(pv),
            round.recv(peer, tag::GATHERING + k).await?,
        )?;
    }
    if folded {
        round.send(me - 1, tag::UNFOLD, shared(&parts, 0..n)?)?;
    }
    decode_all(parts, me, value)
}

/// Value `i` of `values` goes to rank `i`; returns the values sent to this
/// rank, in rank order.
pub(crate) async fn all_to_all<T: Serialize + DeserializeOwned + Send>(
    round: &Round,
    values: Vec<T>,
) -> Result<Vec<T>> {
    let n = round.size();
    let me = round.rank();
    if values.len() != n as usize {
        return Err(Error::BadArgument(format!(
            "all_to_all: {} values for {n} ranks",
            values.len()
        )));
    }
    let mut values: Vec<Option<T>> = values.into_iter().map(Some).collect();
    for i in 1..n {
        let to = (me + i) % n;
        if let Some(value) = values.get_mut(to as usize).and_then(Option::take) {
            round.send(
                to,
                tag::DIRECT,
                Payload::single(codec::encode_to_vec(&value)?),
            )?;
        }
    }
    for i in 1..n {
        let from = (me + n - i) % n;
        let got = round.recv(from, tag::DIRECT).await?.into_single()?;
        if let Some(slot) = values.get_mut(from as usize) {
            *slot = Some(codec::decode(&got)?);
        }
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| Error::BadArgument(format!("all_to_all: no value from rank {i}")))
        })
        .collect()
}
