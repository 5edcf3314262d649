//! SPMD helpers: running an action on every locality (or every member of a
//! communicator) and collecting the results, and a distributed latch.
//!
//! Running work where an element of a distributed array lives belongs to
//! the arrays (`PartitionedVector`), which build on this crate.

use std::collections::HashMap;
use std::sync::Arc;

use hpx_runtime::{Action, Error, LocalityId, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::communicator::Communicator;

/// Calls `action` with a copy of `args` on every locality at once and
/// returns the results in locality order (the first error, if any). The
/// same as [`hpx_runtime::broadcast_action`].
pub async fn for_each_locality<A: Action>(action: A, args: A::Args) -> Result<Vec<A::Output>>
where
    A::Args: Clone,
{
    hpx_runtime::broadcast_action(action, args).await
}

/// Calls `action` with a copy of `args` on every member of `comm` at once
/// and returns the results in rank order (the first error, if any). Any
/// locality may call it, member or not.
pub async fn for_each_member<A: Action>(
    comm: &Communicator,
    action: A,
    args: A::Args,
) -> Result<Vec<A::Output>>
where
    A::Args: Clone,
{
    let calls: Vec<_> = comm
        .members()
        .iter()
        .map(|m| hpx_runtime::async_at(*m, action, args.clone()))
        .collect();
    futures::future::join_all(calls).await.into_iter().collect()
}

/// A latch shared by all localities (C++'s `std::latch`, HPX's
/// `distributed::latch`): it opens once `count` arrivals have been counted
/// down, from any localities, and stays open.
///
/// Every locality that uses the latch opens it by name with the same
/// count; the first to do so creates it. It lives on one locality, chosen
/// by a hash of the name, for the rest of the run. Waiting fails with
/// [`Error::LocalityLost`] if that locality is lost.
///
/// ```no_run
/// # async fn example() -> Result<(), hpx_runtime::Error> {
/// let all = hpx_collectives::spmd::Latch::new("loaded", hpx_runtime::get_num_localities().into()).await?;
/// // ... load this locality's part ...
/// all.arrive_and_wait().await?; // every locality has loaded its part
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Latch {
    name: Arc<str>,
    home: LocalityId,
}

/// A latch's state on its home locality.
pub(crate) struct LatchState {
    count: u64,
    remaining: watch::Sender<u64>,
}

/// The latches homed on this locality, by name.
type Latches = HashMap<String, LatchState>;

/// The latches homed on this locality (an extension of the locality).
fn latches() -> Result<Arc<parking_lot::Mutex<Latches>>> {
    hpx_runtime::extension(|| parking_lot::Mutex::new(Latches::new()))
}

/// A result that travels as a value, so that the caller gets the error
/// itself rather than [`Error::Remote`].
#[derive(Serialize, Deserialize)]
struct Reply<T>(std::result::Result<T, Error>);

/// Creates latch `name` with `count` here, or checks that it has that count.
#[hpx_macros::action(crate = hpx_runtime, direct)]
async fn latch_open(name: String, count: u64) -> Reply<()> {
    Reply(latches().and_then(|latches| {
        let mut latches = latches.lock();
        match latches.get(&name) {
            Some(latch) if latch.count != count => Err(Error::BadArgument(format!(
                "latch {name:?} counts {} arrivals, not {count}",
                latch.count
            ))),
            Some(_) => Ok(()),
            None => {
                latches.insert(
                    name,
                    LatchState {
                        count,
                        remaining: watch::Sender::new(count),
                    },
                );
                Ok(())
            }
        }
    }))
}

/// Counts `n` arrivals down on latch `name`; returns how many remain.
#[hpx_macros::action(crate = hpx_runtime, direct)]
async fn latch_count_down(name: String, n: u64) -> Reply<u64> {
    Reply(latches().and_then(|latches| {
        let latches = latches.lock();
        let latch = latches
            .get(&name)
            .ok_or_else(|| Error::BadArgument(format!("no latch {name:?} here")))?;
        let mut outcome = Ok(0);
        latch.remaining.send_if_modified(|remaining| {
            if n > *remaining {
                outcome = Err(Error::BadArgument(format!(
                    "latch {name:?}: counting down {n} with {remaining} arrivals left"
                )));
                return false;
            }
            *remaining -= n;
            outcome = Ok(*remaining);
            n > 0
        });
        outcome
    }))
}

/// Arrivals still missing on latch `name`.
#[hpx_macros::action(crate = hpx_runtime, direct)]
async fn latch_remaining(name: String) -> Reply<u64> {
    Reply(latches().and_then(|latches| {
        latches
            .lock()
            .get(&name)
            .map(|latch| *latch.remaining.borrow())
            .ok_or_else(|| Error::BadArgument(format!("no latch {name:?} here")))
    }))
}

/// Returns once latch `name` is open.
#[hpx_macros::action(crate = hpx_runtime, direct)]
async fn latch_wait(name: String) -> Reply<()> {
    let remaining = latches().and_then(|latches| {
        latches
            .lock()
            .get(&name)
            .map(|latch| latch.remaining.subscribe())
            .ok_or_else(|| Error::BadArgument(format!("no latch {name:?} here")))
    });
    let mut remaining = match remaining {
        Ok(rx) => rx,
        Err(e) => return Reply(Err(e)),
    };
    Reply(
        remaining
            .wait_for(|r| *r == 0)
            .await
            .map(|_| ())
            .map_err(|_| Error::Aborted(format!("latch {name:?} was dropped"))),
    )
}

impl Latch {
    /// Opens the latch `name` that opens after `count` arrivals, creating
    /// it on first use.
    ///
    /// Errors: [`Error::BadArgument`] if it exists with another count.
    pub async fn new(name: &str, count: u64) -> Result<Latch> {
        let home = hpx_runtime::hash::home_of(
            &[b"latch:", name.as_bytes()],
            hpx_runtime::get_num_localities(),
        );
        hpx_runtime::async_at(home, latch_open, (name.to_owned(), count))
            .await?
            .0?;
        Ok(Latch {
            name: name.into(),
            home,
        })
    }

    /// The latch's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The locality that holds the latch.
    pub fn home(&self) -> LocalityId {
        self.home
    }

    /// Counts `n` arrivals down; returns how many remain.
    ///
    /// Errors: [`Error::BadArgument`] if fewer than `n` remain.
    pub async fn count_down(&self, n: u64) -> Result<u64> {
        hpx_runtime::async_at(self.home, latch_count_down, (self.name.to_string(), n))
            .await?
            .0
    }

    /// Waits until the latch is open.
    pub async fn wait(&self) -> Result<()> {
        hpx_runtime::async_at(self.home, latch_wait, self.name.to_string())
            .await?
            .0
    }

    /// Whether the latch is open, without waiting.
    pub async fn try_wait(&self) -> Result<bool> {
        let remaining = hpx_runtime::async_at(self.home, latch_remaining, self.name.to_string())
            .await?
            .0?;
        Ok(remaining == 0)
    }

    /// Counts one arrival down and waits until the latch is open.
    pub async fn arrive_and_wait(&self) -> Result<()> {
        self.count_down(1).await?;
        self.wait().await
    }
}
