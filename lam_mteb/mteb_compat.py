"""The one module that touches mteb internals.

mteb 2.x has no plugin mechanism, so lam-mteb reaches into it: the model registry
(``mteb.models.model_implementations.MODEL_REGISTRY``), the task registry (``mteb.get_tasks``'
``_TASKS_REGISTRY`` and ``TASK_LIST``, and its ``get_task(s)``), ``AbsTask.load_data``, the
result files' ``ResultCache`` / ``TaskResult`` methods, the stock CLI's ``main`` and private
helpers such as ``mteb._create_dataloaders``.  Every such use lives here, behind a small
named function, so that a new mteb release is adapted in one place.  :data:`SUPPORTED_MTEB` is the
version range these functions are tested against (``tests/test_core_mteb_compat.py`` has one test
per internal; ``scripts/check_mteb_versions.sh`` runs them against other releases).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lam_mteb.errors import LamMtebError

if TYPE_CHECKING:
    from mteb.abstasks import AbsTask

#: [min, max): the range tested in tests/test_core_mteb_compat.py
SUPPORTED_MTEB = ((2, 26, 20), (2, 27, 0))


# -- versions ------------------------------------------------------------------------------------


def mteb_version() -> str:
    """The installed mteb release (``mteb.__version__``)."""
    import mteb

    return getattr(mteb, "__version__", "0")


def mteb_version_supported(version: str) -> bool:
    try:
        parts = tuple(int(p) for p in version.split("+")[0].split(".")[:3])
    except ValueError:
        return False
    lo, hi = SUPPORTED_MTEB
    return lo <= parts < hi


def check_mteb_version() -> None:
    version = mteb_version()
    if not mteb_version_supported(version):
        lo, hi = (".".join(map(str, v)) for v in SUPPORTED_MTEB)
        raise LamMtebError(
            f"mteb {version} is not supported by lam-mteb (supported: >={lo},<{hi}); "
            f"install a supported mteb: pip install 'mteb>={lo},<{hi}'"
        )


# -- models: MODEL_REGISTRY ----------------------------------------------------------------------


def _model_registry() -> dict[str, Any]:
    from mteb.models.model_implementations import MODEL_REGISTRY

    return MODEL_REGISTRY


def model_names() -> list[str]:
    """Every name mteb's model registry holds (mteb's own models and ours, full names)."""
    return list(_model_registry())


def has_model(name: str) -> bool:
    """Whether mteb's model registry holds ``name`` (lam-mteb's bare names: see the bridge)."""
    return name in _model_registry()


def add_model(name: str, meta: Any) -> None:
    _model_registry()[name] = meta


def remove_model(name: str) -> None:
    _model_registry().pop(name, None)


def _unwrapped(function: Any) -> Any:
    """``function`` without the lam-mteb wrapper put around it by this module (if any)."""
    return function.__wrapped__ if getattr(function, "__lam_mteb__", False) else function


def install_bare_name_lookup(full_name: Callable[[str], str | None]) -> None:
    """Wrap ``mteb.get_model_meta`` so that a lam-mteb bare name resolves to its full name
    (``full_name(bare)``, None for other names; a name mteb has itself always wins).  Installing
    again replaces the previous lookup.

    ``mteb.get_model`` and the ``mteb run -m`` CLI look the name up through the module global
    ``mteb.models.get_model_meta.get_model_meta``; the public ``mteb.get_model_meta`` is rebound
    too.
    """
    import mteb
    from mteb.models import get_model_meta as module

    current = module.get_model_meta
    original = _unwrapped(current)

    @functools.wraps(original)
    def get_model_meta(model_name: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(model_name, str) and model_name not in _model_registry():
            model_name = full_name(model_name) or model_name
        return original(model_name, *args, **kwargs)

    get_model_meta.__lam_mteb__ = True  # type: ignore[attr-defined]
    module.get_model_meta = get_model_meta
    if getattr(mteb, "get_model_meta", None) in (current, original):
        mteb.get_model_meta = get_model_meta


# -- results: ResultCache / TaskResult ----------------------------------------------------------

#: makes a wrapper from the original method (the wrapper takes ``self`` first, like the method)
MethodWrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


def wrap_result_cache(
    *, load_task_result: MethodWrapper, save_to_cache: MethodWrapper, to_disk: MethodWrapper
) -> None:
    """Replace ``ResultCache.load_task_result``, ``ResultCache.save_to_cache`` and
    ``TaskResult.to_disk`` (once) by ``wrapper(original)`` each."""
    from mteb.cache import ResultCache
    from mteb.results import TaskResult

    if getattr(ResultCache.load_task_result, "__lam_mteb__", False):
        return
    for owner, name, make in (
        (ResultCache, "load_task_result", load_task_result),
        (ResultCache, "save_to_cache", save_to_cache),
        (TaskResult, "to_disk", to_disk),
    ):
        original = getattr(owner, name)
        wrapper = functools.wraps(original)(make(original))
        wrapper.__lam_mteb__ = True  # type: ignore[attr-defined]
        setattr(owner, name, wrapper)


# -- tasks: _TASKS_REGISTRY / TASK_LIST ----------------------------------------------------------


def call_before_task_lookup(before: Callable[[], None]) -> None:
    """Wrap ``get_task`` and ``get_tasks`` of module ``mteb.get_tasks`` (and the same functions
    re-exported as ``mteb.get_task(s)``) so that ``before()`` runs before each lookup (installing
    again replaces the previous ``before``)."""
    import mteb

    module = _get_tasks_module()
    for name in ("get_task", "get_tasks"):
        current = getattr(module, name)
        original = _unwrapped(current)

        def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            before()
            return _original(*args, **kwargs)

        functools.update_wrapper(wrapper, original)
        wrapper.__lam_mteb__ = True  # type: ignore[attr-defined]
        setattr(module, name, wrapper)
        if getattr(mteb, name, None) in (current, original):
            setattr(mteb, name, wrapper)


def _get_tasks_module() -> Any:  # the module mteb.get_tasks, its attributes read dynamically
    return importlib.import_module("mteb.get_tasks")  # `mteb.get_tasks` the attribute is a function


def task_classes() -> Mapping[str, type[AbsTask]]:
    """mteb's task name -> task class mapping (read only)."""
    return _get_tasks_module()._TASKS_REGISTRY


