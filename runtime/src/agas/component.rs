//! Components: objects living on one locality, addressed by global id, with
//! reference-counted handles (split credits).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{OwnedRwLockMappedWriteGuard, OwnedRwLockReadGuard, RwLock};

use super::names::{self, NameTables};
use super::GlobalId;
use crate::action::Action;
use crate::codec::{self, SharedBytes};
use crate::context::current;
use crate::{async_at, post, ActionFuture, Error, LocalityId, Result};

/// Credit given with the handle returned by [`new_component`].
const INITIAL_CREDIT: u64 = 1 << 62;
/// Credit minted when a handle with no credit left to split is sent.
const MINTED_CREDIT: u64 = 1 << 40;

type Object = Box<dyn Any + Send + Sync>;

/// A type that can live as a component: declared with `#[hpx::component]`,
/// which also registers it so any locality can construct it.
pub trait ComponentType: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type's stable name.
    const NAME: &'static str;
}

/// A registered component type: how a locality builds one from bytes.
#[derive(Debug)]
pub struct ComponentTypeEntry {
    /// The type's stable name.
    pub name: &'static str,
    /// Decodes a value of the type.
    pub construct: fn(&[u8]) -> Result<Object>,
}

impl ComponentTypeEntry {
    /// The entry of type `T` (used by `#[hpx::component]`).
    pub const fn of<T: ComponentType>() -> ComponentTypeEntry {
        ComponentTypeEntry {
            name: T::NAME,
            construct: construct::<T>,
        }
    }
}

inventory::collect!(ComponentTypeEntry);

fn construct<T: ComponentType>(bytes: &[u8]) -> Result<Object> {
    Ok(Box::new(codec::decode::<T>(bytes)?))
}

fn component_type(name: &str) -> Option<&'static ComponentTypeEntry> {
    inventory::iter::<ComponentTypeEntry>
        .into_iter()
        .find(|e| e.name == name)
}

/// An action on a component type: its first parameter is `&T` (shared
/// access) or `&mut T` (exclusive access). `#[hpx::action]` implements it.
pub trait ComponentAction: Action<Args = (GlobalId, Self::UserArgs)> {
    /// The component type the action works on.
    type Component: ComponentType;
    /// The arguments after the component.
    type UserArgs;
}

struct Entry {
    type_name: &'static str,
    object: Arc<RwLock<Object>>,
    /// Credit handed out and not yet returned.
    outstanding: i128,
}

/// The AGAS state of one locality.
#[derive(Default)]
pub(crate) struct Tables {
    next_local: AtomicU64,
    objects: Mutex<HashMap<u64, Entry>>,
    handles: Mutex<HashMap<GlobalId, Weak<Shared>>>,
    pub(crate) names: NameTables,
}

impl Tables {
    fn insert(&self, here: LocalityId, type_name: &'static str, object: Object) -> GlobalId {
        let local = self.next_local.fetch_add(1, Ordering::Relaxed) + 1;
        self.objects.lock().insert(
            local,
            Entry {
                type_name,
                object: Arc::new(RwLock::new(object)),
                outstanding: i128::from(INITIAL_CREDIT),
            },
        );
        GlobalId::new(here, local)
    }

    fn object(&self, gid: GlobalId, expected: &'static str) -> Result<Arc<RwLock<Object>>> {
        let objects = self.objects.lock();
        let entry = objects
            .get(&gid.local_id())
            .ok_or(Error::ComponentGone(gid))?;
        if entry.type_name != expected {
            return Err(Error::WrongComponentType {
                gid,
                expected: expected.to_owned(),
                found: entry.type_name.to_owned(),
            });
        }
        Ok(entry.object.clone())
    }

    fn adjust(&self, gid: GlobalId, delta: i128) -> bool {
        let mut objects = self.objects.lock();
        let Some(entry) = objects.get_mut(&gid.local_id()) else {
            return false;
        };
        entry.outstanding += delta;
        if entry.outstanding <= 0 {
            objects.remove(&gid.local_id());
        }
        true
    }

    fn remove(&self, gid: GlobalId) -> bool {
        self.objects.lock().remove(&gid.local_id()).is_some()
    }
}

impl crate::locality::Locality {
    /// This locality's AGAS tables: an extension of the locality, so that
    /// the locality needs not know AGAS.
    pub(crate) fn agas(&self) -> Arc<Tables> {
        self.extension(Tables::default)
    }
}

