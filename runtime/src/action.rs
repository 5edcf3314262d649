//! Actions: async functions callable on any locality, registered at link time.
//!
//! `#[hpx::action]` turns `async fn name(args) -> R` into a unit struct
//! `name` implementing [`Action`] and submits an [`ActionEntry`] to the
//! registry. Every locality runs the same binary, so the registry is the same
//! everywhere and an action is named on the wire by [`Action::ID`], a hash of
//! its path.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use hpx_parcelport::LocalityId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Minted};
use crate::{Error, Result};

/// A function that can run on any locality.
pub trait Action: Copy + Send + Sync + 'static {
    /// The arguments: the parameter's type for one parameter, a tuple otherwise.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The result type (the `T` of a `Result<T, E>`-returning action).
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The action's stable name (module path and function name).
    const NAME: &'static str;
    /// The id used on the wire: [`action_id`] of [`Action::NAME`].
    const ID: u64;
    /// Whether the action is a short handler polled first where its parcel
    /// is read (`#[hpx::action(direct)]`) instead of on a task of its own.
    const DIRECT: bool = false;

    /// Runs the action here. An error of the action itself is
    /// [`Error::Remote`] naming this locality (see [`action_error`](crate::__private::action_error)).
    fn invoke(args: Self::Args) -> impl Future<Output = Result<Self::Output>> + Send + 'static;
}

/// Turns an action's return value into its output or error text.
pub trait ActionResult {
    /// The successful value.
    type Ok;
    /// Splits into value or error message.
    fn into_action_result(self) -> Result<Self::Ok, String>;
}

impl<T, E: Display> ActionResult for Result<T, E> {
    type Ok = T;
    fn into_action_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// The wire id of an action: the 64-bit FNV-1a hash of its name.
pub const fn action_id(name: &str) -> u64 {
    crate::hash::fnv1a(name.as_bytes())
}

/// Runs an action's future here, turning a panic into
/// [`Error::RemotePanic`] naming this locality and the action.
pub(crate) async fn run_caught<T>(
    here: LocalityId,
    action: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(Error::RemotePanic {
            locality: here,
            action: action.to_owned(),
            message: crate::error::panic_message(panic.as_ref()),
        }),
    }
}

/// The type-erased entry point of a registered action: run on locality
/// `here` with encoded arguments from locality `from`, it gives the result,
/// encoded for `from`, and the credit that component handles in it minted
/// (to register before the result leaves, see [`crate::agas`]).
pub type ActionHandler =
    fn(LocalityId, LocalityId, &Bytes) -> BoxFuture<'static, Result<(Bytes, Minted)>>;

/// One registered action.
#[derive(Debug)]
pub struct ActionEntry {
    /// The stable name.
    pub name: &'static str,
    /// The wire id.
    pub id: u64,
    /// Polled first where its parcel is read (see [`Action::DIRECT`]).
    pub direct: bool,
    /// Decodes arguments, runs the action, encodes the result.
    pub handler: ActionHandler,
}

impl ActionEntry {
    /// The entry of action `A` (used by `#[hpx::action]`).
    pub const fn of<A: Action>() -> ActionEntry {
        ActionEntry {
            name: A::NAME,
            id: A::ID,
            direct: A::DIRECT,
            handler: run_encoded::<A>,
        }
    }
}

inventory::collect!(ActionEntry);

fn run_encoded<A: Action>(
    here: LocalityId,
    from: LocalityId,
    args: &Bytes,
) -> BoxFuture<'static, Result<(Bytes, Minted)>> {
    // Decoding runs before the action's future, outside its panic guard:
    // a panicking `Deserialize` must still become an error, or the caller
    // would wait for a reply that never comes.
    let args = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        codec::decode_shared::<A::Args>(args)
    }))
    .unwrap_or_else(|panic| {
        Err(Error::Codec(format!(
            "decoding panicked: {}",
            crate::error::panic_message(panic.as_ref())
        )))
    });
    Box::pin(async move {
        let args = args.map_err(|e| {
            Error::Codec(format!(
                "locality {here} could not decode the arguments of {}: {e}",
                A::NAME
            ))
        })?;
        let out = A::invoke(args).await?;
        codec::encode_minting(&out, from)
    })
}

/// Hashes action ids, FNV-1a hashes already, as themselves: a lookup per
/// call sent and received costs no further hashing.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The registry of all actions linked into this binary.
#[derive(Debug)]
pub struct Registry {
    entries: Vec<&'static ActionEntry>,
    by_id: HashMap<u64, usize, BuildHasherDefault<IdHasher>>,
}

impl Registry {
    /// The process-wide registry, built on first use.
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            let mut by_id: HashMap<u64, &'static ActionEntry> = HashMap::new();
            let mut collided = Vec::new();
            for entry in inventory::iter::<ActionEntry> {
                match by_id.insert(entry.id, entry) {
                    Some(other) if other.name != entry.name => {
                        // Two names with one 64-bit id: refuse both rather
                        // than run the wrong one.
                        tracing::error!(a = other.name, b = entry.name, "action id collision");
                        collided.push(entry.id);
                    }
                    _ => {}
                }
            }
            for id in collided {
                by_id.remove(&id);
            }
            let mut entries: Vec<&'static ActionEntry> = by_id.into_values().collect();
            entries.sort_by_key(|e| e.name);
            let by_id = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
            Registry { entries, by_id }
        })
    }

    /// Looks an action up by wire id.
    pub fn get(&self, id: u64) -> Option<&'static ActionEntry> {
        self.find(id).map(|(_, entry)| entry)
    }

    /// Looks an action up by wire id, with its index (`0..len()`, dense:
    /// per-action tables are arrays).
    pub(crate) fn find(&self, id: u64) -> Option<(usize, &'static ActionEntry)> {
        let index = *self.by_id.get(&id)?;
        self.entries.get(index).map(|entry| (index, *entry))
    }

    /// The entries, by index.
    pub(crate) fn entries(&self) -> &[&'static ActionEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_fnv1a() {
        assert_eq!(action_id(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(action_id("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(action_id("m::f"), action_id("m::g"));
    }
}
