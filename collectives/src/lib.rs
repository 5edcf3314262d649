//! Collective operations (work in progress).
