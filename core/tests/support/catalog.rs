//! The catalog machines' fixture trees, for tests that run over every one.

use std::path::PathBuf;

/// (name, tree) of every catalog machine but `big-4096` (its own tests load it once: minutes
/// here), each written once and cached.
pub fn trees() -> impl Iterator<Item = (String, PathBuf)> {
    gpuaff_fixtures::catalog()
        .into_iter()
        .filter(|spec| spec.name != "big-4096")
        .map(|spec| {
            let root = gpuaff_fixtures::cached(&spec).expect("fixture written");
            (spec.name.clone(), root)
        })
}
