//! A process without the job secret can neither join a job nor run an action.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::hostile::{attack, intruder_endpoint};
use common::{done, in_locality, launch, launch_with, role, self_args, with_quic};
use hpx::prelude::*;
use hpx::Error;
use hpx_parcelport::handshake::{Hello, Purpose, TOKEN_LEN};
use hpx_parcelport::parcel::encode_parcel;
use hpx_parcelport::{Parcel, ParcelHeader};

static MARKS: AtomicU32 = AtomicU32::new(0);

#[hpx::action]
async fn mark() {
    MARKS.fetch_add(1, Ordering::SeqCst);
}

#[hpx::action]
async fn marks() -> u32 {
    MARKS.load(Ordering::SeqCst)
}

/// Connects without the secret, sends `hello_bytes` as the handshake and a
/// parcel that would run `mark`, and returns how the locality closed it.
async fn intrude(
    addr: std::net::SocketAddr,
    target: LocalityId,
    hello_bytes: Vec<u8>,
) -> Result<String, String> {
    let endpoint = intruder_endpoint();
    let conn = endpoint
        .connect(addr, "hpx-rs")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| format!("TLS itself failed: {e}"))?;
    let mut parcel = bytes::BytesMut::new();
    let header = ParcelHeader {
        kind: 2,
        flags: 0,
        source: LocalityId(0),
        dest: target,
        tag: <mark as hpx::Action>::ID,
        seq: 0,
    };
    encode_parcel(
        &Parcel {
            header,
            payload: bytes::Bytes::new(),
        },
        &mut parcel,
    )
    .map_err(|e| e.to_string())?;
    // An unauthenticated peer is granted no data stream; if one were
    // granted, the parcel would go out on it.
    match tokio::time::timeout(Duration::from_millis(300), conn.open_uni()).await {
        Ok(Ok(mut uni)) => {
            let _ = uni.write_all(&parcel).await;
            println!("RESULT data stream granted before authentication");
        }
        _ => println!("RESULT data stream refused before authentication"),
    }
    if let Ok((mut send, _recv)) = conn.open_bi().await {
        let _ = send
            .write_all(&(hello_bytes.len() as u32).to_le_bytes())
            .await;
        let _ = send.write_all(&hello_bytes).await;
    }
    let reason = tokio::time::timeout(Duration::from_secs(20), conn.closed())
        .await
        .map_err(|_| "the locality kept the unauthenticated connection open".to_owned())?;
    endpoint.close(0u32.into(), b"");
    Ok(reason.to_string())
}

#[test]
fn wrong_secret_cannot_join_or_run_actions() {
    if role().as_deref() == Some("intruder") {
        // Started by locality 0 with the job's address but another secret.
        let result = hpx::Runtime::builder().run(|| async {
            hpx::post(LocalityId(0), mark, ())?;
            Ok::<_, Error>(())
        });
        match result {
            Err(Error::Authentication(msg)) => println!("RESULT intruder rejected: {msg}"),
            other => println!("RESULT intruder got {other:?}"),
        }
        return;
    }
    if in_locality() {
        return common::spmd(|| async {
            if hpx::get_locality_id() != 0 {
                done("wrong_secret_cannot_join_or_run_actions");
                return Ok(());
            }
            let addrs = hpx::locality_addresses();
            // 1. A whole process with the wrong secret tries to join.
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let child = tokio::process::Command::new(exe)
                .args(self_args("wrong_secret_cannot_join_or_run_actions"))
                .env("HPX_TEST_ROLE", "intruder")
                .env("HPX_LOCALITY", "1")
                .env("HPX_NUM_LOCALITIES", "2")
                .env("HPX_AGAS", addrs[0].to_string())
                .env("HPX_SECRET", "ff".repeat(32))
                // An outsider: no channel from hpxrun.
                .env_remove("HPX_CONTROL_FD")
                .env("HPX_STARTUP_TIMEOUT", "10")
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(Duration::from_secs(40), child)
                .await
                .map_err(|_| "intruder process hung".to_owned())?
                .map_err(|e| e.to_string())?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !stdout.contains("RESULT intruder rejected") || !stdout.contains("secret") {
                return Err(format!("intruder was not rejected cleanly: {stdout}"));
            }
            for line in stdout.lines().filter(|l| l.contains("RESULT intruder")) {
                let said = &line[line.find("RESULT intruder").unwrap_or(0)..];
                println!("INTRUDER said {said}");
            }
            // 2. Raw QUIC peers skip the handshake, send garbage, or a forged token.
            let garbage = b"GET / HTTP/1.1\r\n\r\n".to_vec();
            let forged = Hello {
                purpose: Purpose::Peer,
                locality: LocalityId(0),
                num_localities: 2,
                token: [0x42; TOKEN_LEN],
                listen_addr: String::new(),
                beat_port: 0,
            }
            .encode()
            .map_err(|e| e.to_string())?;
            for target in [LocalityId(0), LocalityId(1)] {
                for hello in [garbage.clone(), forged.clone()] {
                    let reason = intrude(addrs[target.index()], target, hello).await?;
                    println!("RESULT closed by {target}: {reason}");
                }
            }
            // 3. Nobody ran `mark`, and the job still works.
            let counts = hpx::broadcast_action(marks, ())
                .await
                .map_err(|e| e.to_string())?;
            if counts != [0, 0] {
                return Err(format!("an unauthenticated peer ran actions: {counts:?}"));
            }
            println!("RESULT no action ran");
            done("wrong_secret_cannot_join_or_run_actions");
            Ok(())
        });
    }
    let out = launch_with(
        "wrong_secret_cannot_join_or_run_actions",
        2,
        &[],
        &[("HPX_PARCELPORT", &with_quic())],
    );
    out.assert_success();
    out.assert_all_done("wrong_secret_cannot_join_or_run_actions", 2);
    // The intruder process ran and was turned away for its secret.
    let said = out.tagged_by(0, "INTRUDER said RESULT intruder");
    assert!(
        said.len() == 1 && said[0].starts_with("rejected") && said[0].contains("secret"),
        "{out}"
    );
    let results = out.tagged("RESULT");
    assert!(results.iter().any(|r| r == "no action ran"), "{out}");
    let refused = results
        .iter()
        .filter(|r| *r == "data stream refused before authentication")
        .count();
    assert_eq!(refused, 4, "{out}");
    let closes: Vec<_> = results
        .iter()
        .filter(|r| r.starts_with("closed by"))
        .collect();
    assert_eq!(closes.len(), 4, "{out}");
    assert!(closes.iter().all(|r| r.contains("closed by peer")), "{out}");
    assert!(
        closes.iter().any(|r| r.contains("authentication failed")),
        "{out}"
    );
}

