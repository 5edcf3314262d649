//! Shared-memory parcelports of one job in one process, in a directory of
//! their own: ordering, large payloads, all-to-all, back-pressure on a full
//! ring, abort reasons, orderly ends and the files left behind (none).

// The network parcelports' harness: its handler, parcels and waits (its
// tests and job are theirs).
#[allow(dead_code, unused_macros)]
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{attach, next_loss, next_parcel, parcel, within, Event};
use hpx_parcelport::{LocalityId, Parcelport, ShmConfig, ShmInbox, ShmParcelport};
use tokio::sync::mpsc;

/// A directory of the test's own, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("hpx-shm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Dir(dir)
    }

    fn files(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Port = Arc<ShmParcelport>;

/// `n` localities of one host, each with its handler.
fn job(dir: &Dir, n: u32, budget: usize) -> Vec<(Port, mpsc::UnboundedReceiver<Event>)> {
    ports(dir, n, budget)
        .into_iter()
        .map(|port| {
            let (_, rx) = attach(port.clone());
            (port, rx)
        })
        .collect()
}

/// `n` localities of one host, started, no handler attached yet (nothing
/// is read until one is).
fn ports(dir: &Dir, n: u32, budget: usize) -> Vec<Port> {
    let inboxes: Vec<ShmInbox> = (0..n)
        .map(|i| {
            ShmInbox::create(ShmConfig {
                dir: dir.0.clone(),
                secret: b"0123456789abcdef0123456789abcdef".to_vec(),
                locality: LocalityId(i),
                num_localities: n,
                max_payload: 64 << 20,
                incoming_budget: budget,
            })
            .expect("inbox")
        })
        .collect();
    inboxes
        .into_iter()
        .map(|inbox| inbox.start().expect("start").expect("peers on this host"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parcels_and_large_payloads_arrive_in_order_and_nothing_is_left() {
    within(async {
        let dir = Dir::new("order");
        let mut job = job(&dir, 2, 64 << 20);
        assert!(job[0].0.reaches(LocalityId(1)));
        assert_eq!(job[0].0.route(LocalityId(1)), "shm");
        assert_eq!(job[0].0.route(LocalityId(0)), "self");
        let big = Bytes::from(
            (0..(3usize << 20))
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        // Small parcels, parcels that fill the ring and payloads that go
        // apart, interleaved: one order.
        for seq in 0..3000u64 {
            let payload = match seq % 1000 {
                500 => big.clone(),
                k => Bytes::from(vec![seq as u8; (k as usize * 53) % 20_000]),
            };
            job[0].0.send(parcel(0, 1, seq, payload)).expect("send");
        }
        for seq in 0..3000u64 {
            let (p, _) = next_parcel(&mut job[1].1).await;
            assert_eq!(p.header.seq, seq);
            assert_eq!(
                p.header.flags, 0,
                "the receiver sees the payload, not a file"
            );
            if seq % 1000 == 500 {
                assert_eq!(p.payload, big);
            } else {
                assert_eq!(p.payload.len(), ((seq % 1000) as usize * 53) % 20_000);
                assert!(p.payload.iter().all(|b| *b == seq as u8));
            }
        }
        let closes: Vec<_> = job.iter().map(|(p, _)| p.flush_and_close()).collect();
        futures::future::join_all(closes).await;
        assert!(
            job[0].0.send(parcel(0, 1, 0, Bytes::new())).is_err(),
            "closed"
        );
        assert_eq!(dir.files(), Vec::<String>::new(), "files left behind");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_locality_sends_to_every_other_at_once() {
    within(async {
        let dir = Dir::new("all");
        let n = 5u32;
        let mut job = job(&dir, n, 64 << 20);
        for (i, (port, _)) in job.iter().enumerate() {
            for j in (0..n).filter(|j| *j != i as u32) {
                for seq in 0..200u64 {
                    let payload = Bytes::from(vec![i as u8; (seq as usize * 7) % 3000]);
                    port.send(parcel(i as u32, j, seq, payload)).expect("send");
                }
            }
        }
        for (j, (_, rx)) in job.iter_mut().enumerate() {
            let mut next_seq = vec![0u64; n as usize];
            for _ in 0..200 * (n - 1) {
                let (p, _) = next_parcel(rx).await;
                let from = p.header.source.0 as usize;
                assert_ne!(from, j);
                assert_eq!(p.header.seq, next_seq[from], "order from {from} to {j}");
                assert!(p.payload.iter().all(|b| *b == from as u8));
                next_seq[from] += 1;
            }
        }
        let closes: Vec<_> = job.iter().map(|(p, _)| p.flush_and_close()).collect();
        futures::future::join_all(closes).await;
        assert_eq!(dir.files(), Vec::<String>::new(), "files left behind");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_holds_the_sender_until_credit_returns() {
    within(async {
        let dir = Dir::new("budget");
        let mut job = job(&dir, 2, 100_000);
        for seq in 0..100u64 {
            job[0]
                .0
                .send(parcel(0, 1, seq, Bytes::from(vec![1u8; 10_000])))
                .expect("send never blocks");
        }
        // Hold every credit: about ten parcels fit the budget.
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(next_parcel(&mut job[1].1).await);
        }
        let early = tokio::time::timeout(Duration::from_millis(300), async {
            let mut more = 0;
            while let Some(Event::Parcel(p, c)) = job[1].1.recv().await {
                more += 1;
                held.push((p, c));
            }
            more
        })
        .await;
        assert!(early.is_err(), "the receiver kept reading past its budget");
        assert!(
            held.len() <= 11,
            "{} parcels delivered on a budget of 10",
            held.len()
        );
        let got = held.len() as u64;
        held.clear();
        for seq in got..100 {
            let (p, _) = next_parcel(&mut job[1].1).await;
            assert_eq!(p.header.seq, seq);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_reaches_the_peers_with_its_reason_and_a_close_is_no_loss() {
    within(async {
        let dir = Dir::new("abort");
        let mut job = job(&dir, 3, 64 << 20);
        job[1]
            .0
            .send(parcel(1, 0, 1, Bytes::from_static(b"hi")))
            .expect("send");
        let (p, _) = next_parcel(&mut job[0].1).await;
        assert_eq!(p.payload.as_ref(), b"hi");
        job[1].0.abort("locality 1 gave up");
        for i in [0, 2] {
            let (l, why) = next_loss(&mut job[i].1, Duration::from_secs(20)).await;
            assert_eq!(l, LocalityId(1));
            assert!(why.contains("it aborted: locality 1 gave up"), "{why}");
        }
        let err = job[0]
            .0
            .send(parcel(0, 1, 2, Bytes::new()))
            .expect_err("lost");
        assert!(err.to_string().contains("locality 1"), "{err}");
        // The two others close in order: neither sees a loss.
        let closes = [job[0].0.flush_and_close(), job[2].0.flush_and_close()];
        futures::future::join_all(closes).await;
        for i in [0, 2] {
            assert!(job[i].1.try_recv().is_err(), "an event after the close");
        }
        assert_eq!(dir.files(), Vec::<String>::new(), "files left behind");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_locality_sent_before_it_aborted_is_heard_before_its_loss() {
    within(async {
        let dir = Dir::new("last-words");
        let ports = ports(&dir, 3, 64 << 20);
        // Locality 1 writes its first parcels to 0 and 2 (their rings are
        // new) and aborts before either has read anything.
        for to in [0, 2] {
            for seq in 0..3 {
                ports[1]
                    .send(parcel(1, to, seq, Bytes::from_static(b"last words")))
                    .expect("send");
            }
        }
        ports[1].abort("locality 1 stopped");
        // Locality 2 hears of the end another way first (its network
        // connection closed): the same order.
        ports[2].lost_elsewhere(LocalityId(1), "its connection closed".into());
        for (i, why) in [
            (0, "it aborted: locality 1 stopped"),
            (2, "its connection closed"),
        ] {
            let (_, mut rx) = attach(ports[i].clone());
            for seq in 0..3 {
                let (p, _) = next_parcel(&mut rx).await;
                assert_eq!(
                    (p.header.seq, p.payload.as_ref()),
                    (seq, &b"last words"[..])
                );
            }
            let (l, reason) = next_loss(&mut rx, Duration::from_secs(20)).await;
            assert_eq!(l, LocalityId(1));
            assert!(reason.contains(why), "{reason}");
        }
        let closes = [ports[0].flush_and_close(), ports[2].flush_and_close()];
        futures::future::join_all(closes).await;
        assert_eq!(dir.files(), Vec::<String>::new(), "files left behind");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locality_alone_on_its_host_uses_no_shared_memory() {
    within(async {
        let dir = Dir::new("alone");
        let inbox = ShmInbox::create(ShmConfig {
            dir: dir.0.clone(),
            secret: b"another secret".to_vec(),
            locality: LocalityId(0),
            num_localities: 2,
            max_payload: 1 << 20,
            incoming_budget: 1 << 20,
        })
        .expect("inbox");
        assert_eq!(dir.files().len(), 1);
        assert!(inbox.start().expect("start").is_none());
        assert_eq!(dir.files(), Vec::<String>::new(), "the inbox was removed");
        // An inbox never started (a failed bootstrap) is removed too.
        let inbox = ShmInbox::create(ShmConfig {
            dir: dir.0.clone(),
            secret: b"another secret".to_vec(),
            locality: LocalityId(1),
            num_localities: 2,
            max_payload: 1 << 20,
            incoming_budget: 1 << 20,
        })
        .expect("inbox");
        drop(inbox);
        assert_eq!(dir.files(), Vec::<String>::new());
    })
    .await;
}
