//! The symbol namespace: names mapped to global ids, spread over the
//! localities by hash.

use std::collections::HashMap;
use std::time::Duration;

use hpx_parcelport::LocalityId;

use super::{ComponentRef, GlobalId};
use crate::context::current;
use crate::{async_at, broadcast_action, Error, Result};

/// The names homed on one locality and the names it has resolved.
#[derive(Default)]
pub(crate) struct NameTables {
    /// Names whose home is this locality, with the handle that keeps a
    /// registered component alive.
    pub(crate) homed: parking_lot::Mutex<HashMap<String, (GlobalId, Option<ComponentRef>)>>,
    /// Woken whenever a name is registered here.
    pub(crate) registered: tokio::sync::Notify,
    /// Names resolved from this locality.
    pub(crate) cache: parking_lot::Mutex<HashMap<String, GlobalId>>,
}

fn home_of(name: &str, n: u32) -> LocalityId {
    crate::hash::home_of(&[name.as_bytes()], n)
}

fn tables() -> Result<std::sync::Arc<crate::locality::Locality>> {
    current()
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_register(name: String, gid: GlobalId, keep_alive: Option<ComponentRef>) -> bool {
    let Ok(rt) = tables() else { return false };
    let tables = rt.agas();
    let names = &tables.names;
    let inserted = match names.homed.lock().entry(name) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert((gid, keep_alive));
            true
        }
    };
    if inserted {
        names.registered.notify_waiters();
    }
    inserted
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_resolve(name: String) -> Option<GlobalId> {
    let rt = tables().ok()?;
    let found = rt.agas().names.homed.lock().get(&name).map(|(g, _)| *g);
    found
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_connect(name: String) -> Option<ComponentRef> {
    let rt = tables().ok()?;
    let found = rt
        .agas()
        .names
        .homed
        .lock()
        .get(&name)
        .and_then(|(_, h)| h.clone());
    found
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_wait(name: String, timeout_ms: u64) -> Option<GlobalId> {
    let rt = tables().ok()?;
    let tables = rt.agas();
    let names = &tables.names;
    let wait = async {
        loop {
            let registered = names.registered.notified();
            if let Some((gid, _)) = names.homed.lock().get(&name) {
                return *gid;
            }
            registered.await;
        }
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), wait)
        .await
        .ok()
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_unregister(name: String) -> Result<Option<GlobalId>, Error> {
    let rt = tables()?;
    let removed = rt.agas().names.homed.lock().remove(&name);
    // Every cache forgets the name before the caller learns it is gone.
    broadcast_action(agas_forget, name).await?;
    Ok(removed.map(|(gid, _)| gid))
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_forget(name: String) {
    if let Ok(rt) = tables() {
        rt.agas().names.cache.lock().remove(&name);
    }
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_list(prefix: String) -> Vec<(String, GlobalId)> {
    let Ok(rt) = tables() else { return Vec::new() };
    let tables = rt.agas();
    let homed = tables.names.homed.lock();
    homed
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, (gid, _))| (name.clone(), *gid))
        .collect()
}

fn home(name: &str) -> Result<LocalityId> {
    name_home(name)
}

/// The locality that holds `name` in the symbol namespace (by hash).
pub fn name_home(name: &str) -> Result<LocalityId> {
    Ok(home_of(name, current()?.num_localities()))
}

/// Registers `name` for `gid`. Returns `false` if the name is taken (by
/// any id). Works from any locality.
pub async fn register_name(name: &str, gid: GlobalId) -> Result<bool> {
    async_at(home(name)?, agas_register, (name.to_owned(), gid, None)).await
}

/// Registers `name` for a component, keeping the component alive until the
/// name is unregistered. Fails with [`Error::NameTaken`] if taken.
pub(crate) async fn register_component(name: &str, handle: ComponentRef) -> Result<()> {
    let gid = handle.gid();
    if async_at(
        home(name)?,
        agas_register,
        (name.to_owned(), gid, Some(handle)),
    )
    .await?
    {
        Ok(())
    } else {
        Err(Error::NameTaken(name.to_owned()))
    }
}

/// A new handle to the component registered as `name`, if any.
pub(crate) async fn connect_component(name: &str) -> Result<Option<ComponentRef>> {
    async_at(home(name)?, agas_connect, name.to_owned()).await
}

/// The id registered as `name`, if any. Positive answers are cached on this
/// locality until the name is unregistered.
pub async fn resolve_name(name: &str) -> Result<Option<GlobalId>> {
    let rt = current()?;
    let cached = rt.agas().names.cache.lock().get(name).copied();
    rt.counters().agas_lookup(cached.is_some());
    if let Some(gid) = cached {
        return Ok(Some(gid));
    }
    let found = async_at(home(name)?, agas_resolve, name.to_owned()).await?;
    if let Some(gid) = found {
        rt.agas().names.cache.lock().insert(name.to_owned(), gid);
    }
    Ok(found)
}

/// Waits until `name` is registered, at most `timeout`; then
/// [`Error::NameWaitTimedOut`].
pub async fn wait_for_name(name: &str, timeout: Duration) -> Result<GlobalId> {
    if let Some(gid) = resolve_name(name).await? {
        return Ok(gid);
    }
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    match async_at(home(name)?, agas_wait, (name.to_owned(), ms)).await? {
        Some(gid) => Ok(gid),
        None => Err(Error::NameWaitTimedOut {
            name: name.to_owned(),
            waited_ms: ms,
        }),
    }
}

/// Removes `name`, returning the id it had. When this returns, no locality
/// resolves the name from its cache any more. A component registered under
/// the name loses the reference the name held.
pub async fn unregister_name(name: &str) -> Result<Option<GlobalId>> {
    async_at(home(name)?, agas_unregister, name.to_owned()).await
}

/// Every registered name starting with `prefix`, sorted, from all localities.
pub async fn list_names(prefix: &str) -> Result<Vec<(String, GlobalId)>> {
    let parts = broadcast_action(agas_list, prefix.to_owned()).await?;
    let mut all: Vec<(String, GlobalId)> = parts.into_iter().flatten().collect();
    all.sort();
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spread_over_localities() {
        let homes: std::collections::HashSet<u32> = (0..100)
            .map(|i| home_of(&format!("name{i}"), 4).0)
            .collect();
        assert_eq!(homes.len(), 4);
        assert_eq!(home_of("x", 1), LocalityId(0));
        assert_eq!(home_of("x", 0), LocalityId(0));
    }
}
