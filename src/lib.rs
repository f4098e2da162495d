//! libgpuaff.so: the effects around gpuaff's pure core — applying a plan to the process, the preload
//! constructor and `pthread_create` hook, and the C ABI.
