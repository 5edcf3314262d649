//! The collectives of members that share this host, through the
//! communicator's shared region ([`crate::host`]): an exchange of slots
//! first (every member's contribution inline, or its length), then, for
//! contributions too large for a slot, one copy into the bulk region and
//! one copy out. Each falls back to the message algorithm only where the
//! bulk region would be too large.
//!
//! Reductions combine along the canonical tree ([`crate::tree`]), so their
//! bits are those of every other algorithm. A large vector is reduced in
//! shares: each member combines one block of every member's input (in
//! cache-sized pieces) into the result area, and all copy the result out.

use serde::de::DeserializeOwned;
use serde::Serialize;

use hpx_runtime::codec;
use hpx_runtime::element::{Element, ReduceOp};
use hpx_runtime::{Error, Result};

use super::{agree, exchange, rooted};
use crate::host::{Bulk, Contributions, HostCall, Offer, INLINE};
use crate::op::{Combine, ReduceOperation};
use crate::payload::Payload;
use crate::round::Round;
use crate::tree::{block_range, combine_canonical};

/// Phase steps of a call through the bulk region.
const INPUTS_WRITTEN: u8 = 1;
const RESULT_WRITTEN: u8 = 2;

/// Elements combined at a time in a large reduction (a piece of every
/// member's input, kept in cache).
const PIECE_BYTES: usize = 32 << 10;

/// Waits until every member has called it.
pub(crate) async fn barrier(host: &mut HostCall<'_>) -> Result<()> {
    host.exchange(Offer::Bytes(&[])).await.map(drop)
}

/// Every member's contribution to a large exchange, through the bulk
/// region: each member writes its own with `write`; if `reads`, this one
/// then decodes every member's in place with `decode(rank, bytes)` (else
/// it returns none). `None` if the bulk region would be too large.
async fn through_bulk<T>(
    host: &mut HostCall<'_>,
    write: impl FnOnce(&Bulk<'_>) -> Result<()>,
    lens: &[usize],
    reads: bool,
    decode: impl Fn(u32, &[u8]) -> Result<T>,
) -> Result<Option<Vec<T>>> {
    let seg = host.seg();
    let largest = lens.iter().copied().max().unwrap_or(0);
    let Some(bulk) = seg.bulk(largest)? else {
        return Ok(None);
    };
    write(&bulk)?;
    host.reach(INPUTS_WRITTEN);
    if !reads {
        return Ok(Some(Vec::new()));
    }
    host.wait_for(0..seg.size(), INPUTS_WRITTEN).await?;
    let mut all = Vec::with_capacity(lens.len());
    for (r, len) in (0..seg.size()).zip(lens) {
        all.push(bulk.with_input(r, *len, |bytes| decode(r, bytes))?);
    }
    Ok(Some(all))
}

/// A value to send through the region: encoded now if it fits a slot,
/// else encoded later straight into the bulk region (one copy less).
struct Outgoing<'v, T: ?Sized> {
    value: &'v T,
    len: usize,
    small: Option<Vec<u8>>,
}

impl<'v, T: Serialize + ?Sized> Outgoing<'v, T> {
    /// One serialisation for a value that fits a slot; a large one is
    /// only measured here and encoded by [`Outgoing::write`].
    fn new(value: &'v T) -> Result<Self> {
        let mut room = [0u8; INLINE];
        if let Some(len) = codec::encode_if_fits(value, &mut room)? {
            let small = Some(room[..len].to_vec());
            return Ok(Outgoing { value, len, small });
        }
        let len = codec::encoded_len(value)?;
        Ok(Outgoing {
            value,
            len,
            small: None,
        })
    }

    fn offer(&self) -> Offer<'_> {
        match &self.small {
            Some(bytes) => Offer::Bytes(bytes),
            None => Offer::Large(self.len),
        }
    }

    /// Writes the encoded value into this member's input area.
    fn write(&self, bulk: &Bulk<'_>) -> Result<()> {
        match &self.small {
            Some(bytes) => bulk.write_input(0, bytes),
            None => bulk.fill_input(self.len, |out| codec::encode_into(self.value, out)),
        }
    }
}

