"""End to end in a real browser: Debian's headless Chromium driven by Playwright.

Screenshots go to ``$GRPOKIT_SCREENSHOT_DIR`` when set (docs/explorer-group.png is made that way,
see docs/explorer.md), else to pytest's tmp dir.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from grpokit.explorer import server as srv
from grpokit.explorer.scaling import scale_group
from grpokit.run_folder import RunReader, RunWriter

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is not installed (apt-get install chromium; scripts/setup_test_extras.sh)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")


def signed(a: float) -> str:
    """The page's label format: sign, two decimals, a real minus sign."""
    s = f"{abs(a):.2f}"
    return "0.00" if float(s) == 0 else ("+" if a > 0 else "−") + s


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("GRPOKIT_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def live_run(tmp_path_factory) -> Path:
    """A run that is still training: one step written, status running (the test writes step 2)."""
    d = tmp_path_factory.mktemp("live") / "live-run"
    w = RunWriter(d)
    w.write_config({"task": {"name": "add2"}, "algo": {"name": "grpo"}})
    w.set_status("running", step=1, total_steps=2)
    w.log_metrics(1, {"reward/mean": 0.25, "loss/kl": 0.0, "policy/entropy": 0.9})
    return d


@pytest.fixture(scope="module")
def backend(module_backend):
    return module_backend


@pytest.fixture(scope="module")
def url(run_dir, ppo_run_dir, live_run, backend):
    s = srv.make_server([run_dir, ppo_run_dir, live_run], port=0, backend=backend)
    srv.serve_in_thread(s)
    yield f"http://127.0.0.1:{s.server_address[1]}/"
    s.shutdown()
    s.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page that records console errors and uncaught exceptions; the test fails on any."""
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:")) else problems.append(f"external request {r.url}"))
    yield pg
    pg.close()
    assert problems == []


def adv_labels(page) -> list[tuple[str, float]]:
    labels = page.locator("#group-view .adv-label, #try-result .adv-label")
    return [(labels.nth(i).text_content(), float(labels.nth(i).get_attribute("data-value"))) for i in range(labels.count())]


def test_group_view_shows_the_advantages_of_the_rollout_dump(page, url, run_dir, shots):
    page.goto(url)
    page.get_by_role("link", name="Step browser (2 steps) →").first.click()
    page.wait_for_selector("a.group-row[href$='/step/2/group/0']")  # the link opens the last step
    page.select_option("#step-select", "1")
    # step 2's rows stay on the page until step 1's answer arrives: wait for step 1's own rows
    page.click("a.group-row[href$='/step/1/group/0']")
    page.wait_for_selector("#group-view .adv-label")
    dump = RunReader(run_dir).groups(1)[0]
    want = [c["advantage"] for c in dump["completions"]]
    shown = adv_labels(page)
    assert [t for t, _ in shown] == [signed(a) for a in want]
    assert [v for _, v in shown] == pytest.approx(want, abs=1e-9)
    assert page.locator(".baseline-label").text_content() == f"group mean = {dump['baseline']:.2f}"
    page.mouse.move(1, 1)  # no hover highlight in the picture
    page.screenshot(path=str(shots / "explorer-group.png"), full_page=True)
    # The full text of a completion, with the extracted answer highlighted.
    page.locator(".col-hit[data-index='1']").click()
    assert page.locator(".modal pre").inner_text() == dump["completions"][1]["text"]
    assert page.locator(".modal mark").inner_text() == dump["completions"][1]["extracted"]
    page.keyboard.press("Escape")
    assert page.locator(".modal").count() == 0


def test_filters_pick_groups_by_their_flags(page, url):
    page.goto(url + "#/run/0/step/1")
    page.wait_for_selector(".group-row")
    assert page.locator("a.group-row").count() == 4
    page.select_option("select[data-filter='zero_variance']", "only")
    assert [page.locator("a.group-row").nth(i).get_attribute("data-group") for i in range(page.locator("a.group-row").count())] == ["1"]
    page.select_option("select[data-filter='zero_variance']", "hide")
    page.select_option("select[data-filter='truncated']", "only")
    assert page.locator("a.group-row").count() == 2
    page.select_option("select[data-filter='truncated']", "hide")
    page.select_option("select[data-filter='format_failure']", "only")
    assert page.locator("a.group-row").count() == 1  # group 0: one completion without \boxed{}


def test_critic_toggle_switches_the_baseline(page, url, ppo_run_dir, shots):
    page.goto(url + "#/run/1/step/1/group/2")
    page.wait_for_selector("#group-view .adv-label")
    comps = RunReader(ppo_run_dir).groups(1)[2]["completions"]
    assert page.locator("input[value='critic']").is_checked()
    assert [v for _, v in adv_labels(page)] == pytest.approx([c["advantage"] for c in comps])
    assert page.locator(".baseline-tick").count() == len(comps)
    assert "extra parameters" in page.locator(".cost-line").inner_text()
    page.screenshot(path=str(shots / "explorer-critic.png"), full_page=True)
    page.check("input[value='mean']")
    want = scale_group([c["reward"] for c in comps]).advantages
    assert [v for _, v in adv_labels(page)] == pytest.approx(want, abs=1e-6)
    assert page.locator(".baseline-label").text_content().startswith("group mean = ")


def test_try_it_samples_then_rescales_without_resampling(page, url, backend, shots):
    backend.calls.clear()
    page.emulate_media(reduced_motion="reduce")  # the picture without the appear-in-order animation
    page.goto(url + "#/try/0")
    page.wait_for_selector("#sample")
    page.fill("#G", "4")
    page.click("#sample")
    page.wait_for_selector("#try-result .adv-label")
    rewards = backend.REWARDS[:4]
    assert [v for _, v in adv_labels(page)] == pytest.approx(scale_group(rewards, "group").advantages, abs=1e-6)
    page.screenshot(path=str(shots / "explorer-try.png"), full_page=True)
    page.check("input[name='scale'][value='rloo']")
    # Waits go through locators: the page's CSP forbids the eval that wait_for_function needs.
    sync_api.expect(page.locator("#try-formula")).to_contain_text("OTHER")
    assert [v for _, v in adv_labels(page)] == pytest.approx(scale_group(rewards, "rloo").advantages, abs=1e-6)
    assert len(backend.calls) == 1  # a new scaling re-computes; it does not sample again
    page.fill("#G", "6")
    page.dispatch_event("#G", "change")
    sync_api.expect(page.locator("#try-result .adv-label")).to_have_count(6)
    assert len(backend.calls) == 2 and backend.calls[-1][3] == 6


def test_runs_page_shows_curves_and_follows_a_live_run(page, url, live_run, shots):
    page.goto(url)
    page.wait_for_selector(".chart svg")
    assert page.locator(".run-card").count() == 3
    assert page.locator(".run-card[data-run='2'] .badge").inner_text() == "running"
    assert page.locator("section.cost").count() == 1
    page.screenshot(path=str(shots / "explorer-runs.png"), full_page=True)
    w = RunWriter(live_run)
    w.log_metrics(2, {"reward/mean": 0.5, "loss/kl": 0.001, "policy/entropy": 0.85})
    w.set_status("finished", step=2, total_steps=2)
    sync_api.expect(page.locator(".run-card[data-run='2'] .badge")).to_have_text("finished", timeout=10_000)
    assert "live-run: 0.500 at step 2" in page.locator(".chart").first.inner_text()


def test_a_run_deleted_while_serving_shows_an_error(browser, run_dir, tmp_path):
    doomed = shutil.copytree(run_dir, tmp_path / "doomed")
    s = srv.make_server([run_dir, doomed], port=0)
    srv.serve_in_thread(s)
    try:
        pg = browser.new_page()
        base = f"http://127.0.0.1:{s.server_address[1]}/"
        shutil.rmtree(doomed)
        pg.goto(base)
        pg.wait_for_selector(".run-card[data-run='1'] .error")
        assert "does not exist" in pg.locator(".run-card[data-run='1'] .error").inner_text()
        assert pg.locator(".run-card[data-run='0'] .badge").inner_text() == "finished"
        pg.goto(base + "#/run/1/step/1")
        pg.wait_for_selector(".error")
        pg.close()
    finally:
        s.shutdown()
        s.server_close()


def test_a_real_two_step_training_run_in_the_browser(page, tiny_model, tmp_path, shots):
    """The issue's end-to-end check: a run folder written by the trainer (tiny model, 2 steps)."""
    import json

    from grpokit.config import make
    from grpokit.train.loop import train

    task = tmp_path / "sums.jsonl"
    task.write_text("".join(json.dumps({"question": f"{a} + {b}", "answer": str(a + b)}) + "\n"
                            for a in range(5) for b in range(5)))
    run = train(make(overrides=dict(model=tiny_model, task=str(task), out=str(tmp_path / "real-run"), steps=2,
                                     prompts_per_step=2, group_size=4, max_new_tokens=6, eval_size=0, progress=False,
                                     rewards={"final_number": 1.0, "tests.train.rewards_for_tests:digit_share": 1.0},
                                     task_options={"heldout_size": 4})))
    s = srv.make_server([run], port=0)
    srv.serve_in_thread(s)
    try:
        page.goto(f"http://127.0.0.1:{s.server_address[1]}/#/run/0/step/1")
        page.wait_for_selector(".group-row[data-group='0']")
        page.click(".group-row[data-group='0']")
        page.wait_for_selector("#group-view .adv-label")
        dump = RunReader(run).groups(1)[0]
        want = [c["advantage"] for c in dump["completions"]]
        shown = adv_labels(page)
        assert [t for t, _ in shown] == [signed(a) for a in want]
        assert [v for _, v in shown] == pytest.approx(want, abs=1e-9)
        page.screenshot(path=str(shots / "explorer-real-run.png"), full_page=True)
    finally:
        s.shutdown()
        s.server_close()


def test_a_large_step_is_paged_in_the_browser(browser, run_dir, tmp_path):
    """120 groups: the list shows 50 at a time, the pager turns pages, a group far down opens alone."""
    big = shutil.copytree(run_dir, tmp_path / "big")
    dump = RunReader(run_dir).groups(1)
    groups = [{**dump[i % len(dump)], "question": f"question {i}"} for i in range(120)]
    (big / "rollouts" / "step_000001.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups), encoding="utf-8")
    s = srv.make_server([big], port=0)
    srv.serve_in_thread(s)
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        base = f"http://127.0.0.1:{s.server_address[1]}/"
        pg.goto(base + "#/run/0/step/1")
        pg.wait_for_selector("a.group-row")
        rows = pg.locator("a.group-row")
        assert rows.count() == 50 and rows.first.get_attribute("data-group") == "0"
        assert "Step 1: 120 groups" in pg.locator("h2").first.inner_text()
        assert pg.locator(".pager .muted").inner_text() == "groups 0–49 of 120"
        pg.get_by_role("button", name="later groups ›").click()
        pg.wait_for_selector("a.group-row[data-group='50']")
        pg.get_by_role("button", name="later groups ›").click()
        pg.wait_for_selector("a.group-row[data-group='100']")
        assert pg.locator("a.group-row").count() == 20
        assert pg.get_by_role("button", name="later groups ›").is_disabled()
        pg.click("a.group-row[data-group='117']")
        pg.wait_for_selector("#group-view .adv-label")
        assert "question 117" in pg.locator("h2.group-title").inner_text()
        pg.get_by_role("link", name="next group ›").click()
        pg.locator("h2.group-title", has_text="question 118").wait_for()  # a locator wait: the CSP forbids eval
        pg.get_by_role("link", name="‹ all groups of step 1").click()
        pg.wait_for_selector("a.group-row[data-group='118']")  # back on the page that holds it
        assert problems == []
    finally:
        pg.close()
        s.shutdown()
        s.server_close()


def test_an_episode_shows_turn_by_turn_with_its_masked_spans(browser, run_dir, tmp_path):
    """A multi-turn completion: the dialog shows each turn (model, tool call, tool result) and which
    token spans were trained on and which were masked out of the loss."""
    ep_dir = shutil.copytree(run_dir, tmp_path / "episodes")
    groups = RunReader(run_dir).groups(1)
    ep = {"messages": [{"role": "assistant", "content": '<tool_call>{"name": "calculator", "arguments": {"expression": "123*45"}}</tool_call>'},
                       {"role": "tool", "name": "calculator", "content": "5535"},
                       {"role": "assistant", "content": "The answer is 5535."}],
          "spans": [["model", 0, 21], ["env", 21, 30], ["model", 30, 37]], "turns": 2, "tool_calls": 1,
          "tool_errors": 0, "malformed_calls": 0, "end": "no_tool_call"}
    groups[0]["completions"][0]["episode"] = ep
    (ep_dir / "rollouts" / "step_000001.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups), encoding="utf-8")
    s = srv.make_server([ep_dir], port=0)
    srv.serve_in_thread(s)
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        pg.goto(f"http://127.0.0.1:{s.server_address[1]}/#/run/0/step/1/group/0")
        pg.wait_for_selector("#group-view .adv-label")
        pg.locator(".col-hit[data-index='0']").click()
        turns = pg.locator(".modal .episode .turn")
        assert turns.count() == 3
        assert [turns.nth(i).locator(".turn-role").inner_text() for i in range(3)] == ["assistant", "tool (calculator)", "assistant"]
        assert turns.nth(1).locator(".completion-text").inner_text() == "5535"
        assert pg.locator(".modal .turn-model").count() == 2 and pg.locator(".modal .turn-tool").count() == 1
        assert [pg.locator(".modal .spans span").nth(i).inner_text() for i in range(3)] == [
            "model, trained 0–21", "environment, masked 21–30", "model, trained 30–37"]
        assert "2 / 1 / 0" in pg.locator(".modal table.kv").inner_text()  # turns / tool calls / tool errors
        assert problems == []
    finally:
        pg.close()
        s.shutdown()
        s.server_close()
