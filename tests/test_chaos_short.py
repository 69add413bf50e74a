"""The fault campaign (bench/chaos.py) in short: that it counts what it claims, and its verdict.

``test_chaos_short_counts_*`` prove the campaign's counting can fail: operators made to start
twice, to raise something that is not a ``BpmError``, to leak a credential into a DEBUG log, to
spoil or lose a file must each show up in the figure that judges it.

``test_chaos_short_zero_bad_figures`` runs every connection type and path briefly at 10% faults.
It checks that the campaign ran and injected faults, and that every bad figure is 0
(``BPM_CHAOS_REQUIRE_ZEROS=0`` skips only that last check, to study a failure). The 99% success
rate per try needs more runs than a unit test can afford: ``make chaos`` judges it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
from pathlib import Path

import pytest

from airflow_bpm_provider.exceptions import BpmTransferError
from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.testing.fault_proxy import KINDS

# The campaign must show no bad figure; BPM_CHAOS_REQUIRE_ZEROS=0 turns that off to study a failure.
REQUIRE_ZEROS = os.environ.get("BPM_CHAOS_REQUIRE_ZEROS", "1") == "1"


def _load_campaign():
    path = Path(__file__).resolve().parent.parent / "bench" / "chaos.py"
    spec = importlib.util.spec_from_file_location("bench_chaos", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chaos = _load_campaign()


@pytest.fixture(scope="module")
def campaign():
    with chaos.open_campaign(seed=5, only=["yuuvis", "questetra"]) as running:
        yield running


class StartsTwice(BpmStartProcessOperator):
    def execute(self, context):
        instance_id = super().execute(context)
        with self.get_hook() as hook:
            hook.start_process(self.process, variables=self.variables)
        return instance_id


class LeaksAndRaisesValueError(BpmStartProcessOperator):
    def execute(self, context):
        password = os.environ["CHAOS_TEST_PASSWORD"]
        logging.getLogger("airflow_bpm_provider.hooks.base").debug("sending password %s", password)
        raise ValueError("not a BpmError, names nothing")


class RaisesANamedBpmError(BpmStartProcessOperator):
    def execute(self, context):
        super().execute(context)
        # A real failed call of this try (a retry reattaches to the stored id and starts nothing,
        # so only a path requested in the same try counts as named).
        with self.get_hook() as hook:
            hook.get_process("999999999")


class SpoilsOneFileAndLosesAnother(BpmDownloadProcessFilesOperator):
    def execute(self, context):
        manifest = super().execute(context)
        written = [entry for entry in manifest if entry["path"]]
        Path(self.destination, written[0]["path"]).write_bytes(b"spoiled")
        Path(self.destination, written[1]["path"]).unlink()
        return manifest


def test_chaos_short_counts_duplicate_starts(campaign):
    tally = campaign.start_runs(campaign.target("yuuvis"), 2, math.inf, 11, operator=StartsTwice)

    assert (tally.runs, tally.tries, tally.ok_tries) == (2, 2, 2)
    assert tally.dup_starts == 2
    assert tally.lost_starts == 0
    assert tally.bad() == 2


def test_chaos_short_counts_raw_errors_unnamed_failures_and_leaked_secrets(campaign, monkeypatch):
    target = campaign.target("yuuvis")
    monkeypatch.setenv("CHAOS_TEST_PASSWORD", target.password)

    tally = campaign.start_runs(target, 1, math.inf, 12, operator=LeaksAndRaisesValueError)

    assert (tally.runs, tally.tries, tally.ok_tries, tally.failed_runs) == (1, 3, 0, 1)  # Airflow's 3 tries
    assert (tally.not_bpm, tally.unnamed, tally.secrets) == (3, 3, 3)

    table = chaos.format_report(chaos.Report(0.0, 12, 3, [tally], 1.0))
    assert "secret" in table and target.password not in table  # the table never repeats a secret

    named = campaign.start_runs(target, 1, math.inf, 13, operator=RaisesANamedBpmError)
    assert (named.tries, named.failed_runs) == (3, 1)
    assert (named.not_bpm, named.unnamed, named.secrets) == (0, 0, 0)
    assert named.dup_starts == 0  # the business key finds the first try's process


def test_chaos_short_an_error_listing_failures_names_system_and_connection_and_each_a_path(campaign):
    target = campaign.target("yuuvis")
    where = {"system": "yuuvis Momentum", "conn_id": target.conn_id}
    requested = {"/dms/objects/7/contents/file"}
    per_file = "file 'a.pdf' of process 1: GET /dms/objects/7/contents/file broke off"

    assert chaos.names_where(
        BpmTransferError("export incomplete", **where, details=[per_file]), target, requested
    )
    assert not chaos.names_where(BpmTransferError("export incomplete", details=[per_file]), target, requested)
    assert not chaos.names_where(
        BpmTransferError("export incomplete", **where, details=[per_file, "file 'b.pdf': broke off"]),
        target,
        requested,
    )
    assert not chaos.names_where(ValueError("GET /dms/objects/7/contents/file"), target, requested)


def test_chaos_short_counts_corrupt_and_missing_files(campaign):
    tally = campaign.export_runs(
        campaign.target("yuuvis"), 1, math.inf, 14, operator=SpoilsOneFileAndLosesAnother
    )

    assert (tally.runs, tally.tries, tally.ok_tries) == (1, 1, 1)
    assert (tally.corrupt, tally.missing) == (1, 1)


def test_chaos_short_a_start_answer_lost_after_the_server_acted_is_reported_not_judged(campaign):
    target = campaign.target("questetra")
    engine = campaign.emu.engine
    before = set(engine.instances)
    mark = campaign.proxy.mark()

    def lose_the_start_answer(proxy):
        proxy.force("lost", "/API/PE/ProcessInstance/start", method="POST")

    tally = campaign.start_runs(target, 1, math.inf, 15, scenarios=[lose_the_start_answer])

    lost = [e for e in campaign.proxy.exchanges_since(mark) if e.answer_lost]
    assert [(e.method, e.path.rsplit("/", 3)[-3:]) for e in lost] == [
        ("POST", ["PE", "ProcessInstance", "start"])
    ]
    started = len(set(engine.instances) - before)
    assert tally.dup_starts == 0  # the window a lost answer leaves is not judged ...
    assert tally.lost_starts == started - 1  # ... but reported: 1 today, 0 once a retry adopts it


def test_chaos_short_proxy_faults_reach_the_table(campaign):
    campaign.proxy.rate = 0.5
    try:
        tally = campaign.start_runs(campaign.target("yuuvis"), 3, math.inf, 16)
    finally:
        campaign.proxy.rate = 0.0
    assert tally.runs == 3 and tally.tries >= 3
    assert sum(tally.faults.values()) >= 3
    assert set(tally.faults) <= set(KINDS)
    report = chaos.Report(0.5, 5, 3, [tally], 1.0)
    assert "yuuvis" in chaos.format_report(report)


def test_chaos_short_zero_bad_figures():
    report = chaos.run_campaign(runs=2, rate=0.10, seed=9, seconds=30, after_skips=(0,))
    table = chaos.format_report(report)
    print(table)

    cells = {(row.label, row.path) for row in report.rows}
    assert len(cells) == 7 * len(chaos.PATHS), table
    assert all(row.runs >= 1 and row.tries >= row.runs for row in report.rows), table
    assert sum(sum(row.faults.values()) for row in report.rows) > 0, table
    assert report.proxy_errors == []
    if REQUIRE_ZEROS:
        # Two runs cannot measure a 99% success rate per try: `make chaos` judges that.
        assert report.problems(success_per_try=None) == [], table
