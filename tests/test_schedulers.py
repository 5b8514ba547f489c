"""``diffusion.schedulers.make_scheduler`` builds, for every name ``run_DB.py --scheduler`` accepts, the scheduler that
``tests/test_pipeline.py`` compares against the stock diffusers pipeline (w = (1, 0) is the stock pipeline with that
adapter, DB-MPA a hand blend), and every such name has those tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from diffusion.schedulers import SCHEDULERS, make_scheduler


def _pipeline_tests():
    path = Path(__file__).with_name("test_pipeline.py")
    spec = importlib.util.spec_from_file_location("_pipeline_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = _pipeline_tests().SCHEDULERS


def test_every_scheduler_name_has_its_stock_pipeline_tests():
    assert set(SCHEDULERS) == set(REFERENCE)


@pytest.mark.parametrize("sched", sorted(REFERENCE))
def test_make_scheduler_builds_the_class_the_pipeline_tests_use(tiny_bundle, sched):
    made, ref = make_scheduler(sched, tiny_bundle.scheduler.config), REFERENCE[sched](tiny_bundle.scheduler.config)
    assert type(made) is type(ref) and dict(made.config) == dict(ref.config)