fn tables_for(gid: GlobalId) -> Result<Arc<crate::locality::Locality>> {
    let rt = current()?;
    if gid.owner() != rt.here() {
        return Err(Error::BadArgument(format!(
            "component {gid} lives on locality {}, not here ({})",
            gid.owner(),
            rt.here()
        )));
    }
    Ok(rt)
}

#[hpx_macros::action(crate = crate)]
async fn agas_create(type_name: String, value: SharedBytes) -> Result<GlobalId, Error> {
    let rt = current()?;
    let entry = component_type(&type_name)
        .ok_or_else(|| Error::BadArgument(format!("no component type {type_name} here")))?;
    let object = (entry.construct)(&value)?;
    Ok(rt.agas().insert(rt.here(), entry.name, object))
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_incref(gid: GlobalId, credit: u64) -> bool {
    tables_for(gid).is_ok_and(|rt| rt.agas().adjust(gid, i128::from(credit)))
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_decref(gid: GlobalId, credit: u64) {
    if let Ok(rt) = tables_for(gid) {
        rt.agas().adjust(gid, -i128::from(credit));
    }
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_destroy(gid: GlobalId) -> bool {
    tables_for(gid).is_ok_and(|rt| rt.agas().remove(gid))
}

/// Tells the owners about credit minted while encoding a message; returns
/// once all have recorded it.
pub(crate) async fn register_minted(minted: crate::codec::Minted) -> Result<()> {
    let calls: Vec<ActionFuture<bool>> = minted
        .into_iter()
        .map(|(gid, credit)| async_at(gid.owner(), agas_incref, (gid, credit)))
        .collect();
    for ok in futures::future::join_all(calls).await {
        // An object that is gone stays gone: the receiver's calls will say so.
        ok?;
    }
    Ok(())
}

/// A locality's share of the references to one component.
struct Shared {
    gid: GlobalId,
    credit: AtomicU64,
}

impl Shared {
    /// Takes half the credit for a copy that leaves this locality.
    fn split(&self) -> Option<u64> {
        let mut current = self.credit.load(Ordering::Acquire);
        while current >= 2 {
            let give = current / 2;
            match self.credit.compare_exchange(
                current,
                current - give,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(give),
                Err(now) => current = now,
            }
        }
        None
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(rt) = current().ok() else { return };
        {
            let tables = rt.agas();
            let mut handles = tables.handles.lock();
            if handles
                .get(&self.gid)
                .is_some_and(|w| w.strong_count() == 0)
            {
                handles.remove(&self.gid);
            }
        }
        let credit = *self.credit.get_mut();
        if credit == 0 {
            return;
        }
        if self.gid.owner() == rt.here() {
            rt.agas().adjust(self.gid, -i128::from(credit));
        } else if tokio::runtime::Handle::try_current().is_ok() {
            // The owner may already be gone at the end of a job: nothing to return then.
            let _ = post(self.gid.owner(), agas_decref, (self.gid, credit));
        }
    }
}

/// An untyped handle to a component: its id and a share of its references.
#[derive(Clone)]
pub struct ComponentRef {
    shared: Arc<Shared>,
}

impl ComponentRef {
    /// The component's id.
    pub fn gid(&self) -> GlobalId {
        self.shared.gid
    }

    /// Whether this locality's share keeps the component alive (a handle
    /// received inside a collective's value is a weak copy).
    pub fn is_strong(&self) -> bool {
        self.shared.credit.load(Ordering::Acquire) > 0
    }

    /// Makes this locality's share a strong one: the owner records new
    /// credit, so the component lives as long as this handle does.
    /// [`Error::ComponentGone`] if it was freed before.
    pub async fn keep_alive(&self) -> Result<()> {
        if self.is_strong() {
            return Ok(());
        }
        let gid = self.shared.gid;
        let rt = current()?;
        let recorded = if gid.owner() == rt.here() {
            rt.agas().adjust(gid, i128::from(MINTED_CREDIT))
        } else {
            async_at(gid.owner(), agas_incref, (gid, MINTED_CREDIT)).await?
        };
        if !recorded {
            return Err(Error::ComponentGone(gid));
        }
        self.shared
            .credit
            .fetch_add(MINTED_CREDIT, Ordering::AcqRel);
        Ok(())
    }

    /// The handle for `gid` arriving with `credit`: merged into this
    /// locality's existing share, if any.
    fn arrive(gid: GlobalId, credit: u64) -> ComponentRef {
        let fresh = || Shared {
            gid,
            credit: AtomicU64::new(credit),
        };
        let Ok(rt) = current() else {
            return ComponentRef {
                shared: Arc::new(fresh()),
            };
        };
        let tables = rt.agas();
        let mut handles = tables.handles.lock();
        if let Some(shared) = handles.get(&gid).and_then(Weak::upgrade) {
            shared.credit.fetch_add(credit, Ordering::AcqRel);
            return ComponentRef { shared };
        }
        let shared = Arc::new(fresh());
        handles.insert(gid, Arc::downgrade(&shared));
        ComponentRef { shared }
    }
}

impl fmt::Debug for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComponentRef({})", self.shared.gid)
    }
}

impl Serialize for ComponentRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // Credit travels only in a message to one locality (an action's
        // arguments or result): bytes that may be decoded more than once
        // (collectives fan them out) carry weak copies, which keep nothing
        // alive and fail with `ComponentGone` once the object is freed.
        let credit = if !codec::sending() {
            0
        } else if let Some(credit) = self.shared.split() {
            credit
        } else {
            codec::record_mint(self.shared.gid, MINTED_CREDIT);
            MINTED_CREDIT
        };
        (self.shared.gid, credit).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ComponentRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (gid, credit) = <(GlobalId, u64)>::deserialize(d)?;
        Ok(ComponentRef::arrive(gid, credit))
    }
}

