//! AGAS, the active global address space: global ids, a symbol namespace
//! and components.
//!
//! # Names
//!
//! The symbol namespace is spread over the localities by a hash of the name:
//! name `s` lives on locality `fnv1a(s) % N`, so no locality is a hot spot
//! and a lookup is one round trip. Resolved names are cached where they were
//! resolved; [`unregister_name`] clears every locality's cache before it
//! returns, so a name that was unregistered is never resolved again from a
//! stale cache.
//!
//! # Components and their lifetime
//!
//! A component is an object on one locality, addressed by a [`GlobalId`].
//! Handles ([`Component<T>`]) count references with credits, as HPX does:
//! the owner hands out a large credit with the first handle; clones on one
//! locality share it; a handle sent to another locality takes half of the
//! sender's credit along, so copying needs no message; a locality's last
//! handle returns its credit to the owner, which frees the object when all
//! credit is back. A handle whose credit cannot be split any more mints
//! fresh credit, registered with the owner before the message that carries
//! it is sent, so the object can never be freed while a handle to it is in
//! flight. [`Component::destroy`] frees an object at once; calls to it then
//! fail with [`Error::ComponentGone`](crate::Error::ComponentGone).

mod component;
mod names;

pub use crate::gid::{GlobalId, ParseGlobalIdError};
pub(crate) use component::register_minted;
pub use component::{component_exclusive, component_shared};
pub use component::{
    new_component, Component, ComponentAction, ComponentRef, ComponentType, ComponentTypeEntry,
};
pub use names::{
    list_names, name_home, register_name, resolve_name, unregister_name, wait_for_name,
};

/// The locality where the object `gid` lives (run work there to avoid moving data).
pub fn colocated(gid: GlobalId) -> crate::LocalityId {
    gid.owner()
}

/// Runs `action` on the locality where the object `gid` lives (HPX's
/// `hpx::colocated`): the data stays put and only `args` and the result move.
pub fn async_colocated<A: crate::Action>(
    gid: GlobalId,
    action: A,
    args: A::Args,
) -> crate::ActionFuture<A::Output> {
    crate::async_at(gid.owner(), action, args)
}
