//! The tests every network parcelport passes, on 127.0.0.1 in one process:
//! ordering, coalescing, bulk payloads, flow control, loss and orderly
//! shutdown, authentication, all-to-all traffic. A test file names its
//! [`Transport`] and instantiates them with [`transport_tests!`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use hpx_parcelport::{
    Credit, LocalityId, NetConfig, Parcel, ParcelHandler, ParcelHeader, Parcelport, TransportError,
};
use tokio::sync::mpsc;

/// A started parcelport of the transport under test.
pub type Port = Arc<dyn Parcelport>;

/// The transport under test.
#[derive(Clone, Copy)]
pub struct Transport {
    /// Starts a locality.
    pub start: fn(NetConfig) -> BoxFuture<'static, Result<Port, TransportError>>,
    /// A free address on 127.0.0.1 for the rendezvous.
    pub free_addr: fn() -> SocketAddr,
}

/// The tests of this file, for `$transport` (a [`Transport`]).
#[macro_export]
macro_rules! transport_tests {
    ($transport:expr) => {
        $crate::transport_tests!(
            $transport,
            parcels_arrive_in_order_and_intact,
            bulk_payloads_arrive_intact,
            all_localities_send_to_all_at_once,
            a_full_budget_stops_reading_until_credit_returns,
            what_was_sent_before_an_orderly_close_arrives,
            orderly_close_is_not_a_loss_but_abort_is,
            wrong_secret_cannot_join
        );
    };
    ($transport:expr, $($test:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $crate::common::within($crate::common::$test($transport)).await;
            }
        )+
    };
}

/// What a handler saw.
pub enum Event {
    Parcel(Parcel, Credit),
    Lost(LocalityId, String),
}

struct Collect(mpsc::UnboundedSender<Event>);

impl ParcelHandler for Collect {
    fn on_parcel(&self, parcel: Parcel, credit: Credit) {
        let _ = self.0.send(Event::Parcel(parcel, credit));
    }
    fn on_peer_lost(&self, locality: LocalityId, reason: &str) {
        let _ = self.0.send(Event::Lost(locality, reason.to_owned()));
    }
}

/// The settings of locality `locality` of `n`.
pub fn config(locality: u32, n: u32, rendezvous: SocketAddr, budget: usize) -> NetConfig {
    NetConfig {
        locality: LocalityId(locality),
        num_localities: n,
        rendezvous,
        bind: "127.0.0.1".parse().expect("ip"),
        secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        startup_timeout: Duration::from_secs(10),
        peer_timeout: Duration::from_secs(2),
        max_payload: 64 << 20,
        incoming_budget: budget,
    }
}

/// Attaches a collecting handler to `port`.
pub fn attach(port: Port) -> (Port, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    port.attach(Arc::new(Collect(tx)));
    (port, rx)
}

/// Starts a job of `n` localities with the given incoming budget.
pub async fn job(
    net: Transport,
    n: u32,
    budget: usize,
) -> Vec<(Port, mpsc::UnboundedReceiver<Event>)> {
    let rendezvous = (net.free_addr)();
    let starts = (0..n).map(|i| (net.start)(config(i, n, rendezvous, budget)));
    let ports = futures::future::join_all(starts).await;
    ports
        .into_iter()
        .map(|p| attach(p.expect("bootstrap")))
        .collect()
}

/// A parcel `source` → `dest` number `seq`.
pub fn parcel(source: u32, dest: u32, seq: u64, payload: Bytes) -> Parcel {
    Parcel {
        header: ParcelHeader {
            kind: 7,
            flags: 0,
            source: LocalityId(source),
            dest: LocalityId(dest),
            tag: 99,
            seq,
        },
        payload,
    }
}

/// Every test gets this deadline: a hung transport fails the test.
const TEST_DEADLINE: Duration = Duration::from_secs(90);

/// Runs a test body, failing the test if it does not end within [`TEST_DEADLINE`].
pub async fn within(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .unwrap_or_else(|_| panic!("the test did not end within {TEST_DEADLINE:?}"));
}

/// The next parcel; a loss or silence fails the test.
pub async fn next_parcel(rx: &mut mpsc::UnboundedReceiver<Event>) -> (Parcel, Credit) {
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(Event::Parcel(p, c))) => (p, c),
        Ok(Some(Event::Lost(l, r))) => panic!("unexpected loss of {l}: {r}"),
        _ => panic!("no parcel arrived"),
    }
}

