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

SUPPORTED_MTEB = (
    (2, 26, 20),
    (2, 27, 0),
)  # [min, max) — the range tested in tests/test_core_mteb_compat.py


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
    """Whether mteb resolves ``name`` without the hub (a registered name or a lam-mteb bare
    name)."""
    return name in _model_registry() or _bare_to_full(name) is not None


def add_model(name: str, meta: Any) -> None:
    _model_registry()[name] = meta


def remove_model(name: str) -> None:
    _model_registry().pop(name, None)


# bare name -> full name of lam-mteb's models (``lam-state`` -> ``lam-mteb/lam-state``): mteb's
# registry holds only the full name; :func:`install_bare_name_lookup` resolves the bare one
_bare_names: dict[str, str] = {}


def set_bare_names(mapping: Mapping[str, str]) -> None:
    _bare_names.clear()
    _bare_names.update(mapping)


def bare_names() -> dict[str, str]:
    return dict(_bare_names)


def _bare_to_full(name: str) -> str | None:
    if not isinstance(name, str) or name in _model_registry():
        return None  # a name mteb has itself always wins
    return _bare_names.get(name)


def install_bare_name_lookup() -> None:
    """Wrap ``mteb.get_model_meta`` once so that a lam-mteb bare name resolves to its full name.

    ``mteb.get_model`` and the ``mteb run -m`` CLI look the name up through the module global
    ``mteb.models.get_model_meta.get_model_meta``; the public ``mteb.get_model_meta`` is rebound
    too.
    """
    import mteb
    from mteb.models import get_model_meta as module

    original = module.get_model_meta
    if getattr(original, "__lam_mteb__", False):
        return

    @functools.wraps(original)
    def get_model_meta(model_name: str, *args: Any, **kwargs: Any) -> Any:
        return original(_bare_to_full(model_name) or model_name, *args, **kwargs)

    get_model_meta.__lam_mteb__ = True  # type: ignore[attr-defined]
    module.get_model_meta = get_model_meta
    if getattr(mteb, "get_model_meta", None) is original:
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
    re-exported as ``mteb.get_task(s)``) once, so that ``before()`` runs before each lookup."""
    import mteb

    module = _get_tasks_module()
    for name in ("get_task", "get_tasks"):
        original = getattr(module, name)
        if getattr(original, "__lam_mteb__", False):
            continue

        def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            before()
            return _original(*args, **kwargs)

        functools.update_wrapper(wrapper, original)
        wrapper.__lam_mteb__ = True  # type: ignore[attr-defined]
        setattr(module, name, wrapper)
        if getattr(mteb, name, None) is original:
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

_patched_classes: set[type[AbsTask]] = set()


def wrap_load_data(cls: type[AbsTask], make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace ``load_data`` of ``cls`` (its own or the one it inherits: the parent task type is
    left alone) and of its subclasses that override it with ``make_wrapper(original)`` (once per
    class)."""
    from mteb.abstasks import AbsTask

    if cls not in _patched_classes and issubclass(cls, AbsTask) and "load_data" not in cls.__dict__:
        # mypy forbids assigning to a method; patching it is the point here
        setattr(cls, "load_data", make_wrapper(cls.load_data))  # noqa: B010
        _patched_classes.add(cls)
    stack = [cls]
    while stack:
        c = stack.pop()
        stack.extend(c.__subclasses__())
        if "load_data" in c.__dict__ and c not in _patched_classes and issubclass(c, AbsTask):
            setattr(c, "load_data", make_wrapper(c.__dict__["load_data"]))  # noqa: B010
            _patched_classes.add(c)


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
