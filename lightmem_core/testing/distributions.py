"""Throwaway plugin distributions, pip-installed so that discovery finds them for real.

A test that checks discovery, selection by configuration or a third-party plugin's place in a
chain should not register an object by hand: it should see the plugin the way a user's
installation does, through a distribution's ``lightmem.plugins`` entry points.
:func:`install_distributions` writes each distribution (a package of one ``__init__.py`` and a
``pyproject.toml`` that depends on ``lightmem-hookspecs`` only) and installs them all with pip
into one folder of their own. Put that folder on ``PYTHONPATH`` of a child process: the running
interpreter's own entry points stay as they were.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import attrs


@attrs.frozen
class Distribution:
    """One plugin distribution: its name, its package and the package's code.

    ``entry_points`` maps entry-point names to targets (``"package"`` or ``"package:obj"``);
    by default one entry point named like the distribution points at the package.
    """

    name: str
    package: str
    code: str
    entry_points: Mapping[str, str] | None = None
    version: str = "0.1.0"
    #: Its requirements (``lightmem-hookspecs>=1.0,<2`` declares the contract it was built for).
    dependencies: tuple[str, ...] = ("lightmem-hookspecs",)

    def write(self, root: Path) -> Path:
        """Write the distribution's source tree under ``root``; return its folder."""
        folder = root / self.name
        (folder / self.package).mkdir(parents=True)
        (folder / self.package / "__init__.py").write_text(textwrap.dedent(self.code))
        points = self.entry_points or {self.name: self.package}
        lines = [
            "[build-system]",
            'requires = ["setuptools"]',
            'build-backend = "setuptools.build_meta"',
            "",
            "[project]",
            f'name = "{self.name}"',
            f'version = "{self.version}"',
            f"dependencies = {list(self.dependencies)!r}".replace("'", '"'),
            "",
            '[project.entry-points."lightmem.plugins"]',
            *(f'{name} = "{target}"' for name, target in points.items()),
        ]
        (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
        return folder


def install_distributions(root: Path, distributions: list[Distribution]) -> Path:
    """Write and pip-install ``distributions`` into ``root / "site"`` (no dependencies, no
    build isolation: nothing is downloaded); return that folder."""
    target = root / "site"
    folders = [d.write(root) for d in distributions]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            *map(str, folders),
        ],
        check=True,
    )
    return target
