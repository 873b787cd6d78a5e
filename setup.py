"""Builds the pshm Python package for pip (see pyproject.toml): the
extension python/pshm/_pshm.c with libpshm's sources compiled in, exactly
as the CMake build links it with the static library."""
import glob

from setuptools import Extension, setup

setup(
    packages=["pshm"],
    package_dir={"": "python"},
    exclude_package_data={"pshm": ["*.c"]},
    ext_modules=[
        Extension(
            "pshm._pshm",
            sources=["python/pshm/_pshm.c"] + sorted(glob.glob("src/*.c")),
            include_dirs=["include", "src"],
            define_macros=[("_GNU_SOURCE", None)],
            extra_compile_args=["-std=c11", "-fvisibility=hidden"],
            libraries=["sodium", "unistring", "pthread"],
        )
    ],
)
