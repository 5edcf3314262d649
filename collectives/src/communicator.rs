//! Communicators: the world of all localities, and named groups of some.

use std::collections::HashSet;
use std::sync::Arc;

use hpx_runtime::{Error, LocalityId, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::algorithms::{agree, doubling, exchange, rooted, scan, shared};
use crate::comm::{world, CommInner};
use crate::op::ReduceOperation;
use crate::round::Round;
use crate::session::session;
use crate::signature::{Kind, Signature};
use hpx_runtime::hash::fnv1a_parts as fnv1a;

/// A group of localities that run collectives together: the world (every
/// locality, rank = locality id) or a named group of some of them.
///
/// Every member must call the same collectives on a communicator in the
/// same order; each call is told apart from the previous and next ones by a
/// generation number, so a fast member may run ahead into later calls. A
/// call that does not match (another operation, reduction, root, value type
/// or vector length) fails on every member with [`Error::CollectiveMismatch`]; a
/// member lost during a call fails it on the others with
/// [`Error::LocalityLost`], as soon as one of them notices (within the peer
/// timeout, `HPX_PEER_TIMEOUT`). A failed or cancelled call fails on all
/// members; the communicator stays usable for the next call.
///
/// Clones share the communicator (and its generation counter).
#[derive(Clone)]
pub struct Communicator {
    inner: Arc<CommInner>,
}

impl std::fmt::Debug for Communicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Communicator")
            .field("name", &self.inner.name)
            .field("rank", &self.inner.rank)
            .field("members", &self.inner.members)
            .finish()
    }
}

/// The type's name and the reduction's name of a reducing call.
struct Described {
    type_name: &'static str,
    op_name: &'static str,
}

fn described<T>(op_name: &'static str) -> Described {
    Described {
        type_name: std::any::type_name::<T>(),
        op_name,
    }
}

impl Communicator {
    /// The communicator of all localities of the job, where a locality's
    /// rank is its id. The free functions of this crate use it.
    ///
    /// Errors: [`Error::NotRunning`] outside an hpx runtime.
    pub fn world() -> Result<Communicator> {
        Ok(Communicator { inner: world()? })
    }

    /// Creates the communicator `name` of `members`, collectively: every
    /// member calls it with the same name and members (in the same order,
    /// which gives the ranks); other localities do not call it. It returns
    /// once all members have joined. A name may be used again for another
    /// communicator; the `k`-th creation of a name on each member makes the
    /// same communicator.
    ///
    /// Errors: [`Error::BadArgument`] if `members` is empty, repeats a
    /// locality, names one that does not exist or does not include this
    /// locality, or if the members disagree on the member list;
    /// [`Error::LocalityLost`] if a member is lost meanwhile.
    pub async fn new(name: &str, members: &[LocalityId]) -> Result<Communicator> {
        let session = session()?;
        let n = hpx_runtime::get_num_localities();
        if members.is_empty() {
            return Err(Error::BadArgument(format!(
                "communicator {name:?} needs at least one member"
            )));
        }
        let mut seen = HashSet::new();
        for m in members {
            if m.0 >= n {
                return Err(Error::NoSuchLocality(*m));
            }
            if !seen.insert(*m) {
                return Err(Error::BadArgument(format!(
                    "communicator {name:?} lists locality {m} twice"
                )));
            }
        }
        let rank = members
            .iter()
            .position(|m| *m == session.here)
            .ok_or_else(|| {
                Error::BadArgument(format!(
                    "locality {} creates communicator {name:?} but is not one of its members {members:?}",
                    session.here
                ))
            })?;
        let creation = session.next_creation(name);
        let id = fnv1a(&[b"communicator:", name.as_bytes(), &creation.to_le_bytes()]).max(1);
        let member_ids: Vec<u8> = members.iter().flat_map(|m| m.0.to_le_bytes()).collect();
        let inner = Arc::new(CommInner::new(
            Arc::downgrade(&session),
            id,
            name.into(),
            members.into(),
            rank as u32,
        ));
        let sig = Signature::bare(Kind::Create).op(fnv1a(&[&member_ids]).max(1));
        let round = Round::begin(&inner, sig, "()", "")?;
        let joined = agree::agree(&round).await;
        round.end(joined)?;
        Ok(Communicator { inner })
    }

    /// The name given at creation (`"world"` for the world).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This locality's rank: its position in the member list.
    pub fn rank(&self) -> u32 {
        self.inner.rank
    }

    /// The number of members.
    pub fn size(&self) -> u32 {
        self.inner.members.len() as u32
    }

