"""The compiled hot path (mhd_sim/learning/distillation/_plan_kernel.pyx), built when Cython, numpy
and a C compiler are there; without them the package installs and runs its Python path (the
same numbers). Everything else about the package is in pyproject.toml."""

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class Optional(build_ext):
    """A failed compile is a warning, not a failed install: the Python path stays."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler, no headers
            print(f"warning: mhd-sim's compiled hot path was not built ({e}); the Python path runs")

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # one line: what failed, not the compiler's whole command
            print(f"warning: {ext.name} was not built (no working C compiler: "
                  f"{type(e).__name__}); the Python path runs, with the same numbers")  # fmt: skip


def extensions() -> list:
    try:
        import numpy
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError as e:
        print(f"warning: mhd-sim's compiled hot path is not built ({e}); the Python path runs")
        return []
    draws = Extension(
        "mhd_sim.learning.distillation._plan_kernel",
        ["mhd_sim/learning/distillation/_plan_kernel.pyx"],
        include_dirs=[numpy.get_include()],
        library_dirs=[os.path.join(os.path.dirname(numpy.__file__), "random", "lib")],
        libraries=["npyrandom"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    return cythonize([draws], quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": Optional})