/// `all_reduce` (`root` = `None`) or `reduce` to `root` of any value,
/// encoded by `combine`: inline, through the bulk region, or by messages.
pub(crate) async fn reduce_encoded<T: Send>(
    round: &Round,
    host: &mut HostCall<'_>,
    combine: &dyn Combine<T>,
    value: T,
    root: Option<u32>,
) -> Result<Option<T>> {
    let mine = combine.encode(&value)?.into_single()?;
    let me = host.seg().rank();
    let reads = root.map_or(true, |r| r == me);
    let decode = |_, bytes: &[u8]| combine.decode(Payload::single(bytes.to_vec()));
    let values = match host.exchange(Offer::Bytes(&mine)).await? {
        Contributions::Inline(all) => {
            if !reads {
                return Ok(None);
            }
            (0..all.len() as u32)
                .map(|r| combine.decode(Payload::single(all.bytes(r).to_vec())))
                .collect::<Result<Vec<T>>>()?
        }
        Contributions::Large(lens) => {
            match through_bulk(
                host,
                |bulk| bulk.write_input(0, &mine),
                &lens,
                reads,
                decode,
            )
            .await?
            {
                Some(values) => values,
                None => return by_messages(round, combine, value, root).await,
            }
        }
    };
    if !reads {
        return Ok(None);
    }
    combine_canonical(values, |a, b| combine.combine(a, b))?
        .map(Some)
        .ok_or_else(|| Error::Codec("a reduction of no values".into()))
}

/// The message algorithms of a reduction whose values are too large for
/// the bulk region.
async fn by_messages<T: Send>(
    round: &Round,
    combine: &dyn Combine<T>,
    value: T,
    root: Option<u32>,
) -> Result<Option<T>> {
    match root {
        None => match combine.all_reduce_large(round, value) {
            Ok(large) => large.await.map(Some),
            Err(value) => super::doubling::all_reduce(round, combine, value)
                .await
                .map(Some),
        },
        Some(root) => {
            let (result, ()) = tokio::try_join!(
                rooted::reduce(round, combine, value, root),
                agree::agree(round)
            )?;
            Ok(result)
        }
    }
}

