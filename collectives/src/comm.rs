//! The shared state of one communicator on this locality ([`CommInner`]),
//! and the world communicator of all localities.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use hpx_runtime::hash::fnv1a_parts as fnv1a;
use hpx_runtime::{Error, LocalityId, Result};

use crate::host::HostSegment;
use crate::session::{session, Session};

/// The shared state of a communicator.
pub(crate) struct CommInner {
    /// The id that messages carry (0 for the world).
    pub id: u64,
    /// The name given at creation.
    pub name: Arc<str>,
    /// The members, by rank.
    pub members: Arc<[LocalityId]>,
    /// This locality's rank.
    pub rank: u32,
    /// The generation of the next call.
    next_gen: AtomicU64,
    session: Weak<Session>,
    /// The shared region of the members, once opened (`None` when they are
    /// not all on this host).
    host: OnceLock<Option<HostSegment>>,
}

impl CommInner {
    /// A communicator of `members`, in which this locality has `rank`.
    pub(crate) fn new(
        session: Weak<Session>,
        id: u64,
        name: Arc<str>,
        members: Arc<[LocalityId]>,
        rank: u32,
    ) -> CommInner {
        CommInner {
            id,
            name,
            members,
            rank,
            next_gen: AtomicU64::new(0),
            session,
            host: OnceLock::new(),
        }
    }

    /// The world of `n` localities, as seen from `here`.
    fn world(session: Weak<Session>, here: LocalityId, n: u32) -> CommInner {
        CommInner::new(
            session,
            0,
            "world".into(),
            (0..n).map(LocalityId).collect(),
            here.0,
        )
    }

    /// The session this communicator belongs to.
    pub(crate) fn session(&self) -> Result<Arc<Session>> {
        self.session.upgrade().ok_or(Error::NotRunning)
    }

    /// The members' shared region, opened on first use; `None` where they
    /// are not all on this host.
    pub(crate) fn host(&self) -> Result<Option<&HostSegment>> {
        if let Some(host) = self.host.get() {
            return Ok(host.as_ref());
        }
        let ids: Vec<u8> = self
            .members
            .iter()
            .flat_map(|m| m.0.to_le_bytes())
            .collect();
        let key = format!("coll-{:016x}-{:016x}", self.id, fnv1a(&[&ids]));
        let opened = HostSegment::open(&key, &self.members, self.rank)?;
        Ok(self.host.get_or_init(|| opened).as_ref())
    }

    /// Takes the generation of the next call.
    pub(crate) fn next_generation(&self) -> u64 {
        self.next_gen.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for CommInner {
    fn drop(&mut self) {
        if let Some(session) = self.session.upgrade() {
            session.mailbox.lock().forget(self.id);
        }
    }
}

/// The world communicator of this locality (kept by its session).
pub(crate) fn world() -> Result<Arc<CommInner>> {
    let session = session()?;
    Ok(session
        .world
        .get_or_init(|| {
            Arc::new(CommInner::world(
                Arc::downgrade(&session),
                session.here,
                hpx_runtime::get_num_localities(),
            ))
        })
        .clone())
}
