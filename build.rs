// libgpuaff.so carries the SONAME libgpuaff.so.0: a program linked with -lgpuaff then needs
// libgpuaff.so.0, which scripts/install.sh installs as the usual symlink chain
// (libgpuaff.so -> libgpuaff.so.0 -> libgpuaff.so.X.Y.Z). The major number changes only when the
// C ABI breaks.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgpuaff.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
