//! The one error type of hpx-rs.

use hpx_parcelport::{LocalityId, TransportError};

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hpx-rs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// A remote action returned an error.
    #[error("action {action} failed on locality {locality}: {message}")]
    Remote {
        /// Where the action ran.
        locality: LocalityId,
        /// The action's name.
        action: String,
        /// The action's error, as text.
        message: String,
    },
    /// A remote action panicked.
    #[error("action {action} panicked on locality {locality}: {message}")]
    RemotePanic {
        /// Where the action ran.
        locality: LocalityId,
        /// The action's name.
        action: String,
        /// The panic message.
        message: String,
    },
    /// The locality died or became unreachable.
    #[error("locality {locality} was lost: {reason}")]
    LocalityLost {
        /// The lost locality.
        locality: LocalityId,
        /// Why it is considered lost.
        reason: String,
    },
    /// No locality with this id in the job.
    #[error("no locality {0} in this job")]
    NoSuchLocality(LocalityId),
    /// The receiving locality does not know the action (different binaries?).
    #[error("locality {locality} has no action with id {id:#018x} ({action})")]
    UnknownAction {
        /// Where the call was sent.
        locality: LocalityId,
        /// The unknown id.
        id: u64,
        /// The caller's name for it.
        action: String,
    },
    /// Encoding or decoding a value failed.
    #[error("codec error: {0}")]
    Codec(String),
    /// The transport failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// A peer failed authentication, or this process failed it.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// An argument was out of range or otherwise invalid.
    #[error("bad argument: {0}")]
    BadArgument(String),
    /// The runtime configuration (environment, flags) is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// The job could not start: bootstrap failed.
    #[error("bootstrap failed: {0}")]
    Bootstrap(String),
    /// This locality's main function failed or panicked.
    #[error("{0}")]
    MainFailed(String),
    /// The job was aborted because of a failure elsewhere.
    #[error("job aborted: {0}")]
    Aborted(String),
    /// The name is registered already.
    #[error("the name {0:?} is already registered")]
    NameTaken(String),
    /// No such name is registered.
    #[error("no name {0:?} is registered")]
    NameNotFound(String),
    /// Waiting for a name to be registered took too long.
    #[error("the name {name:?} was not registered within {waited_ms} ms")]
    NameWaitTimedOut {
        /// The name waited for.
        name: String,
        /// How long it was waited for.
        waited_ms: u64,
    },
    /// The component was destroyed or never existed.
    #[error("component {0} does not exist (destroyed, freed or never created)")]
    ComponentGone(crate::gid::GlobalId),
    /// The component behind a global id has another type than the handle says.
    #[error("component {gid} is a {found}, not a {expected}")]
    WrongComponentType {
        /// The component.
        gid: crate::gid::GlobalId,
        /// The type the caller expected.
        expected: String,
        /// The type it has.
        found: String,
    },
    /// The participants of a collective called different operations (or
    /// with different roots, types or lengths); every participant gets it.
    #[error("collective mismatch {0}")]
    CollectiveMismatch(String),
    /// No hpx runtime is running in this process.
    #[error("no hpx runtime is running in this process (use #[hpx::main] or hpx::Runtime)")]
    NotRunning,
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::PeerLost { locality, reason } => {
                Error::LocalityLost { locality, reason }
            }
            TransportError::NoSuchLocality(l) => Error::NoSuchLocality(l),
            TransportError::Authentication(addr) => Error::Authentication(format!(
                "{addr} rejected this process: it does not hold the job's secret (HPX_SECRET)"
            )),
            TransportError::Bootstrap(m) => Error::Bootstrap(m),
            TransportError::Config(m) => Error::Config(m),
            other => Error::Transport(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Transport(e.to_string())
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
