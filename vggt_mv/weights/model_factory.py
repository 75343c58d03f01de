"""`--model pkg.module:factory` (or `path/to/file.py:factory`): any model the inspector is pointed at."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from vggt_mv.weights.errors import WeightsSourceError, first_line


def import_factory(spec: str) -> Callable:
    """The callable named by `module:attribute` (a dotted module importable from the current folder, or a .py
    file); a failure to import is one line, the import's own traceback never reaches the user."""
    module_name, colon, attribute = str(spec).rpartition(":")
    if not colon or not module_name or not attribute.isidentifier():
        raise WeightsSourceError(f"--model {spec!r}: write MODULE:FACTORY, e.g. my_project.models:build_model")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise WeightsSourceError(f"--model {spec!r}: no such file {path}")
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: the user's own package, from here
            module = importlib.import_module(module_name)
    except WeightsSourceError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's module may raise anything while importing
        raise WeightsSourceError(f"--model {spec!r}: cannot import {module_name} ({type(error).__name__}: "
                                 f"{first_line(error)})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise WeightsSourceError(f"--model {spec!r}: {module_name} has no callable {attribute!r}")

    def checked_factory():
        try:
            return factory()
        except Exception as error:  # noqa: BLE001 - the user's factory may raise anything
            raise WeightsSourceError(f"--model {spec!r}: the factory raised {type(error).__name__}: "
                                     f"{first_line(error)}") from None

    return checked_factory
