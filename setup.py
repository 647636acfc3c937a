"""Package layout: the folders at the repository root install as ``fieldfit.*``.

The package list is derived from the folders (every directory with an ``__init__.py`` below
each root), so a new subpackage cannot be left out of the wheel; pyproject.toml holds the rest
of the metadata. setuptools cannot derive a list under remapped ``package-dir`` roots from
pyproject.toml alone, hence this file.
"""

from setuptools import find_packages, setup

ROOTS = {
    "fieldfit": "fieldfit",
    "fieldfit.fields": "fields",
    "fieldfit.renderers": "renderers",
    "fieldfit.losses": "losses",
    "fieldfit.scenes": "scenes",
}


def layout() -> tuple[list[str], dict[str, str]]:
    """(packages, package_dir) for every package below the roots."""
    packages, package_dir = [], {}
    for name, folder in ROOTS.items():
        for sub in ["", *find_packages(folder)]:
            full = f"{name}.{sub}" if sub else name
            packages.append(full)
            package_dir[full] = f"{folder}/{sub.replace('.', '/')}" if sub else folder
    return packages, package_dir


packages, package_dir = layout()
setup(packages=packages, package_dir=package_dir)