/// A handle to a component of type `T` living on some locality. Cheap to
/// clone; can be sent inside action arguments and results. The object lives
/// until [`Component::destroy`] or until the last handle anywhere is dropped.
///
/// A handle inside the value of a collective (broadcast, gather, ...) is a
/// weak copy: it reaches the object while another handle keeps it alive, and
/// fails with [`Error::ComponentGone`] afterwards. To share an object between
/// SPMD mains, use [`Component::register_as`] and [`Component::connect_to`].
pub struct Component<T> {
    handle: ComponentRef,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Component<T> {
    fn clone(&self) -> Self {
        Component {
            handle: self.handle.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: ComponentType> fmt::Debug for Component<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Component<{}>({})", T::NAME, self.gid())
    }
}

impl<T> AsRef<ComponentRef> for Component<T> {
    fn as_ref(&self) -> &ComponentRef {
        &self.handle
    }
}

impl<T> Serialize for Component<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.handle.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Component<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Component {
            handle: ComponentRef::deserialize(d)?,
            _type: PhantomData,
        })
    }
}

/// Creates a component holding `value` on `locality` and returns a handle.
pub async fn new_component<T: ComponentType>(
    locality: LocalityId,
    value: T,
) -> Result<Component<T>> {
    let rt = current()?;
    let gid = if locality == rt.here() {
        rt.agas().insert(locality, T::NAME, Box::new(value))
    } else {
        let bytes = codec::encode(&value)?;
        async_at(
            locality,
            agas_create,
            (T::NAME.to_owned(), SharedBytes(bytes)),
        )
        .await?
    };
    Ok(Component {
        handle: ComponentRef::arrive(gid, INITIAL_CREDIT),
        _type: PhantomData,
    })
}

impl<T: ComponentType> Component<T> {
    /// A typed handle from an untyped one. The type is checked where the
    /// object lives, at each call ([`Error::WrongComponentType`]).
    pub fn from_ref(handle: ComponentRef) -> Component<T> {
        Component {
            handle,
            _type: PhantomData,
        }
    }

    /// The component's id.
    pub fn gid(&self) -> GlobalId {
        self.handle.gid()
    }

    /// The locality the component lives on.
    pub fn owner(&self) -> LocalityId {
        self.gid().owner()
    }

    /// Runs component action `action` on the component, where it lives.
    pub fn call<A>(&self, action: A, args: A::UserArgs) -> ActionFuture<A::Output>
    where
        A: ComponentAction<Component = T>,
    {
        async_at(self.owner(), action, (self.gid(), args))
    }

    /// Runs component action `action` without waiting for a result.
    pub fn post<A>(&self, action: A, args: A::UserArgs) -> Result<()>
    where
        A: ComponentAction<Component = T>,
    {
        post(self.owner(), action, (self.gid(), args))
    }

    /// Frees the object now. Calls through any handle then fail with
    /// [`Error::ComponentGone`]. Returns whether the object still existed.
    pub async fn destroy(self) -> Result<bool> {
        async_at(self.owner(), agas_destroy, self.gid()).await
    }