    /// The members, by rank.
    pub fn members(&self) -> &[LocalityId] {
        &self.inner.members
    }

    /// The locality of rank `rank`, if there is one.
    pub fn locality(&self, rank: u32) -> Option<LocalityId> {
        self.inner.members.get(rank as usize).copied()
    }

    /// The rank of `locality`, if it is a member.
    pub fn rank_of(&self, locality: LocalityId) -> Option<u32> {
        self.inner
            .members
            .iter()
            .position(|m| *m == locality)
            .map(|r| r as u32)
    }

    fn check_root(&self, root: u32) -> Result<()> {
        if root < self.size() {
            Ok(())
        } else {
            Err(Error::BadArgument(format!(
                "root rank {root} is not a rank of communicator {:?} of {} members",
                self.inner.name,
                self.size()
            )))
        }
    }

    /// Enters the next call, described by `sig`.
    fn begin(&self, sig: Signature, what: Described) -> Result<Round> {
        Round::begin(&self.inner, sig, what.type_name, what.op_name)
    }

    /// Waits until every member has called it: a dissemination barrier,
    /// `⌈log2 n⌉` rounds of messages.
    pub async fn barrier(&self) -> Result<()> {
        let what = described::<()>("");
        let round = self.begin(Signature::bare(Kind::Barrier), what)?;
        let result = match round.host_call() {
            Some(mut host) => shared::barrier(&mut host).await,
            // Boxed, as every path through messages below: its future is
            // large, and would otherwise be moved with every call on a host.
            None => Box::pin(agree::agree(&round)).await,
        };
        round.end(result)
    }

    /// Combines the values of all members with `op` and returns the result
    /// on every member. A vector is combined element by element (all must
    /// have the same length). The result is bitwise the same everywhere
    /// (see the crate documentation for the order of combination).
    ///
    /// Small values use recursive doubling (`log2 n` steps); vectors of 64
    /// KiB or more use reduce-scatter and all-gather (Rabenseifner).
    pub async fn all_reduce<T, O>(&self, value: T, op: O) -> Result<T>
    where
        T: Send + 'static,
        O: ReduceOperation<T>,
    {
        let reduction = op.into_reduction().0;
        let sig = Signature::of::<T>(Kind::AllReduce)
            .op(reduction.wire_id())
            .len(reduction.len(&value));
        let what = described::<T>(reduction.name());
        let round = self.begin(sig, what)?;
        let result = async {
            reduction.check()?;
            if let Some(mut host) = round.host_call() {
                return reduction
                    .reduce_shared(&round, &mut host, value, None)
                    .await?
                    .ok_or_else(|| Error::Codec("an all_reduce without a result".into()));
            }
            match reduction.all_reduce_large(&round, value) {
                Ok(large) => large.await,
                Err(value) => {
                    Box::pin(doubling::all_reduce(&round, reduction.as_ref(), value)).await
                }
            }
        }
        .await;
        round.end(result)
    }

    /// Combines the values of all members with `op` on rank `root`: returns
    /// `Some(result)` there and `None` elsewhere. Same result, bit for bit,
    /// as [`Communicator::all_reduce`].
    pub async fn reduce<T, O>(&self, value: T, op: O, root: u32) -> Result<Option<T>>
    where
        T: Send + 'static,
        O: ReduceOperation<T>,
    {
        let reduction = op.into_reduction().0;
        let sig = Signature::of::<T>(Kind::Reduce)
            .op(reduction.wire_id())
            .len(reduction.len(&value))
            .root(root);
        let what = described::<T>(reduction.name());
        let round = self.begin(sig, what)?;
        let result = async {
            self.check_root(root)?;
            reduction.check()?;
            if let Some(mut host) = round.host_call() {
                return reduction
                    .reduce_shared(&round, &mut host, value, Some(root))
                    .await;
            }
            let (result, ()) = Box::pin(async {
                tokio::try_join!(
                    rooted::reduce(&round, reduction.as_ref(), value, root),
                    agree::agree(&round)
                )
            })
            .await?;
            Ok(result)
        }
        .await;
        round.end(result)
    }

