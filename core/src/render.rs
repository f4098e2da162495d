//! Text and JSON forms of a machine and a plan, for `gpuaff topo` / `gpuaff plan` (pure: returns strings).