    /// Registers the component as `name`, keeping it alive until the name is
    /// unregistered. [`Error::NameTaken`] if the name is in use.
    pub async fn register_as(&self, name: &str) -> Result<()> {
        names::register_component(name, self.handle.clone()).await
    }

    /// The component registered as `name`, waiting up to 30 s for it to be
    /// registered (SPMD code: one locality registers, the others connect).
    pub async fn connect_to(name: &str) -> Result<Component<T>> {
        Component::connect_within(name, Duration::from_secs(30)).await
    }

    /// [`Component::connect_to`] with a chosen timeout
    /// ([`Error::NameWaitTimedOut`] when it passes).
    pub async fn connect_within(name: &str, timeout: Duration) -> Result<Component<T>> {
        names::wait_for_name(name, timeout).await?;
        Component::find(name).await
    }

    /// The component registered as `name` now ([`Error::NameNotFound`] if none).
    pub async fn find(name: &str) -> Result<Component<T>> {
        let handle = names::connect_component(name)
            .await?
            .ok_or_else(|| Error::NameNotFound(name.to_owned()))?;
        let gid = handle.gid();
        // Check the type where the object lives.
        let found = async_at(gid.owner(), agas_type_of, gid).await?;
        match found {
            None => Err(Error::ComponentGone(gid)),
            Some(found) if found != T::NAME => Err(Error::WrongComponentType {
                gid,
                expected: T::NAME.to_owned(),
                found,
            }),
            Some(_) => Ok(Component {
                handle,
                _type: PhantomData,
            }),
        }
    }
}

#[hpx_macros::action(crate = crate, direct)]
async fn agas_type_of(gid: GlobalId) -> Option<String> {
    let rt = tables_for(gid).ok()?;
    let tables = rt.agas();
    let objects = tables.objects.lock();
    objects.get(&gid.local_id()).map(|e| e.type_name.to_owned())
}

/// Shared access to component `gid` of type `T`, which must live on this
/// locality: what component actions taking `&T` run with, and a zero-copy
/// view for code already running where the component lives. Waits while an
/// exclusive access is under way.
pub async fn component_shared<T: ComponentType>(
    gid: GlobalId,
) -> Result<OwnedRwLockReadGuard<Object, T>> {
    let object = tables_for(gid)?.agas().object(gid, T::NAME)?;
    OwnedRwLockReadGuard::try_map(object.read_owned().await, |o| o.downcast_ref::<T>()).map_err(
        |_| Error::WrongComponentType {
            gid,
            expected: T::NAME.to_owned(),
            found: "another type".to_owned(),
        },
    )
}

/// Exclusive access to component `gid` of type `T`, which must live on this
/// locality: what component actions taking `&mut T` run with.
pub async fn component_exclusive<T: ComponentType>(
    gid: GlobalId,
) -> Result<OwnedRwLockMappedWriteGuard<Object, T>> {
    let object = tables_for(gid)?.agas().object(gid, T::NAME)?;
    tokio::sync::OwnedRwLockWriteGuard::try_map(object.write_owned().await, |o| {
        o.downcast_mut::<T>()
    })
    .map_err(|_| Error::WrongComponentType {
        gid,
        expected: T::NAME.to_owned(),
        found: "another type".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_halves_until_one() {
        let s = Shared {
            gid: GlobalId::new(LocalityId(0), 1),
            credit: AtomicU64::new(8),
        };
        assert_eq!(s.split(), Some(4));
        assert_eq!(s.split(), Some(2));
        assert_eq!(s.split(), Some(1));
        assert_eq!(s.split(), None);
        assert_eq!(s.credit.load(Ordering::SeqCst), 1);
        std::mem::forget(s);
    }

    #[test]
    fn credit_accounting_frees_at_zero() {
        let t = Tables::default();
        let gid = t.insert(LocalityId(0), "T", Box::new(5u32));
        assert!(t.object(gid, "T").is_ok());
        assert!(matches!(
            t.object(gid, "U"),
            Err(Error::WrongComponentType { .. })
        ));
        assert!(t.adjust(gid, i128::from(MINTED_CREDIT)));
        assert!(t.adjust(gid, -i128::from(INITIAL_CREDIT)));
        assert!(t.object(gid, "T").is_ok());
        assert!(t.adjust(gid, -i128::from(MINTED_CREDIT)));
        assert!(matches!(t.object(gid, "T"), Err(Error::ComponentGone(_))));
        assert!(!t.adjust(gid, 1));
    }
}