def task_class(name: str) -> type[AbsTask] | None:
    return _get_tasks_module()._TASKS_REGISTRY.get(name)


def add_task_class(cls: type[AbsTask]) -> None:
    """Make ``cls`` a task of ``mteb.get_task(s)`` (by ``cls.metadata.name``)."""
    gt = _get_tasks_module()
    gt._TASKS_REGISTRY[cls.metadata.name] = cls
    if cls not in gt.TASK_LIST:
        gt.TASK_LIST = (*gt.TASK_LIST, cls)


# -- AbsTask.load_data ---------------------------------------------------------------------------


def wrap_load_data(cls: type[AbsTask], make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace ``load_data`` of ``cls`` (its own or the one it inherits: the parent task type is
    left alone) and of its subclasses that override it with ``make_wrapper(original)`` (once per
    class: a wrapped ``load_data`` carries the mark ``__lam_mteb__``)."""
    from mteb.abstasks import AbsTask

    def wrap(c: type, original: Callable) -> None:
        wrapper = make_wrapper(original)
        wrapper.__lam_mteb__ = True  # type: ignore[attr-defined]
        setattr(c, "load_data", wrapper)  # noqa: B010 - mypy forbids assigning to a method

    if not issubclass(cls, AbsTask):
        return
    if "load_data" not in cls.__dict__ and not getattr(cls.load_data, "__lam_mteb__", False):
        wrap(cls, cls.load_data)
    stack: list[type] = [cls]
    while stack:
        c = stack.pop()
        stack.extend(c.__subclasses__())
        own = c.__dict__.get("load_data")
        if own is not None and not getattr(own, "__lam_mteb__", False):
            wrap(c, own)


# -- the stock CLI -------------------------------------------------------------------------------


def wrap_cli_main(cli_module: Any, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace ``mteb.cli.main`` (the ``mteb`` console script) by ``make_wrapper(original)``
    once."""
    original = getattr(cli_module, "main", None)
    if original is None or getattr(original, "__lam_mteb__", False):
        return
    main = make_wrapper(original)
    setattr(main, "__lam_mteb__", True)  # noqa: B010 - an attribute functions lack
    cli_module.main = main


def cli_argv() -> list[str]:
    """The arguments of the running ``mteb`` command (after the program name)."""
    return sys.argv[1:]


def cli_option_values(names: Iterable[str]) -> list[str]:
    """Values of the options ``names`` (``-m x``, ``--model x``, ``--model=x``) of ``mteb run``."""
    argv = cli_argv()
    if not argv or argv[0] != "run":
        return []
    names = tuple(names)
    values = []
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(tuple(f"{n}=" for n in names if n.startswith("--"))):
            values.append(arg.split("=", 1)[1])
    return values


def is_not_found_error(exc: KeyError) -> str | None:
    """mteb's "... not found ..." KeyError (unknown model/task) as one message, else None."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, str) and "not found" in message:
        return message.removeprefix("KeyError: ")
    return None


# -- private helpers -----------------------------------------------------------------------------


def create_dataloader(dataset: Any, **kwargs: Any) -> Any:
    """mteb's own batching of a dataset for ``encode`` (``mteb._create_dataloaders``)."""
    from mteb._create_dataloaders import create_dataloader as _create

    return _create(dataset, **kwargs)
