//! The bootstrap, whatever the transport: the root gathers every other
//! locality's join at its rendezvous and answers each with the table of
//! addresses ([`gather`]); the others dial the rendezvous until the root
//! answers ([`reach_root`]) and read the table ([`receive_table`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::Core;
use crate::handshake::{Hello, LocalityTable, PeerAddress};
use crate::{LocalityId, TransportError};

/// Where one locality listens, and where its heartbeats go.
pub(crate) type Entry = (SocketAddr, SocketAddr);

/// Failed dials of the rendezvous are repeated no more often than this.
const MIN_DIAL_INTERVAL: Duration = Duration::from_millis(100);
/// How long after its own deadline a joining locality waits for the root's answer.
const TABLE_GRACE: Duration = Duration::from_secs(5);

/// An authenticated join received at the root's rendezvous.
pub(crate) trait JoinRequest: Send {
    /// The joining locality's hello.
    fn hello(&self) -> &Hello;

    /// Sends the bootstrap's answer (the table, or why it failed) as the last
    /// message of the join.
    fn answer(&mut self, msg: &[u8]) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Waits, briefly, until the joining locality has the answer.
    fn settle(&mut self) -> impl Future<Output = ()> + Send;
}

/// The root's bootstrap, done: the table, encoded, and the joins to answer with it.
pub(crate) struct Gathered<J> {
    /// Every locality's entry, indexed by id.
    pub(crate) table: Vec<Entry>,
    /// The encoded [`LocalityTable::Ready`].
    pub(crate) answer: Vec<u8>,
    /// The joins, in locality order.
    pub(crate) joined: Vec<(LocalityId, J)>,
}

/// Gathers the joins of every other locality until `deadline`. A join
/// that cannot be used (twice the same locality, a bad address) is
/// answered with the reason and dropped; if some locality is missing at the
/// deadline, every join is answered with the failure.
pub(crate) async fn gather<J: JoinRequest>(
    core: &Core,
    joins: &mut mpsc::UnboundedReceiver<J>,
    deadline: Instant,
    allowed: Duration,
) -> Result<Gathered<J>, TransportError> {
    let n = core.n;
    let mut joined: Vec<Option<(J, Entry)>> = (0..n).map(|_| None).collect();
    let mut count = 1;
    while count < n {
        match timeout_at(deadline, joins.recv()).await {
            Ok(Some(mut join)) => {
                let id = join.hello().locality;
                let outcome = match joined.get(id.index()) {
                    None => Err(format!("no locality {id} in this job")),
                    Some(Some(_)) => Err(format!("locality {id} joined twice")),
                    Some(None) => join
                        .hello()
                        .listen_addr
                        .parse::<SocketAddr>()
                        .map(|a| (a, SocketAddr::new(a.ip(), join.hello().beat_port)))
                        .map_err(|e| format!("locality {id} sent a bad address: {e}")),
                };
                match outcome {
                    Ok(entry) => {
                        joined[id.index()] = Some((join, entry));
                        count += 1;
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "rejecting join");
                        let msg = LocalityTable::Failed(reason).encode()?;
                        let _ = join.answer(&msg).await;
                    }
                }
            }
            Ok(None) => return Err(TransportError::Bootstrap("rendezvous closed".into())),
            Err(_) => {
                let missing: Vec<String> = (1..n as usize)
                    .filter(|i| joined[*i].is_none())
                    .map(|i| i.to_string())
                    .collect();
                let reason = format!(
                    "{} of {} localities did not arrive within {:.1?} (missing: {})",
                    missing.len(),
                    n,
                    allowed,
                    missing.join(", ")
                );
                let msg = LocalityTable::Failed(reason.clone()).encode()?;
                for (join, _) in joined.iter_mut().flatten() {
                    let _ = join.answer(&msg).await;
                    join.settle().await;
                }
                return Err(TransportError::Bootstrap(reason));
            }
        }
    }
    let mut table = vec![core.entry()];
    table.extend(joined.iter().skip(1).flatten().map(|(_, entry)| *entry));
    let answer = LocalityTable::Ready(
        table
            .iter()
            .map(|(listen, beat)| PeerAddress {
                listen: listen.to_string(),
                beat_port: beat.port(),
            })
            .collect(),
    )
    .encode()?;
    let joined = joined
        .into_iter()
        .enumerate()
        .filter_map(|(i, slot)| slot.map(|(join, _)| (LocalityId(i as u32), join)))
        .collect();
    Ok(Gathered {
        table,
        answer,
        joined,
    })
}

/// Dials the root's rendezvous at `rendezvous` with `dial` until it answers,
/// waiting longer for each attempt; gives up at `deadline`, or at once if
/// the root refuses this locality's secret.
pub(crate) async fn reach_root<C, F>(
    rendezvous: SocketAddr,
    deadline: Instant,
    mut dial: impl FnMut() -> F,
) -> Result<C, TransportError>
where
    F: Future<Output = Result<C, TransportError>>,
{
    let mut attempt = Duration::from_millis(500);
    loop {
        let started = Instant::now();
        let err = match timeout(attempt, dial()).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e @ TransportError::Authentication(_))) => return Err(e),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {attempt:?}"),
        };
        if Instant::now() >= deadline {
            return Err(TransportError::Bootstrap(format!(
                "cannot reach the root locality at {rendezvous}: {err}"
            )));
        }
        // A refused connection fails at once: do not spin until the root listens.
        sleep_until((started + MIN_DIAL_INTERVAL).min(deadline)).await;
        attempt = (attempt * 2).min(Duration::from_secs(2));
    }
}

/// Waits for the root's answer (`read`, the next message of the join) until
/// a grace period after `deadline` (the root answers once everyone is in,
/// or at its own deadline) and returns the table of `n` entries.
pub(crate) async fn receive_table(
    read: impl Future<Output = Result<Vec<u8>, TransportError>>,
    deadline: Instant,
    n: u32,
) -> Result<Vec<Entry>, TransportError> {
    let table = match timeout_at(deadline + TABLE_GRACE, read).await {
        Ok(msg) => LocalityTable::decode(&msg?)?,
        Err(_) => {
            return Err(TransportError::Bootstrap(
                "the root did not send the locality table in time".into(),
            ))
        }
    };
    let addrs = match table {
        LocalityTable::Ready(addrs) => addrs,
        LocalityTable::Failed(reason) => return Err(TransportError::Bootstrap(reason)),
    };
    if addrs.len() != n as usize {
        return Err(TransportError::Bootstrap(format!(
            "the root sent {} addresses for {} localities",
            addrs.len(),
            n
        )));
    }
    addrs
        .iter()
        .map(|a| {
            a.listen
                .parse::<SocketAddr>()
                .map(|l| (l, SocketAddr::new(l.ip(), a.beat_port)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Bootstrap(format!("bad address in the table: {e}")))
}
