//! AGAS across real clusters: names, components, their lifetime and errors.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{done, ensure, in_locality, launch, s, spmd};
use hpx::prelude::*;
use hpx::{agas, Error};
use serde::{Deserialize, Serialize};

/// Waits until every locality has registered `{tag}{i}` (a barrier built on names).
async fn all_reached(tag: &str) -> Result<(), String> {
    let me = hpx::get_locality_id();
    let gid = GlobalId::new(hpx::find_here(), u64::from(me));
    ensure(
        agas::register_name(&format!("{tag}{me}"), gid)
            .await
            .map_err(s)?,
        "step name taken",
    )?;
    for l in 0..hpx::get_num_localities() {
        agas::wait_for_name(&format!("{tag}{l}"), Duration::from_secs(30))
            .await
            .map_err(s)?;
    }
    Ok(())
}

#[test]
fn names_work_from_every_locality() {
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            let n = hpx::get_num_localities();
            let mine = GlobalId::new(hpx::find_here(), 1000 + u64::from(me));
            ensure(
                agas::register_name(&format!("app/loc{me}"), mine)
                    .await
                    .map_err(s)?,
                "register",
            )?;
            ensure(
                !agas::register_name(&format!("app/loc{me}"), mine)
                    .await
                    .map_err(s)?,
                "taken twice",
            )?;
            // The waiting resolve finds names that other localities register later.
            for l in 0..n {
                let gid = agas::wait_for_name(&format!("app/loc{l}"), Duration::from_secs(30))
                    .await
                    .map_err(s)?;
                ensure(
                    gid == GlobalId::new(LocalityId(l), 1000 + u64::from(l)),
                    "wait_for_name",
                )?;
                let again = agas::resolve_name(&format!("app/loc{l}"))
                    .await
                    .map_err(s)?;
                ensure(again == Some(gid), "resolve (cached)")?;
            }
            let listed = agas::list_names("app/").await.map_err(s)?;
            let expected: Vec<(String, GlobalId)> = {
                let mut v: Vec<_> = (0..n)
                    .map(|l| {
                        (
                            format!("app/loc{l}"),
                            GlobalId::new(LocalityId(l), 1000 + u64::from(l)),
                        )
                    })
                    .collect();
                v.sort();
                v
            };
            ensure(listed == expected, format!("list_names: {listed:?}"))?;
            ensure(
                agas::resolve_name("app/none").await.map_err(s)?.is_none(),
                "unknown name",
            )?;
            match agas::wait_for_name("app/never", Duration::from_millis(200)).await {
                Err(Error::NameWaitTimedOut { name, .. }) => {
                    ensure(name == "app/never", "timeout name")?
                }
                other => return Err(format!("expected NameWaitTimedOut, got {other:?}")),
            }
            all_reached("step1/").await?;
            // Unregistering clears every cache: nobody resolves the name afterwards.
            let old = agas::unregister_name(&format!("app/loc{me}"))
                .await
                .map_err(s)?;
            ensure(old == Some(mine), "unregister returns the id")?;
            all_reached("step2/").await?;
            for l in 0..n {
                let gone = agas::resolve_name(&format!("app/loc{l}"))
                    .await
                    .map_err(s)?;
                ensure(
                    gone.is_none(),
                    format!("app/loc{l} still resolves to {gone:?}"),
                )?;
            }
            ensure(
                agas::list_names("app/").await.map_err(s)?.is_empty(),
                "list after unregister",
            )?;
            println!("RESULT names ok");
            done("names_work_from_every_locality");
            Ok(())
        });
    }
    for n in [1, 2, 4] {
        let out = launch("names_work_from_every_locality", n);
        out.assert_success();
        out.assert_all_done("names_work_from_every_locality", n);
        assert_eq!(out.tagged("RESULT names ok").len(), n as usize, "{out}");
    }
}

#[hpx::component]
#[derive(Serialize, Deserialize, Default, Debug)]
struct Counter {
    value: u64,
}

#[hpx::action]
async fn add(counter: &mut Counter, by: u64) -> u64 {
    counter.value += by;
    counter.value
}