/// `all_reduce` (`root` = `None`) or `reduce` to `root` of a vector of
/// numbers with a built-in operation: small vectors inline, large ones
/// reduced in shares through the bulk region.
pub(crate) async fn reduce_elements<E: Element>(
    round: &Round,
    host: &mut HostCall<'_>,
    op: ReduceOp,
    mut acc: Vec<E>,
    root: Option<u32>,
) -> Result<Option<Vec<E>>> {
    let seg = host.seg();
    let me = seg.rank();
    let lens = match host
        .exchange(Offer::Bytes(bytemuck::cast_slice(&acc)))
        .await?
    {
        Contributions::Inline(all) => {
            if root.is_some_and(|r| r != me) {
                return Ok(None);
            }
            let len = acc.len();
            let mut flat: Vec<E> = Vec::with_capacity(len * all.len());
            for r in 0..all.len() as u32 {
                let bytes = all.bytes(r);
                if bytes.len() != std::mem::size_of_val(acc.as_slice()) {
                    return Err(Error::Codec(format!(
                        "rank {r} contributes {} bytes where {len} elements of {} were expected",
                        bytes.len(),
                        E::NAME
                    )));
                }
                match bytemuck::try_cast_slice::<u8, E>(bytes) {
                    Ok(elements) => flat.extend_from_slice(elements),
                    Err(_) => flat.extend(bytemuck::pod_collect_to_vec::<u8, E>(bytes)),
                }
            }
            let at = combine_in_place(op, &mut flat, len);
            acc.copy_from_slice(&flat[at * len..(at + 1) * len]);
            return Ok(Some(acc));
        }
        Contributions::Large(lens) => lens,
    };
    let bytes = std::mem::size_of_val(acc.as_slice());
    if lens.iter().any(|l| *l != bytes) {
        return Err(Error::Codec(format!(
            "members contribute {lens:?} bytes to a reduction of {bytes}"
        )));
    }
    let Some(bulk) = seg.bulk(bytes)? else {
        let combine = ReduceOperation::<Vec<E>>::into_reduction(op).0;
        return by_messages(round, combine.as_ref(), acc, root).await;
    };
    bulk.write_input(0, bytemuck::cast_slice(&acc))?;
    host.reach(INPUTS_WRITTEN);
    host.wait_for(0..seg.size(), INPUTS_WRITTEN).await?;
    // This member's share: every member's elements of one block, combined.
    let n = seg.size();
    let share = block_range(acc.len(), n, me);
    let piece = (PIECE_BYTES / std::mem::size_of::<E>().max(1)).max(1);
    let mut flat: Vec<E> = Vec::with_capacity(piece * n as usize);
    let mut start = share.start;
    while start < share.end {
        let end = (start + piece).min(share.end);
        let (count, offset) = (end - start, start * std::mem::size_of::<E>());
        flat.clear();
        flat.resize(count * n as usize, bytemuck::Zeroable::zeroed());
        for (r, part) in (0..n).zip(flat.chunks_exact_mut(count)) {
            bulk.read_input(r, offset, bytemuck::cast_slice_mut(part))?;
        }
        let at = combine_in_place(op, &mut flat, count);
        bulk.write_result(
            offset,
            bytemuck::cast_slice(&flat[at * count..(at + 1) * count]),
        )?;
        start = end;
    }
    host.reach(RESULT_WRITTEN);
    if root.is_some_and(|r| r != me) {
        return Ok(None);
    }
    host.wait_for(0..n, RESULT_WRITTEN).await?;
    bulk.read_result(0, bytemuck::cast_slice_mut(&mut acc))?;
    Ok(Some(acc))
}

/// Combines the contributions in `flat` (one of `len` elements per rank,
/// in rank order) along the canonical tree, in place; returns the index of
/// the contribution that holds the result.
fn combine_in_place<E: Element>(op: ReduceOp, flat: &mut [E], len: usize) -> usize {
    let n = flat.len().checked_div(len).unwrap_or(0);
    if n == 0 {
        return 0;
    }
    let p = 1 << (usize::BITS - 1 - n.leading_zeros());
    let r = n - p;
    let mut pair = |lower: usize, upper: usize| {
        let (low, high) = flat.split_at_mut(upper * len);
        E::combine_slices(
            op,
            &mut low[lower * len..(lower + 1) * len],
            &high[..len],
            false,
        );
    };
    // The virtual ranks: the first r pairs folded, then the rest.
    let mut at: Vec<usize> = (0..p)
        .map(|v| {
            if v < r {
                pair(2 * v, 2 * v + 1);
                2 * v
            } else {
                v + r
            }
        })
        .collect();
    while at.len() > 1 {
        at = at
            .chunks(2)
            .map(|c| {
                if let [lower, upper] = *c {
                    pair(lower, upper);
                }
                c[0]
            })
            .collect();
    }
    at.first().copied().unwrap_or(0)
}