/// The next loss reported, within `wait`; a parcel or silence fails the test.
pub async fn next_loss(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    wait: Duration,
) -> (LocalityId, String) {
    match tokio::time::timeout(wait, rx.recv()).await {
        Ok(Some(Event::Lost(l, reason))) => (l, reason),
        Ok(Some(Event::Parcel(..))) => panic!("unexpected parcel"),
        _ => panic!("no loss was reported within {wait:?}"),
    }
}

pub async fn parcels_arrive_in_order_and_intact(net: Transport) {
    let mut job = job(net, 3, 64 << 20).await;
    let addrs = job[0].0.addresses();
    assert_eq!(addrs.len(), 3);
    for (i, (port, _)) in job.iter().enumerate() {
        assert_eq!(port.here(), LocalityId(i as u32));
        assert_eq!(port.num_localities(), 3);
        assert_eq!(port.addresses(), addrs);
    }
    // Many small parcels (coalesced) interleaved with large ones (zero copy).
    let count = 20_000u64;
    for seq in 0..count {
        let payload = if seq % 5000 == 0 {
            Bytes::from(vec![(seq % 251) as u8; 1 << 20])
        } else {
            Bytes::from(seq.to_le_bytes().to_vec())
        };
        job[1]
            .0
            .send(parcel(1, 2, seq, payload.clone()))
            .expect("send");
        job[0].0.send(parcel(0, 2, seq, payload)).expect("send");
    }
    let rx = &mut job[2].1;
    let mut next = [0u64; 2];
    for _ in 0..2 * count {
        let (p, _) = next_parcel(rx).await;
        let from = p.header.source.index();
        assert_eq!(p.header.seq, next[from], "parcels from {from} out of order");
        next[from] += 1;
        assert_eq!(p.header.tag, 99);
        if p.header.seq % 5000 == 0 {
            assert_eq!(p.payload.len(), 1 << 20);
            assert!(p.payload.iter().all(|b| *b == (p.header.seq % 251) as u8));
        } else {
            assert_eq!(p.payload.as_ref(), p.header.seq.to_le_bytes());
        }
    }
    // A parcel to oneself is delivered without the network.
    job[2]
        .0
        .send(parcel(2, 2, 5, Bytes::from_static(b"self")))
        .expect("send to self");
    let (p, _) = next_parcel(&mut job[2].1).await;
    assert_eq!(p.payload.as_ref(), b"self");
    assert!(matches!(
        job[0].0.send(parcel(0, 3, 0, Bytes::new())),
        Err(TransportError::NoSuchLocality(LocalityId(3)))
    ));
    assert!(matches!(
        job[0]
            .0
            .send(parcel(0, 1, 0, Bytes::from(vec![0u8; (64 << 20) + 1]))),
        Err(TransportError::Protocol(_))
    ));
}

pub async fn bulk_payloads_arrive_intact(net: Transport) {
    let mut job = job(net, 2, 64 << 20).await;
    let big = Bytes::from(
        (0..(64usize << 20))
            .map(|i| (i % 249) as u8)
            .collect::<Vec<u8>>(),
    );
    job[0].0.send(parcel(0, 1, 0, big.clone())).expect("send");
    job[0]
        .0
        .send(parcel(0, 1, 1, Bytes::from_static(b"after")))
        .expect("send");
    job[1].0.send(parcel(1, 0, 0, big.clone())).expect("send");
    let (p, credit) = next_parcel(&mut job[1].1).await;
    assert_eq!(p.header.seq, 0);
    assert!(p.payload == big, "the 64 MiB payload arrived damaged");
    drop(credit);
    let (p, _) = next_parcel(&mut job[1].1).await;
    assert_eq!(p.payload.as_ref(), b"after");
    let (p, _) = next_parcel(&mut job[0].1).await;
    assert!(p.payload == big, "the 64 MiB payload arrived damaged");
}

pub async fn all_localities_send_to_all_at_once(net: Transport) {
    let n = 4u32;
    let count = 500u64;
    let mut job = job(net, n, 64 << 20).await;
    // Every locality sends to every locality (itself included) at the same
    // time, so each pair dials each other at once.
    for seq in 0..count {
        for from in 0..n {
            for to in 0..n {
                let payload = Bytes::from(vec![from as u8; 1 + (seq as usize % 3) * 20_000]);
                job[from as usize]
                    .0
                    .send(parcel(from, to, seq, payload))
                    .expect("send");
            }
        }
    }
    for (to, (_, rx)) in job.iter_mut().enumerate() {
        let mut next = vec![0u64; n as usize];
        for _ in 0..count * u64::from(n) {
            let (p, _) = next_parcel(rx).await;
            let from = p.header.source.index();
            assert_eq!(p.header.dest.index(), to);
            // Parcels to oneself are each handed to the handler on a task
            // of their own: only those through the network keep their order.
            if from != to {
                assert_eq!(
                    p.header.seq, next[from],
                    "parcels {from} → {to} out of order"
                );
            }
            next[from] += 1;
            assert!(p.payload.iter().all(|b| usize::from(*b) == from));
        }
        assert!(next.iter().all(|c| *c == count));
    }
    futures::future::join_all(job.iter().map(|(port, _)| port.flush_and_close())).await;
    for (_, rx) in &mut job {
        assert!(rx.try_recv().is_err(), "nothing but the parcels sent");
    }
}

