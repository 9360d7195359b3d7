"""One rule for every entry point: after a 250 m model, a retrain started from the command
line and one started on the dashboard's Models page both fit on the category's 250 m grid
(neither passes a cell size; the training workflow keeps the grid)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import fake_checkpoint
from streamlit.testing.v1 import AppTest

from safety_models import cli
from safety_models.modeling import city, registry
from safety_models.service import jobs, workflows

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CELL_SIZE_M = 250.0


class GridSeen(Exception):
    """Stops a retrain once its grid is known: the grid is all these tests need."""


def test_cli_and_dashboard_retrain_on_the_grid_of_a_250_m_model(crime_store, monkeypatch):
    # A 250 m model of crime (its weights do not matter here), the active one, as the first
    # model's training leaves it: saved, and its grid recorded as the category's.
    grid_250 = city.prepare_city(crime_store, "crime", cell_size_m=CELL_SIZE_M).grid
    registry.save_model(crime_store, fake_checkpoint(grid=grid_250), "crime")
    city.record_grid(crime_store, "crime", grid_250)
    grid_250 = grid_250.to_dict()

    grids = []
    training_city = workflows.training_city

    def spy(store, train_cfg):
        grids.append(training_city(store, train_cfg).grid.to_dict())
        raise GridSeen()

    monkeypatch.setattr(workflows, "training_city", spy)

    # The command line, with its defaults (no --cell-size-m).
    with pytest.raises(GridSeen):
        cli.main(["train", "--category", "crime"])

    # The dashboard: the Models page starts a job; its process would run this config.
    configs = []
    monkeypatch.setattr(jobs, "start_job", lambda store, kind, config, on_created=None:
                        configs.append((kind, config)) or 999)
    monkeypatch.setenv("SAFETY_MODELS_ADMIN_PASSWORD", "admin-password-for-tests")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.text_input(key="login_name").set_value("admin")
    at.text_input(key="login_password").set_value("admin-password-for-tests")
    at.button(key="login_submit").click().run()
    at.switch_page("pages/models_page.py").run()
    at.button(key="train_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [(kind, config)] = configs
    assert kind == "train" and config["category"] == "crime"
    with pytest.raises(GridSeen):
        jobs.run_job_inline(crime_store, kind, config)

    assert grids == [grid_250, grid_250]