#[hpx::action]
async fn read(counter: &Counter) -> u64 {
    counter.value
}

/// A plain action that receives a handle and uses it from where it runs.
#[hpx::action]
async fn bump_through(counter: Component<Counter>, by: u64) -> Result<u64, Error> {
    counter.call(add, by).await
}

#[hpx::component]
#[derive(Serialize, Deserialize, Default)]
struct Other;

#[hpx::action]
async fn where_am_i(x: u64) -> (LocalityId, u64) {
    (hpx::find_here(), 2 * x)
}

#[test]
fn concurrent_increments_are_never_lost() {
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            let n = hpx::get_num_localities();
            let total = 10_000u64;
            let counter = if me == 0 {
                let c = hpx::new_component(LocalityId(n - 1), Counter::default())
                    .await
                    .map_err(s)?;
                c.register_as("shared-counter").await.map_err(s)?;
                match c.register_as("shared-counter").await {
                    Err(Error::NameTaken(name)) => ensure(name == "shared-counter", "taken name")?,
                    other => return Err(format!("expected NameTaken, got {other:?}")),
                }
                c
            } else {
                Component::<Counter>::connect_to("shared-counter")
                    .await
                    .map_err(s)?
            };
            ensure(counter.owner() == LocalityId(n - 1), "owner")?;
            let mine = total / u64::from(n) + u64::from(me < (total % u64::from(n)) as u32);
            // Half through the handle, half through a plain action that gets the handle.
            let direct: Vec<_> = (0..mine / 2).map(|_| counter.call(add, 1)).collect();
            let target = LocalityId((me + 1) % n);
            let relayed: Vec<_> = (mine / 2..mine)
                .map(|_| hpx::async_at(target, bump_through, (counter.clone(), 1)))
                .collect();
            for r in futures::future::join_all(direct).await {
                r.map_err(s)?;
            }
            for r in futures::future::join_all(relayed).await {
                r.map_err(s)?;
            }
            all_reached("incremented/").await?;
            let value = counter.call(read, ()).await.map_err(s)?;
            let (loc, twice) = hpx::async_colocated(counter.gid(), where_am_i, 21)
                .await
                .map_err(s)?;
            ensure(
                loc == counter.owner() && twice == 42,
                "async_colocated runs at the owner",
            )?;
            ensure(
                value == total,
                format!("counter is {value}, expected {total}"),
            )?;
            match Component::<Other>::find("shared-counter").await {
                Err(Error::WrongComponentType {
                    expected, found, ..
                }) => ensure(
                    expected.ends_with("Other") && found.ends_with("Counter"),
                    "type names",
                )?,
                other => return Err(format!("expected WrongComponentType, got {other:?}")),
            }
            match Component::<Counter>::find("no-such-counter").await {
                Err(Error::NameNotFound(_)) => {}
                other => return Err(format!("expected NameNotFound, got {other:?}")),
            }
            println!("RESULT counter {value}");
            done("concurrent_increments_are_never_lost");
            Ok(())
        });
    }
    for n in [1, 2, 4] {
        let out = launch("concurrent_increments_are_never_lost", n);
        out.assert_success();
        out.assert_all_done("concurrent_increments_are_never_lost", n);
        assert_eq!(
            out.tagged("RESULT counter"),
            vec!["10000"; n as usize],
            "{out}"
        );
    }
}

static FREED: AtomicU64 = AtomicU64::new(0);
static FREED_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[hpx::component]
#[derive(Serialize, Deserialize, Default)]
struct Tracked {
    tag: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        FREED.fetch_add(1, Ordering::SeqCst);
        FREED_CHANGED.notify_waiters();
    }
}

#[hpx::action]
async fn tag_of(t: &Tracked) -> u64 {
    t.tag
}

/// Receives a handle, uses it, and drops it.
#[hpx::action]
async fn use_and_drop(t: Component<Tracked>) -> Result<u64, Error> {
    t.call(tag_of, ()).await
}

