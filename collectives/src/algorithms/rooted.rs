//! The rooted operations along the canonical tree ([`crate::tree`]) hung
//! from the root: `reduce` and `gather` climb it, `broadcast` and `scatter`
//! descend it. Depth `⌈log2 n⌉`; each rank talks only to its parent and
//! children, the root to at most `⌈log2 n⌉` ranks. An encoded value is
//! forwarded as the bytes received, never decoded and encoded again.

use std::collections::VecDeque;

use hpx_runtime::{codec, Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::tag;
use crate::op::Combine;
use crate::payload::{Chunk, Payload};
use crate::round::Round;
use crate::tree::{rooted_steps, Shape, TreeStep};

/// Reduction to `root`: `Some` on the root.
pub(crate) async fn reduce<T: Send>(
    round: &Round,
    combine: &dyn Combine<T>,
    value: T,
    root: u32,
) -> Result<Option<T>> {
    let me = round.rank();
    let mut acc = value;
    let mut first = me;
    for step in rooted_steps(Shape::new(round.size()), root, me) {
        match step {
            TreeStep::FromChild {
                level,
                peer,
                peer_covers,
            } => {
                let other = combine.decode(round.recv(peer, tag::TREE + level).await?)?;
                acc = if peer_covers.start < first {
                    first = peer_covers.start;
                    combine.combine(other, acc)?
                } else {
                    combine.combine(acc, other)?
                };
            }
            TreeStep::ToParent { level, peer, .. } => {
                round.send(peer, tag::TREE + level, combine.encode(&acc)?)?;
                return Ok(None);
            }
        }
    }
    Ok(Some(acc))
}

/// Broadcast of the root's `value`.
pub(crate) async fn broadcast<T: Serialize + DeserializeOwned>(
    round: &Round,
    value: Option<T>,
    root: u32,
) -> Result<T> {
    let me = round.rank();
    let steps = rooted_steps(Shape::new(round.size()), root, me);
    let (bytes, mine) = if me == root {
        let value = value.ok_or_else(|| {
            Error::BadArgument(format!("broadcast: the root (rank {root}) passed no value"))
        })?;
        (
            Chunk::Owned(codec::encode_to_vec(&value)?).into_shared(),
            Some(value),
        )
    } else {
        let Some(TreeStep::ToParent { level, peer, .. }) = steps.last() else {
            return Err(Error::BadArgument(format!(
                "broadcast: rank {me} has no parent in the tree of root {root}"
            )));
        };
        let got = round.recv(*peer, tag::TREE + level).await?.into_single()?;
        (Chunk::Owned(got).into_shared(), None)
    };
    for step in steps.iter().rev() {
        if let TreeStep::FromChild { level, peer, .. } = step {
            round.send(
                *peer,
                tag::TREE + level,
                Payload::from_chunks(vec![bytes.share()]),
            )?;
        }
    }
    match mine {
        Some(value) => Ok(value),
        None => codec::decode(bytes.bytes()),
    }
}

/// A gathered value: this rank's own, or the bytes of another's.
enum Item<T> {
    Mine(T),
    Theirs(Chunk),
}

impl<T: Serialize + DeserializeOwned> Item<T> {
    fn into_chunk(self) -> Result<Chunk> {
        match self {
            Item::Mine(value) => Ok(Chunk::Owned(codec::encode_to_vec(&value)?)),
            Item::Theirs(chunk) => Ok(chunk),
        }
    }

    fn into_value(self) -> Result<T> {
        match self {
            Item::Mine(value) => Ok(value),
            Item::Theirs(chunk) => codec::decode(chunk.bytes()),
        }
    }
}

/// Gather to `root`: `Some(values in rank order)` on the root.
pub(crate) async fn gather<T: Serialize + DeserializeOwned + Send>(
    round: &Round,
    value: T,
    root: u32,
) -> Result<Option<Vec<T>>> {
    let me = round.rank();
    let mut items = VecDeque::from([Item::Mine(value)]);
    let mut first = me;
    for step in rooted_steps(Shape::new(round.size()), root, me) {
        match step {
            TreeStep::FromChild {
                level,
                peer,
                peer_covers,
            } => {
                let got = round.recv(peer, tag::TREE + level).await?;
                let chunks = got.into_exactly(peer_covers.len())?;
                if peer_covers.start < first {
                    first = peer_covers.start;
                    for chunk in chunks.into_iter().rev() {
                        items.push_front(Item::Theirs(chunk));
                    }
                } else {
                    items.extend(chunks.into_iter().map(Item::Theirs));
                }
            }
            TreeStep::ToParent { level, peer, .. } => {
                let chunks = items
                    .into_iter()
                    .map(Item::into_chunk)
                    .collect::<Result<Vec<_>>>()?;
                round.send(peer, tag::TREE + level, Payload::from_chunks(chunks))?;
                return Ok(None);
            }
        }
    }
    items
        .into_iter()
        .map(Item::into_value)
        .collect::<Result<Vec<T>>>()
        .map(Some)
}

/// Scatter from `root`: each rank gets the root's value of its rank.
pub(crate) async fn scatter<T: Serialize + DeserializeOwned + Send>(
    round: &Round,
    values: Option<Vec<T>>,
    root: u32,
) -> Result<T> {
    let n = round.size();
    let me = round.rank();
    let steps = rooted_steps(Shape::new(n), root, me);
    let (items, first) = if me == root {
        let values = values.ok_or_else(|| {
            Error::BadArgument(format!("scatter: the root (rank {root}) passed no values"))
        })?;
        if values.len() != n as usize {
            return Err(Error::BadArgument(format!(
                "scatter: the root passed {} values for {n} ranks",
                values.len()
            )));
        }
        (values.into_iter().map(Item::Mine).collect::<Vec<_>>(), 0)
    } else {
        let Some(TreeStep::ToParent {
            level,
            peer,
            covers,
        }) = steps.last()
        else {
            return Err(Error::BadArgument(format!(
                "scatter: rank {me} has no parent in the tree of root {root}"
            )));
        };
        let got = round.recv(*peer, tag::TREE + level).await?;
        let chunks = got.into_exactly(covers.len())?;
        (chunks.into_iter().map(Item::Theirs).collect(), covers.start)
    };
    let mut items: Vec<Option<Item<T>>> = items.into_iter().map(Some).collect();
    for step in steps.iter().rev() {
        if let TreeStep::FromChild {
            level,
            peer,
            peer_covers,
        } = step
        {
            let start = (peer_covers.start - first) as usize;
            let end = (peer_covers.end - first) as usize;
            let chunks = items
                .get_mut(start..end)
                .unwrap_or_default()
                .iter_mut()
                .map(|slot| match slot.take() {
                    Some(item) => item.into_chunk(),
                    None => Err(Error::BadArgument("scatter: a value was sent twice".into())),
                })
                .collect::<Result<Vec<_>>>()?;
            round.send(*peer, tag::TREE + level, Payload::from_chunks(chunks))?;
        }
    }
    match items.get_mut((me - first) as usize).and_then(Option::take) {
        Some(item) => item.into_value(),
        None => Err(Error::BadArgument(format!(
            "scatter: no value for rank {me}"
        ))),
    }
}