#[hpx::action]
async fn process_id() -> u32 {
    std::process::id()
}

/// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} for {pid}"))
}

/// Round trips to locality 1: microseconds per call. (Printed, not
/// asserted: beside other tests on two cores the ratio is noise.)
async fn round_trips(n: u32) -> Result<f64, Error> {
    let start = std::time::Instant::now();
    for _ in 0..n {
        hpx::async_at(LocalityId(1), marks, ()).await?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

#[test]
fn hostile_connections_cost_little_and_do_not_stop_the_job() {
    const TEST: &str = "hostile_connections_cost_little_and_do_not_stop_the_job";
    const HOSTILE: usize = 100;
    if in_locality() {
        return common::spmd(|| async {
            if hpx::get_locality_id() == 0 {
                let target = hpx::async_at(LocalityId(1), process_id, ())
                    .await
                    .map_err(common::s)?;
                let addr = hpx::locality_addresses()[1];
                round_trips(500).await.map_err(common::s)?;
                let before_us = round_trips(2000).await.map_err(common::s)?;
                let before = status_kib(target, "VmHWM")?;
                let endpoint = intruder_endpoint();
                let attacks: Vec<_> = (0..HOSTILE)
                    .map(|i| tokio::spawn(attack(endpoint.clone(), addr, i % 3)))
                    .collect();
                let mut held = Vec::new();
                for a in attacks {
                    held.push(a.await.map_err(common::s)?);
                }
                // Every hostile connection is open (or was refused) now.
                let during_us = round_trips(2000).await.map_err(common::s)?;
                let after = status_kib(target, "VmHWM")?;
                let open = held
                    .iter()
                    .flatten()
                    .filter(|(c, _, _)| c.close_reason().is_none())
                    .count();
                println!(
                    "RESULT grew {} KiB with {open} of {HOSTILE} hostile connections open; \
                     round trip {before_us:.1} us before, {during_us:.1} us during",
                    after.saturating_sub(before)
                );
                common::ensure(
                    after.saturating_sub(before) < 64 << 10,
                    format!("locality 1 grew from {before} to {after} KiB"),
                )?;
                drop(held);
                endpoint.close(0u32.into(), b"");
            }
            hpx::barrier().await.map_err(common::s)?;
            done(TEST);
            Ok(())
        });
    }
    let out = launch(TEST, 2);
    out.assert_success().assert_all_done(TEST, 2);
    println!("hostile: {}", out.tagged("RESULT").join("\n"));
    let warnings = out.stderr.matches("rejected connection").count();
    assert!(
        warnings <= 8,
        "{warnings} warnings for {HOSTILE} connections: {out}"
    );
}