/// Keeps a handle until `release_kept` is called.
static KEPT: std::sync::Mutex<Vec<Component<Tracked>>> = std::sync::Mutex::new(Vec::new());

#[hpx::action]
async fn keep(t: Component<Tracked>) {
    KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(t);
}

#[hpx::action]
async fn release_kept() {
    KEPT.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// Waits until this locality has freed at least `n` tracked objects.
#[hpx::action]
async fn freed_at_least(n: u64) -> u64 {
    loop {
        let changed = FREED_CHANGED.notified();
        let now = FREED.load(Ordering::SeqCst);
        if now >= n {
            return now;
        }
        changed.await;
    }
}

#[hpx::action]
async fn freed_now() -> u64 {
    FREED.load(Ordering::SeqCst)
}

#[test]
fn last_handle_frees_the_object_and_destroy_is_final() {
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() != 0 {
                done("last_handle_frees_the_object_and_destroy_is_final");
                return Ok(());
            }
            let n = hpx::get_num_localities();
            let owner = LocalityId(n - 1);
            let other = LocalityId(n / 2);
            let wait_freed = |count: u64| async move {
                tokio::time::timeout(
                    Duration::from_secs(20),
                    hpx::async_at(owner, freed_at_least, count),
                )
                .await
                .map_err(|_| format!("the owner never freed object #{count}"))?
                .map_err(s)
            };
            // 1. Handles copied to other localities, used and dropped there;
            //    far more copies than the credit can be halved: minting kicks in.
            let t = hpx::new_component(owner, Tracked { tag: 7 })
                .await
                .map_err(s)?;
            for _ in 0..200 {
                let tag = hpx::async_at(other, use_and_drop, t.clone())
                    .await
                    .map_err(s)?;
                ensure(tag == 7, "tag through a copied handle")?;
            }
            hpx::async_at(other, keep, t.clone()).await.map_err(s)?;
            let before = hpx::async_at(owner, freed_now, ()).await.map_err(s)?;
            ensure(before == 0, "freed while handles are alive")?;
            // Our handle goes; the kept copy still holds the object.
            drop(t);
            let still = hpx::async_at(owner, freed_now, ()).await.map_err(s)?;
            ensure(still == 0, "freed while a kept handle is alive")?;
            hpx::async_at(other, release_kept, ()).await.map_err(s)?;
            wait_freed(1).await?;
            // 2. An explicit destroy frees at once; every later call fails cleanly.
            let d = hpx::new_component(owner, Tracked { tag: 9 })
                .await
                .map_err(s)?;
            let copy = d.clone();
            ensure(d.destroy().await.map_err(s)?, "destroy")?;
            wait_freed(2).await?;
            match copy.call(tag_of, ()).await {
                Err(Error::ComponentGone(gid)) => ensure(gid == copy.gid(), "gone gid")?,
                other => return Err(format!("expected ComponentGone, got {other:?}")),
            }
            match hpx::async_at(other, use_and_drop, copy.clone()).await {
                Err(Error::Remote { message, .. }) => {
                    ensure(message.contains("does not exist"), message)?
                }
                other => return Err(format!("expected a remote ComponentGone, got {other:?}")),
            }
            println!("RESULT lifetime ok");
            done("last_handle_frees_the_object_and_destroy_is_final");
            Ok(())
        });
    }
    for n in [1, 2, 3] {
        let out = launch("last_handle_frees_the_object_and_destroy_is_final", n);
        out.assert_success();
        out.assert_all_done("last_handle_frees_the_object_and_destroy_is_final", n);
        assert_eq!(out.tagged("RESULT lifetime ok").len(), 1, "{out}");
    }
}

#[test]
fn global_ids_print_and_parse() {
    let gid = GlobalId::new(LocalityId(3), 0xabc);
    assert_eq!(gid.to_string(), "00000003.0000000000000abc");
    assert_eq!("00000003.0000000000000abc".parse::<GlobalId>(), Ok(gid));
    assert_eq!(hpx::colocated(gid), LocalityId(3));
    assert!("3:abc".parse::<GlobalId>().is_err());
}
