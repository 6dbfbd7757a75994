"""`keel serve` driven in headless Debian Chromium: the runs table, a curve that grows while we watch,
the campaign and its safety card, and a memory search. Screenshots go to tests/serve/artifacts/."""

from __future__ import annotations

import math
import time

import pytest


def test_runs_table_lists_the_runs_made_here(server, page, artifacts):
    page.goto(server + "/")
    page.wait_for_selector("#runs tbody tr")
    names = page.locator("#runs tbody tr td:nth-child(2) a").all_inner_texts()
    assert {"spec-seed0", "spec-seed1", "redteam-tiny", "torn", "bad-summary"} <= set(names)
    row = page.locator("#runs tbody tr", has_text="spec-seed1")
    assert "finished" in row.inner_text() and "satisfaction" in row.inner_text()
    assert page.locator("#runs tbody tr", has_text="bad-summary").locator(".warn-icon").count() == 1
    page.screenshot(path=str(artifacts / "runs_table.png"))
    # filter and sort
    page.fill("#filter", "redteam")
    assert page.locator("#runs tbody tr").count() == 1
    page.fill("#filter", "")
    page.click("th[data-key=name]")
    names = page.locator("#runs tbody tr td:nth-child(2) a").all_inner_texts()
    assert names == sorted(names)
    assert not page.errors


def test_running_curve_grows_while_we_watch(server, runs_dir, page, artifacts):
    from keel.runs import Run

    run = Run.create(runs_dir, "live", {"kind": "llm_rl", "seed": 0, "lr": 1e-5}, "llm-tiny")
    for i in range(5):
        run.log(i, loss=math.exp(-i / 10), reward=i / 50)
    page.goto(server + "/run/live")
    chart = page.locator("#chart-loss")
    page.wait_for_function("document.querySelector('#chart-loss')?.dataset.points === '5'")
    assert page.locator("#status").inner_text() == "running"
    for i in range(5, 25):  # the run keeps training while the page is open
        run.log(i, loss=math.exp(-i / 10), reward=i / 50)
        time.sleep(0.05)
    page.wait_for_function("document.querySelector('#chart-loss').dataset.points === '25'", timeout=10_000)
    xs = page.evaluate("document.querySelector('#chart-loss').data.at(-1).x")
    assert xs == list(range(25))
    chart.screenshot(path=str(artifacts / "live_curve.png"))
    # overlay another run, then finish this one: the badge follows
    run.write_summary({"reward": 0.5})
    run.set_status("finished")
    run.close()
    page.wait_for_function("document.querySelector('#status').textContent === 'finished'", timeout=10_000)
    page.screenshot(path=str(artifacts / "run_page.png"))
    assert not page.errors


@pytest.mark.slow  # also covered without a browser in test_serve_api
def test_overlay_and_config_diff(server, page, artifacts):
    page.goto(server + "/run/spec-seed0?overlay=spec-seed1")
    page.wait_for_function("document.querySelector('#chart-loss')?.data?.filter(t => t.showlegend !== false).length === 2")
    page.screenshot(path=str(artifacts / "overlay.png"))
    page.goto(server + "/compare?a=spec-seed0&b=spec-seed1")
    differing = page.locator("#diff tr.differs td:first-child").all_inner_texts()
    assert set(differing) == {"seed", "ppo.lr"}
    page.screenshot(path=str(artifacts / "config_diff.png"))


def test_campaign_results_safety_card_and_transcript(server, page, artifacts):
    page.goto(server + "/run/redteam-tiny#campaign")
    page.wait_for_selector("#camp-table table")
    assert "follower" in page.locator("#camp-table").inner_text()
    assert "multilingual" in page.locator("#camp-family").inner_text()
    assert "sw" in page.locator("#camp-lang").inner_text()
    assert "banking" in page.locator("#camp-suite").inner_text()
    page.screenshot(path=str(artifacts / "campaign.png"), full_page=True)
    page.click("#tabs button[data-tab=safety]")
    frame = page.frame_locator("#safety-frame")
    frame.locator("h1").wait_for()
    assert frame.locator("h1").inner_text() == "Safety card: redteam-tiny"
    assert "targeted ASR" in frame.locator("body").inner_text()
    page.screenshot(path=str(artifacts / "safety_card.png"))
    page.click("#tabs button[data-tab=campaign]")
    page.locator("a.transcript-link").nth(4).click()  # one click from the table to a transcript
    page.wait_for_selector("#transcript")
    assert "send_money" in page.locator("#transcript").inner_text()
    page.screenshot(path=str(artifacts / "transcript.png"), full_page=True)
    assert not page.errors


def test_memory_search_shows_every_mode(server, page, artifacts):
    page.goto(server + "/memory")
    page.wait_for_selector("#items table")
    assert "alice" in page.locator("#ns").inner_text() and "bob" in page.locator("#ns").inner_text()
    page.fill("#query", "where does she work?")
    page.click("#search-form button")
    page.wait_for_selector(".mode[data-mode=hierarchical]")
    modes = page.locator(".mode h3").all_inner_texts()
    assert [m.split()[0] for m in modes] == ["bm25", "dense", "hybrid", "reliable", "hierarchical"]
    assert "doctor" in page.locator(".mode[data-mode=bm25]").inner_text()
    page.locator(".mode[data-mode=bm25] a").first.click()  # an item's provenance and history
    page.wait_for_selector("#item-detail h3")
    assert "History (2 versions)" in page.locator("#item-detail").inner_text()
    page.screenshot(path=str(artifacts / "memory.png"), full_page=True)
    assert not page.errors


@pytest.mark.slow  # also covered without a browser in test_serve_api
def test_bad_inputs_show_a_message(server, page, artifacts):
    page.goto(server + "/run/torn")
    page.wait_for_function("document.querySelector('#chart-loss')?.dataset.points === '5'")
    assert "torn line" in page.locator(".problem").inner_text()
    page.goto(server + "/run/bad-summary")
    assert "summary.json is not valid JSON" in page.locator(".problem").inner_text()
    resp = page.goto(server + "/run/nope")
    assert resp.status == 404 and "no run" in page.locator("#error").inner_text()
    page.screenshot(path=str(artifacts / "not_found.png"))
