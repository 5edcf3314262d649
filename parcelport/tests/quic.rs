//! Two and three QUIC parcelports in one process, on 127.0.0.1: ordering,
//! coalescing, bulk payloads, flow control, loss and orderly shutdown.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hpx_parcelport::{
    Credit, LocalityId, NetConfig, Parcel, ParcelHandler, ParcelHeader, Parcelport, QuicParcelport,
    TransportError,
};
use tokio::sync::mpsc;

enum Event {
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

fn config(locality: u32, n: u32, rendezvous: std::net::SocketAddr, budget: usize) -> NetConfig {
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
        shared_dir: None,
    }
}

fn free_addr() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
}

async fn job(n: u32, budget: usize) -> Vec<(Arc<QuicParcelport>, mpsc::UnboundedReceiver<Event>)> {
    job_with(n, budget, None).await
}

async fn job_with(
    n: u32,
    budget: usize,
    shared_dir: Option<std::path::PathBuf>,
) -> Vec<(Arc<QuicParcelport>, mpsc::UnboundedReceiver<Event>)> {
    let rendezvous = free_addr();
    let starts = (0..n).map(|i| {
        QuicParcelport::start(NetConfig {
            shared_dir: shared_dir.clone(),
            ..config(i, n, rendezvous, budget)
        })
    });
    let ports = futures::future::join_all(starts).await;
    ports
        .into_iter()
        .map(|p| {
            let port = p.expect("bootstrap");
            let (tx, rx) = mpsc::unbounded_channel();
            port.attach(Arc::new(Collect(tx)));
            (port, rx)
        })
        .collect()
}

fn parcel(source: u32, dest: u32, seq: u64, payload: Bytes) -> Parcel {
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
async fn within(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .unwrap_or_else(|_| panic!("the test did not end within {TEST_DEADLINE:?}"));
}

async fn next_parcel(rx: &mut mpsc::UnboundedReceiver<Event>) -> (Parcel, Credit) {
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(Event::Parcel(p, c))) => (p, c),
        Ok(Some(Event::Lost(l, r))) => panic!("unexpected loss of {l}: {r}"),
        _ => panic!("no parcel arrived"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parcels_arrive_in_order_and_intact() {
    within(parcels_arrive_in_order_and_intact_body()).await;
}

async fn parcels_arrive_in_order_and_intact_body() {
    let mut job = job(3, 64 << 20).await;
    let addrs = job[0].0.addresses().to_vec();
    assert_eq!(addrs.len(), 3);
    for (i, (port, _)) in job.iter().enumerate() {
        assert_eq!(port.here(), LocalityId(i as u32));
        assert_eq!(port.addresses(), addrs.as_slice());
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_stops_reading_until_credit_returns() {
    within(a_full_budget_stops_reading_until_credit_returns_body()).await;
}

async fn a_full_budget_stops_reading_until_credit_returns_body() {
    let budget = 4 << 20;
    let mut job = job(2, budget).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_close_is_not_a_loss_but_abort_is() {
    within(orderly_close_is_not_a_loss_but_abort_is_body()).await;
}

async fn orderly_close_is_not_a_loss_but_abort_is_body() {
    let mut job = job(3, 1 << 20).await;
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
    // Locality 2 aborts: locality 0 reports it lost.
    job[2].0.abort("test abort");
    let rx = &mut job[0].1;
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(Event::Lost(l, reason))) => {
            assert_eq!(l, LocalityId(2));
            assert!(reason.contains("test abort"), "{reason}");
        }
        Ok(Some(Event::Parcel(..))) => panic!("unexpected parcel"),
        _ => panic!("the abort was not noticed"),
    }
    // Locality 1 closed in order and was never reported lost.
    assert!(job[0].1.try_recv().is_err(), "no second loss event");
    assert!(matches!(
        job[0].0.send(parcel(0, 2, 0, Bytes::new())),
        Err(TransportError::PeerLost { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_cannot_join() {
    within(wrong_secret_cannot_join_body()).await;
}

async fn wrong_secret_cannot_join_body() {
    let rendezvous = free_addr();
    let root = QuicParcelport::start(NetConfig {
        startup_timeout: Duration::from_secs(3),
        ..config(0, 2, rendezvous, 1 << 20)
    });
    let intruder = QuicParcelport::start(NetConfig {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_on_one_host_go_through_shared_memory() {
    within(large_payloads_on_one_host_go_through_shared_memory_body()).await;
}

async fn large_payloads_on_one_host_go_through_shared_memory_body() {
    let dir = std::env::temp_dir().join(format!("hpx-shm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut job = job_with(2, 64 << 20, Some(dir.clone())).await;
    let big = Bytes::from(
        (0..(3usize << 20))
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    );
    for seq in 0..5 {
        job[0].0.send(parcel(0, 1, seq, big.clone())).expect("send");
        job[0]
            .0
            .send(parcel(0, 1, 100 + seq, Bytes::from_static(b"small")))
            .expect("send");
    }
    for seq in 0..5 {
        let (p, _) = next_parcel(&mut job[1].1).await;
        assert_eq!(p.header.seq, seq);
        assert_eq!(
            p.header.flags, 0,
            "the receiver sees the payload, not the file"
        );
        assert_eq!(p.payload, big);
        let (p, _) = next_parcel(&mut job[1].1).await;
        assert_eq!(p.payload.as_ref(), b"small");
    }
    let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    let _ = std::fs::remove_dir(&dir);
}