/// `broadcast` from `root`.
pub(crate) async fn broadcast<T: Serialize + DeserializeOwned>(
    round: &Round,
    host: &mut HostCall<'_>,
    value: Option<T>,
    root: u32,
) -> Result<T> {
    let me = host.seg().rank();
    let value = match value {
        Some(value) if me == root => Some(value),
        _ if me == root => {
            return Err(Error::BadArgument(format!(
                "broadcast: the root (rank {root}) passed no value"
            )))
        }
        _ => None,
    };
    let mine = value.as_ref().map(Outgoing::new).transpose()?;
    let offer = mine.as_ref().map_or(Offer::Bytes(&[]), Outgoing::offer);
    let root_index = root as usize;
    match host.exchange(offer).await? {
        Contributions::Inline(all) => match value {
            Some(value) => Ok(value),
            None => codec::decode(all.bytes(root)),
        },
        Contributions::Large(lens) => {
            let len = lens.get(root_index).copied().unwrap_or(0);
            let Some(bulk) = host.seg().bulk(len)? else {
                drop(mine);
                let (value, ()) =
                    tokio::try_join!(rooted::broadcast(round, value, root), agree::agree(round))?;
                return Ok(value);
            };
            if let Some(mine) = &mine {
                mine.write(&bulk)?;
                host.reach(INPUTS_WRITTEN);
            }
            match value {
                Some(value) => Ok(value),
                None => {
                    host.wait_for(root..root + 1, INPUTS_WRITTEN).await?;
                    bulk.with_input(root, len, codec::decode)
                }
            }
        }
    }
}

/// `gather` to `root` (`Some` root) or `all_gather` (`None`).
pub(crate) async fn gather<T: Serialize + DeserializeOwned + Send>(
    round: &Round,
    host: &mut HostCall<'_>,
    value: T,
    root: Option<u32>,
) -> Result<Option<Vec<T>>> {
    let me = host.seg().rank();
    let reads = root.map_or(true, |r| r == me);
    let decode = |r: u32, bytes: &[u8]| -> Result<Option<T>> {
        if r == me {
            Ok(None)
        } else {
            codec::decode(bytes).map(Some)
        }
    };
    let mine = Outgoing::new(&value)?;
    let contributions = host.exchange(mine.offer()).await?;
    let all = match contributions {
        Contributions::Inline(all) if reads => (0..all.len() as u32)
            .map(|r| decode(r, all.bytes(r)))
            .collect::<Result<Vec<_>>>()?,
        Contributions::Inline(_) => return Ok(None),
        Contributions::Large(lens) => {
            match through_bulk(host, |bulk| mine.write(bulk), &lens, reads, decode).await? {
                Some(all) => all,
                None => {
                    drop(mine);
                    return match root {
                        Some(root) => {
                            let (values, ()) = tokio::try_join!(
                                rooted::gather(round, value, root),
                                agree::agree(round)
                            )?;
                            Ok(values)
                        }
                        None => exchange::all_gather(round, value).await.map(Some),
                    };
                }
            }
        }
    };
    drop(mine);
    if !reads {
        return Ok(None);
    }
    // This member's own value is kept, not decoded back.
    let mut own = Some(value);
    all.into_iter()
        .map(|v| {
            v.or_else(|| own.take())
                .ok_or_else(|| Error::Codec("a gathered value is missing".into()))
        })
        .collect::<Result<Vec<T>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_combine_along_the_canonical_tree() {
        for n in 1..12usize {
            let mut flat: Vec<u64> = (0..n as u64).flat_map(|r| [r + 1, 1]).collect();
            let at = combine_in_place(ReduceOp::Sum, &mut flat, 2);
            let total: u64 = (1..=n as u64).sum();
            assert_eq!(flat[2 * at..2 * at + 2], [total, n as u64], "n = {n}");
        }
        // Floats whose sum depends on the order: the same bits as the
        // canonical combination of the same values one by one.
        for n in 1..20usize {
            let xs: Vec<f64> = (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        1e16 * (i as f64 - 4.5)
                    } else {
                        1.0 + i as f64 * 0.1
                    }
                })
                .collect();
            let want = combine_canonical(xs.clone(), |a, b| Ok(a + b))
                .unwrap()
                .unwrap();
            let mut flat: Vec<f64> = xs.iter().flat_map(|x| [*x; 3]).collect();
            let at = combine_in_place(ReduceOp::Sum, &mut flat, 3);
            let got: Vec<u64> = flat[3 * at..3 * at + 3]
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert_eq!(got, [want.to_bits(); 3], "n = {n}");
        }
        assert_eq!(combine_in_place(ReduceOp::Sum, &mut [0u8; 0], 0), 0);
    }
}
