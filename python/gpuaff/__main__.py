"""``python -m gpuaff ...`` and the ``gpuaff`` console script: run the bundled ``gpuaff`` command
(``plan``, ``topo``, ``run``, ``lib``: the library's path, for ``LD_PRELOAD``)."""
from . import _main


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
