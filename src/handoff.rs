//! The worker's side of a plan handed down (see `gpuaff_core::handoff`, which says why nothing
//! stale can bind a process): the rank's part of `GPU_AFFINITY_HANDOFF` when its key matches this
//! process, else None and the process plans for itself.

use gpuaff_core::handoff::{self, Handed};
use gpuaff_core::{AllowedFrom, Request};

pub fn take(req: &Request, from: &AllowedFrom) -> Option<Handed> {
    let value = crate::preload::env_lookup(handoff::VAR)?;
    handoff::accept(&value, req, from)
}
