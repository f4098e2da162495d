//! libgpuaff.so: the effects around gpuaff's pure core — applying a plan to the process, the preload
//! constructor and `pthread_create` hook, and the C ABI.

// The constructor and the interposer are left out of unit-test builds, and what only they use with them.
#![cfg_attr(test, allow(dead_code))]
// Every unsafe operation sits in its own block with a SAFETY line, inside unsafe fns too.
#![deny(unsafe_op_in_unsafe_fn)]

mod apply;
mod bind;
mod ffi;
mod guard;
mod handoff;
mod launcher;
mod loading;
mod msg;
mod omp;
mod preload;