    /// Sends the value of rank `root` to every member: the root passes
    /// `Some(value)`, the others `None` (a value passed elsewhere is
    /// ignored). For bulk numeric data pass a [`hpx_runtime::PodVec`], which
    /// travels as raw bytes.
    pub async fn broadcast<T>(&self, value: Option<T>, root: u32) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let sig = Signature::of::<T>(Kind::Broadcast).root(root);
        let what = described::<T>("");
        let round = self.begin(sig, what)?;
        let result = async {
            self.check_root(root)?;
            if let Some(mut host) = round.host_call() {
                return shared::broadcast(&round, &mut host, value, root).await;
            }
            let (value, ()) = Box::pin(async {
                tokio::try_join!(rooted::broadcast(&round, value, root), agree::agree(&round))
            })
            .await?;
            Ok(value)
        }
        .await;
        round.end(result)
    }

    /// Collects every member's value on rank `root`: `Some(values in rank
    /// order)` there, `None` elsewhere.
    pub async fn gather<T>(&self, value: T, root: u32) -> Result<Option<Vec<T>>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let sig = Signature::of::<T>(Kind::Gather).root(root);
        let what = described::<T>("");
        let round = self.begin(sig, what)?;
        let result = async {
            self.check_root(root)?;
            if let Some(mut host) = round.host_call() {
                return shared::gather(&round, &mut host, value, Some(root)).await;
            }
            let (values, ()) = Box::pin(async {
                tokio::try_join!(rooted::gather(&round, value, root), agree::agree(&round))
            })
            .await?;
            Ok(values)
        }
        .await;
        round.end(result)
    }

    /// Hands out the values of rank `root`, one per member: the root passes
    /// `Some(values)` with one value per rank, the others `None`; each gets
    /// the value of its rank.
    pub async fn scatter<T>(&self, values: Option<Vec<T>>, root: u32) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let sig = Signature::of::<T>(Kind::Scatter).root(root);
        let what = described::<T>("");
        let round = self.begin(sig, what)?;
        let result = async {
            self.check_root(root)?;
            let (value, ()) =
                tokio::try_join!(rooted::scatter(&round, values, root), agree::agree(&round))?;
            Ok(value)
        }
        .await;
        round.end(result)
    }

    /// Every member's value, in rank order, on every member.
    pub async fn all_gather<T>(&self, value: T) -> Result<Vec<T>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let sig = Signature::of::<T>(Kind::AllGather);
        let what = described::<T>("");
        let round = self.begin(sig, what)?;
        let result = async {
            if let Some(mut host) = round.host_call() {
                return shared::gather(&round, &mut host, value, None)
                    .await?
                    .ok_or_else(|| Error::Codec("an all_gather without a result".into()));
            }
            Box::pin(exchange::all_gather(&round, value)).await
        }
        .await;
        round.end(result)
    }

    /// Personalized exchange: `values[i]` goes to rank `i` (one value per
    /// member); returns the values sent to this member, in rank order.
    pub async fn all_to_all<T>(&self, values: Vec<T>) -> Result<Vec<T>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let sig = Signature::of::<T>(Kind::AllToAll).len(values.len() as u64);
        let what = described::<T>("");
        let round = self.begin(sig, what)?;
        let result = async { exchange::all_to_all(&round, values).await }.await;
        round.end(result)
    }

    /// The combination of the values of ranks `0..=rank()` (prefix
    /// reduction), lower ranks first.
    pub async fn inclusive_scan<T, O>(&self, value: T, op: O) -> Result<T>
    where
        T: Clone + Send + 'static,
        O: ReduceOperation<T>,
    {
        Ok(self.scan(value, op, Kind::InclusiveScan).await?.0)
    }

    /// The combination of the values of ranks `0..rank()`, lower ranks
    /// first: `None` on rank 0, which has no predecessor.
    pub async fn exclusive_scan<T, O>(&self, value: T, op: O) -> Result<Option<T>>
    where
        T: Clone + Send + 'static,
        O: ReduceOperation<T>,
    {
        Ok(self.scan(value, op, Kind::ExclusiveScan).await?.1)
    }

    /// Both prefix reductions, for the scan of kind `kind`.
    async fn scan<T, O>(&self, value: T, op: O, kind: Kind) -> Result<(T, Option<T>)>
    where
        T: Clone + Send + 'static,
        O: ReduceOperation<T>,
    {
        let reduction = op.into_reduction().0;
        let sig = Signature::of::<T>(kind)
            .op(reduction.wire_id())
            .len(reduction.len(&value));
        let what = described::<T>(reduction.name());
        let round = self.begin(sig, what)?;
        let exclusive = matches!(kind, Kind::ExclusiveScan);
        let result = async {
            reduction.check()?;
            let (both, ()) = tokio::try_join!(
                scan::scan(&round, reduction.as_ref(), value, exclusive),
                agree::agree(&round)
            )?;
            Ok(both)
        }
        .await;
        round.end(result)
    }
}