pub async fn a_full_budget_stops_reading_until_credit_returns(net: Transport) {
    let budget = 4 << 20;
    let mut job = job(net, 2, budget).await;
    let chunk = 1 << 20;
    let total = 32;
    for seq in 0..total {
        job[0]
            .0
            .send(parcel(0, 1, seq, Bytes::from(vec![1u8; chunk])))
            .expect("send");
    }
    let rx = &mut job[1].1;
    let mut held = Vec::new();
    for _ in 0..budget / chunk {
        held.push(next_parcel(rx).await);
    }
    // The budget is spent: nothing more is delivered while the credits are held.
    let more = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(more.is_err(), "a parcel arrived beyond the budget");
    held.clear();
    let mut received = budget / chunk;
    while received < total as usize {
        let (p, credit) = next_parcel(rx).await;
        assert_eq!(p.payload.len(), chunk);
        drop(credit);
        received += 1;
    }
}

pub async fn what_was_sent_before_an_orderly_close_arrives(net: Transport) {
    let mut job = job(net, 3, 64 << 20).await;
    let count = 200u64;
    let parcels: Vec<Parcel> = (0..count)
        .flat_map(|seq| {
            (1..3).map(move |dest| {
                let payload = Bytes::from(vec![dest as u8; 1 + (seq as usize % 7) * 5000]);
                parcel(0, dest, seq, payload)
            })
        })
        .collect();
    // The root has no connection to 1 and 2 yet: its senders dial them
    // while it already closes.
    for p in parcels {
        job[0].0.send(p).expect("send");
    }
    job[0].0.flush_and_close().await;
    for (dest, (_, rx)) in job.iter_mut().enumerate().skip(1) {
        for seq in 0..count {
            let (p, _) = next_parcel(rx).await;
            assert_eq!(p.header.seq, seq);
            assert!(p.payload.iter().all(|b| usize::from(*b) == dest));
        }
        assert!(rx.try_recv().is_err(), "no loss of the root");
    }
}

pub async fn orderly_close_is_not_a_loss_but_abort_is(net: Transport) {
    let mut job = job(net, 3, 1 << 20).await;
    job[1]
        .0
        .send(parcel(1, 0, 1, Bytes::from_static(b"x")))
        .expect("send");
    next_parcel(&mut job[0].1).await;
    job[2]
        .0
        .send(parcel(2, 0, 1, Bytes::from_static(b"y")))
        .expect("send");
    next_parcel(&mut job[0].1).await;
    // Locality 1 closes in order: locality 0 reports no loss.
    job[1].0.flush_and_close().await;
    assert!(job[1].0.send(parcel(1, 0, 2, Bytes::new())).is_err());
    // Locality 2 aborts: locality 0 reports it lost, with the reason.
    job[2].0.abort("test abort");
    let (l, reason) = next_loss(&mut job[0].1, Duration::from_secs(10)).await;
    assert_eq!(l, LocalityId(2));
    assert!(reason.contains("test abort"), "{reason}");
    // Locality 1 closed in order and was never reported lost.
    assert!(job[0].1.try_recv().is_err(), "no second loss event");
    assert!(matches!(
        job[0].0.send(parcel(0, 2, 0, Bytes::new())),
        Err(TransportError::PeerLost { .. })
    ));
}

pub async fn wrong_secret_cannot_join(net: Transport) {
    let rendezvous = (net.free_addr)();
    let root = (net.start)(NetConfig {
        startup_timeout: Duration::from_secs(3),
        ..config(0, 2, rendezvous, 1 << 20)
    });
    let intruder = (net.start)(NetConfig {
        secret: b"not the secret, not the secret..".to_vec(),
        startup_timeout: Duration::from_secs(3),
        ..config(1, 2, rendezvous, 1 << 20)
    });
    let (root, intruder) = tokio::join!(root, intruder);
    assert!(
        matches!(intruder, Err(TransportError::Authentication(_))),
        "{:?}",
        intruder.err()
    );
    match root {
        Err(TransportError::Bootstrap(msg)) => assert!(msg.contains("missing: 1"), "{msg}"),
        other => panic!("root should time out, got {:?}", other.err()),
    }
}
