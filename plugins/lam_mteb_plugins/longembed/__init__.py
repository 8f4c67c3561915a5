"""Offline LongEmbed tasks: builders that let mteb's own LEMB* tasks run without the hub.

Registered through the ``register_datasets`` hook (see docs/longembed.md):

* ``mteb/LEMBPasskeyRetrieval`` (mteb's LEMBPasskeyRetrieval): a deterministic generator after
  the LongEmbed paper; needs no raw files.  A local re-creation.
* ``dwzhu/LongEmbed`` (shared by mteb's LEMBNeedleRetrieval, LEMBQMSumRetrieval,
  LEMBNarrativeQARetrieval, LEMBSummScreenFDRetrieval, LEMBWikimQARetrieval): builds the configs
  ``needle`` (from ``longtext/paul_graham_essays/``), ``qmsum`` (from ``qmsum/{train,val}/``) and
  ``passkey`` (the generator above); the others (narrativeqa, summ_screen_fd, 2wikimqa) have no
  offline source and are listed, with what was looked for, under ``missing_configs`` in the
  folder's ``lam_mteb_recreation.json``.

This module only declares the hooks; the generators are imported when a builder runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import lam_mteb

if TYPE_CHECKING:
    from lam_mteb.contract import RegisterBenchmark, RegisterDataset

BUILDER_VERSION = "2"

PASSKEY_PATH = "mteb/LEMBPasskeyRetrieval"
LONGEMBED_PATH = "dwzhu/LongEmbed"
#: dwzhu/LongEmbed configs mteb reads and that no local source can rebuild
UNAVAILABLE_CONFIGS = {
    "narrativeqa": "LEMBNarrativeQARetrieval (NarrativeQA books/scripts: "
    "not in the data directory)",
    "summ_screen_fd": "LEMBSummScreenFDRetrieval (SummScreenFD transcripts: "
    "not in the data directory)",
    "2wikimqa": "LEMBWikimQARetrieval (2WikiMultihopQA passages: not in the data directory)",
}


def build_passkey(source_dir: Path, target_dir: Path, *, seed: int | None = None) -> None:
    """mteb/LEMBPasskeyRetrieval from the built-in generator (reads no raw files).

    Configs corpus / queries / default, splits test_256 ... test_32768.
    """
    from lam_mteb.data import write_hf_dataset
    from lam_mteb_plugins.longembed import passkey

    seed = passkey.DEFAULT_SEED if seed is None else seed
    data = passkey.generate(seed=seed)
    write_hf_dataset(
        target_dir,
        passkey.mteb_passkey_configs(data),
        card=_card("LEMBPasskeyRetrieval", "passkey.py"),
        recreation=_marker(
            PASSKEY_PATH,
            {"passkey": {"kind": "re-created (generated)", **passkey.summary(data, seed)}},
        ),
    )


def build_longembed(source_dir: Path, target_dir: Path, *, seed: int | None = None) -> None:
    """dwzhu/LongEmbed configs needle (longtext/paul_graham_essays/), qmsum (qmsum/train, qmsum/val)
    and passkey (generated).  Raises DataNotFound when neither longtext nor qmsum is present."""
    from lam_mteb.data import write_hf_dataset
    from lam_mteb_plugins.longembed import needle, passkey, qmsum

    source_dir = Path(source_dir)
    configs, info, missing = {}, {}, dict(UNAVAILABLE_CONFIGS)
    essays = source_dir / needle.ESSAYS_DIR
    try:
        if not any(essays.glob("*.txt")):
            raise lam_mteb.DataNotFound(f"no essays: looked for {essays}/*.txt")
        seed_n = needle.DEFAULT_SEED if seed is None else seed
        ndata = needle.generate(essays, seed=seed_n)
        configs["needle"] = passkey.longembed_config(ndata)
        info["needle"] = {
            "kind": "re-created (generated needles, original haystack)",
            **needle.summary(ndata, seed_n),
        }
    except lam_mteb.DataNotFound as exc:
        missing["needle"] = f"LEMBNeedleRetrieval: {exc}"
    try:
        rows = qmsum.build_rows(source_dir / qmsum.QMSUM_DIR)
        configs["qmsum"] = qmsum.longembed_config(rows)
        info["qmsum"] = {"kind": "rebuilt from the QMSum source", **qmsum.summary(rows)}
    except lam_mteb.DataNotFound as exc:
        missing["qmsum"] = f"LEMBQMSumRetrieval: {exc}"
    if not configs:
        raise lam_mteb.DataNotFound(
            f"looked for {essays}/*.txt (LEMBNeedleRetrieval) and {source_dir / qmsum.QMSUM_DIR}"
            "/{train,val}/*.json (LEMBQMSumRetrieval)"
        )
    seed_p = passkey.DEFAULT_SEED if seed is None else seed
    pdata = passkey.generate(seed=seed_p)
    configs["passkey"] = passkey.longembed_config(pdata)
    info["passkey"] = {"kind": "re-created (generated)", **passkey.summary(pdata, seed_p)}
    write_hf_dataset(
        target_dir,
        configs,
        card=_card("dwzhu/LongEmbed (needle, qmsum, passkey)", "needle.py, qmsum.py"),
        recreation=_marker(LONGEMBED_PATH, info, missing),
    )


def _marker(dataset_path: str, configs: dict, missing: dict | None = None) -> dict:
    return {
        "recreation": True,
        "dataset": dataset_path,
        "plugin": "lam_mteb_plugins.longembed",
        "builder_version": BUILDER_VERSION,
        "note": "local re-creation for offline evaluation; not the published data: scores are not "
        "directly comparable with published LongEmbed numbers",
        "configs": configs,
        "missing_configs": missing or {},
    }


def _card(what: str, modules: str) -> str:
    return (
        f"# {what} (lam-mteb local re-creation)\n\nBuilt offline by lam_mteb_plugins.longembed "
        f"({modules}); see docs/longembed.md. Not the published dataset.\n"
    )


@lam_mteb.hookimpl
def register_datasets(register: RegisterDataset) -> None:
    register(
        PASSKEY_PATH,
        build_passkey,
        inputs=(),
        recreation=True,
        version=BUILDER_VERSION,
        description="LongEmbed passkey task re-created by a seeded generator (no raw files needed)",
    )
    register(
        LONGEMBED_PATH,
        build_longembed,
        inputs=("longtext", "qmsum"),
        recreation=True,
        version=BUILDER_VERSION,
        description="LongEmbed needle (re-created on the Paul Graham essays), qmsum (rebuilt from "
        "QMSum train+val) and passkey (generated); other configs unavailable offline",
    )


@lam_mteb.hookimpl
def register_benchmarks(register: RegisterBenchmark) -> None:
    register(
        "long-context",
        "Long context: LongEmbed",
        (
            "LEMBPasskeyRetrieval",
            "LEMBNeedleRetrieval",
            "LEMBNarrativeQARetrieval",
            "LEMBQMSumRetrieval",
            "LEMBSummScreenFDRetrieval",
            "LEMBWikimQARetrieval",
        ),
        prefix="LEMB",
        position=20,
        description="LongEmbed: Passkey and Needle (nDCG@1 = accuracy@1, mean over the 8 context "
        "lengths 256…32768), NarrativeQA, QMSum, 2WikiMultihopQA (nDCG@10, test) and "
        "SummScreenFD (nDCG@10, validation).",
        recreations={
            "LEMBQMSumRetrieval": "rebuilt from the raw QMSum meetings, with the published 1 527 "
            "queries and 197 documents",
            "LEMBPasskeyRetrieval": "re-generated (the published filler, our own names, keys and "
            "positions): not comparable with published numbers",
            "LEMBNeedleRetrieval": "re-generated (our own invented needles in the published essay "
            "haystack): not comparable with published numbers",
        },
        abbreviations={
            "LEMBPasskeyRetrieval": "Passkey",
            "LEMBNeedleRetrieval": "Needle",
            "LEMBNarrativeQARetrieval": "NQA",
            "LEMBQMSumRetrieval": "QMSum",
            "LEMBSummScreenFDRetrieval": "SFD",
            "LEMBWikimQARetrieval": "2WmQA",
        },
    )
