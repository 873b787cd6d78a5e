"""Builds the pshm Python package for pip (see pyproject.toml): the
extension python/pshm/_pshm.c with libpshm's sources compiled in, exactly
as the CMake build links it with the static library."""
import glob
import re

from setuptools import Extension, setup


def header_version():
    "The version, defined once: PSHM_VERSION_* in include/pshm.h."
    with open("include/pshm.h", encoding="utf-8") as f:
        text = f.read()
    parts = [re.search(r"#define PSHM_VERSION_%s (\d+)" % p, text).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


setup(
    version=header_version(),
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
