#!/usr/bin/env bash
# Installs gpuaff as a C/C++ library and command under a prefix:
#   PREFIX/bin/gpuaff
#   PREFIX/LIBDIR/libgpuaff.so.X.Y.Z, libgpuaff.so.0 -> it (the SONAME), libgpuaff.so -> libgpuaff.so.0
#   PREFIX/include/gpu_affinity.h
#   PREFIX/LIBDIR/pkgconfig/gpuaff.pc                (pkg-config --cflags --libs gpuaff)
#   PREFIX/LIBDIR/cmake/gpuaff/gpuaffConfig.cmake    (find_package(gpuaff) -> target gpuaff::gpuaff)
#   PREFIX/LIBDIR/cmake/gpuaff/gpuaffConfigVersion.cmake
# The files are the glibc-2.28 release build (scripts/build-release.sh, run first unless --no-build).
# `gpuaff run` finds the library in PREFIX/LIBDIR (bin/../lib*). The CMake package is relocatable;
# the .pc file names the prefix it was installed to.
#
#   scripts/install.sh --prefix /usr/local               # then: sudo ldconfig
#   scripts/install.sh --prefix ~/.local --libdir lib64
#   scripts/install.sh --prefix /opt/gpuaff --arch aarch64 --destdir /tmp/stage
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/install.sh --prefix DIR [--libdir NAME] [--arch x86_64|aarch64] [--destdir DIR] [--no-build]" >&2
    exit 2
}
prefix=
libdir=lib
arch=$(uname -m)
destdir=
build=1
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --libdir) [ $# -ge 2 ] || usage; libdir=$2; shift 2 ;;
        --libdir=*) libdir=${1#*=}; shift ;;
        --arch) [ $# -ge 2 ] || usage; arch=$2; shift 2 ;;
        --destdir) [ $# -ge 2 ] || usage; destdir=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h | --help) usage ;;
        *) echo "install: unknown argument $1" >&2; usage ;;
    esac
done
[ -n "$prefix" ] || usage
case $prefix in /*) ;; *) prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd) ;; esac
case $libdir in */* | '') echo "install: --libdir is a directory name under the prefix (lib, lib64)" >&2; exit 2 ;; esac

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
major=0
[ "$build" -eq 0 ] || scripts/build-release.sh "$arch"
out=${CARGO_TARGET_DIR:-target}/$arch-unknown-linux-gnu/release
for f in libgpuaff.so gpuaff; do
    [ -f "$out/$f" ] || { echo "install: $out/$f missing (run scripts/build-release.sh $arch)" >&2; exit 1; }
done

root=$destdir$prefix
lib=$root/$libdir
install -d "$root/bin" "$root/include" "$lib/pkgconfig" "$lib/cmake/gpuaff"
install -m 0755 "$out/gpuaff" "$root/bin/gpuaff"
install -m 0755 "$out/libgpuaff.so" "$lib/libgpuaff.so.$version"
ln -sfn "libgpuaff.so.$version" "$lib/libgpuaff.so.$major"
ln -sfn "libgpuaff.so.$major" "$lib/libgpuaff.so"
install -m 0644 c-header/gpu_affinity.h "$root/include/gpu_affinity.h"

cat >"$lib/pkgconfig/gpuaff.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/$libdir
includedir=\${prefix}/include

Name: gpuaff
Description: Binds GPU worker processes and their threads to the CPUs and memory closest to their GPU
Version: $version
Libs: -L\${libdir} -lgpuaff
Cflags: -I\${includedir}
PC

cat >"$lib/cmake/gpuaff/gpuaffConfig.cmake" <<CMAKE
# gpuaff $version: find_package(gpuaff) gives the imported target gpuaff::gpuaff (the shared library
# and its header) and GPUAFF_EXECUTABLE (the gpuaff command). Relocatable: paths are found from here.
get_filename_component(_gpuaff_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET gpuaff::gpuaff)
  add_library(gpuaff::gpuaff SHARED IMPORTED)
  set_target_properties(gpuaff::gpuaff PROPERTIES
    IMPORTED_LOCATION "\${_gpuaff_prefix}/$libdir/libgpuaff.so.$version"
    IMPORTED_SONAME "libgpuaff.so.$major"
    INTERFACE_INCLUDE_DIRECTORIES "\${_gpuaff_prefix}/include")
endif()
set(GPUAFF_EXECUTABLE "\${_gpuaff_prefix}/bin/gpuaff")
set(gpuaff_VERSION "$version")
unset(_gpuaff_prefix)
CMAKE

cat >"$lib/cmake/gpuaff/gpuaffConfigVersion.cmake" <<CMAKE
# Compatible when the requested version has the same major number and is not newer (SameMajorVersion).
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "${version%%.*}")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
CMAKE

echo "install: gpuaff $version ($arch) in $root: bin/gpuaff, $libdir/libgpuaff.so.$version (SONAME libgpuaff.so.$major), include/gpu_affinity.h, $libdir/pkgconfig/gpuaff.pc, $libdir/cmake/gpuaff/"
