//! What a participant says it is doing: every message of a collective carries
//! its sender's [`Signature`], and a receiver whose own differs reports a
//! mismatch instead of combining unrelated data.

use serde::{Deserialize, Serialize};

use hpx_runtime::hash::fnv1a_parts as fnv1a;

/// The collective operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// Creating a named communicator.
    Create,
    /// `barrier`.
    Barrier,
    /// `all_reduce`.
    AllReduce,
    /// `reduce`.
    Reduce,
    /// `broadcast`.
    Broadcast,
    /// `gather`.
    Gather,
    /// `scatter`.
    Scatter,
    /// `all_gather`.
    AllGather,
    /// `all_to_all`.
    AllToAll,
    /// `inclusive_scan`.
    InclusiveScan,
    /// `exclusive_scan`.
    ExclusiveScan,
}

impl Kind {
    /// Whether calls of this kind run in the members' shared region when
    /// they all share a host; the others always exchange messages.
    pub(crate) fn shared(self) -> bool {
        matches!(
            self,
            Kind::Barrier
                | Kind::AllReduce
                | Kind::Reduce
                | Kind::Broadcast
                | Kind::Gather
                | Kind::AllGather
        )
    }

    /// The operation's name (as counters and traces show it).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Create => "Communicator::new",
            Kind::Barrier => "barrier",
            Kind::AllReduce => "all_reduce",
            Kind::Reduce => "reduce",
            Kind::Broadcast => "broadcast",
            Kind::Gather => "gather",
            Kind::Scatter => "scatter",
            Kind::AllGather => "all_gather",
            Kind::AllToAll => "all_to_all",
            Kind::InclusiveScan => "inclusive_scan",
            Kind::ExclusiveScan => "exclusive_scan",
        }
    }
}

/// One participant's view of a collective call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Signature {
    /// The operation.
    pub kind: Kind,
    /// The reduction's wire id, or a hash of the members for `Create`; 0 if none.
    pub op: u64,
    /// The root rank of a rooted operation; 0 otherwise.
    pub root: u32,
    /// A hash of the value type's name; 0 if no value travels.
    pub ty: u64,
    /// The element count that all must agree on; 0 if none.
    pub len: u64,
}

impl Signature {
    /// A call without values (barrier).
    pub(crate) fn bare(kind: Kind) -> Signature {
        Signature {
            kind,
            op: 0,
            root: 0,
            ty: 0,
            len: 0,
        }
    }

    /// A call with values of type `T`.
    pub(crate) fn of<T: ?Sized>(kind: Kind) -> Signature {
        Signature {
            ty: type_hash::<T>(),
            ..Signature::bare(kind)
        }
    }

    /// With the reduction `op`.
    pub(crate) fn op(self, op: u64) -> Signature {
        Signature { op, ..self }
    }

    /// With the root rank `root`.
    pub(crate) fn root(self, root: u32) -> Signature {
        Signature { root, ..self }
    }

    /// With the agreed length `len`.
    pub(crate) fn len(self, len: u64) -> Signature {
        Signature { len, ..self }
    }

    /// Describes the call for an error message; `type_name` is the value
    /// type when known (it travels only as a hash).
    pub(crate) fn describe(&self, type_name: Option<&str>, op_name: Option<&str>) -> String {
        let mut text = self.kind.name().to_owned();
        if self.op != 0 && self.kind != Kind::Create {
            text += &format!(" with operation {}", op_name.unwrap_or("(another)"));
        }
        if matches!(
            self.kind,
            Kind::Reduce | Kind::Broadcast | Kind::Gather | Kind::Scatter
        ) {
            text += &format!(" to/from root rank {}", self.root);
        }
        if self.len != 0 || matches!(self.kind, Kind::AllReduce | Kind::Reduce) {
            text += &format!(" of {} elements", self.len);
        }
        if self.ty != 0 {
            match type_name {
                Some(name) => text += &format!(" of type {name}"),
                None => text += &format!(" of another value type (hash {:#018x})", self.ty),
            }
        }
        text
    }
}

/// A hash of a type's name (the same binary runs everywhere, so the names agree).
pub(crate) fn type_hash<T: ?Sized>() -> u64 {
    fnv1a(&[std::any::type_name::<T>().as_bytes()]).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_tell_calls_apart() {
        let a = Signature::of::<Vec<f64>>(Kind::AllReduce).op(7).len(5);
        assert_ne!(a, a.len(6));
        assert_ne!(a, Signature::of::<Vec<f32>>(Kind::AllReduce).op(7).len(5));
        assert_ne!(a, Signature::bare(Kind::Barrier));
        assert_ne!(
            Signature::of::<u8>(Kind::Broadcast).root(1),
            Signature::of::<u8>(Kind::Broadcast).root(2)
        );
        let text = a.describe(Some("Vec<f64>"), Some("sum"));
        assert_eq!(
            text,
            "all_reduce with operation sum of 5 elements of type Vec<f64>"
        );
        assert!(a.describe(None, None).contains("another value type"));
        assert_eq!(
            Signature::bare(Kind::Barrier).describe(None, None),
            "barrier"
        );
    }
}
