"""The wheel carries prebuilt native files (lib/libgpuaff.so, bin/gpuaff) that scripts/build-wheel.sh
builds with cargo-zigbuild and copies in; nothing is compiled here. Its tag is py3-none-PLATFORM (any
Python 3: the module reaches the library through ctypes, not the CPython ABI), PLATFORM from
GPUAFF_WHEEL_PLAT (e.g. manylinux_2_28_x86_64), which auditwheel then confirms."""
import os

from setuptools import setup
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70
    from wheel.bdist_wheel import bdist_wheel

PLAT = os.environ.get("GPUAFF_WHEEL_PLAT")


class NativeDistribution(Distribution):
    """Not pure Python: installed to platlib, tagged with a platform."""

    def has_ext_modules(self):
        return True


class NativeWheel(bdist_wheel):
    def finalize_options(self):
        if not PLAT:
            raise SystemExit("setup.py: set GPUAFF_WHEEL_PLAT (use scripts/build-wheel.sh)")
        self.plat_name = PLAT
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        return "py3", "none", PLAT


setup(distclass=NativeDistribution, cmdclass={"bdist_wheel": NativeWheel})
