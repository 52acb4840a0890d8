// The router (hash URLs, so every view can be bookmarked) and the live refresh: the run list is
// polled every few seconds; a view is redrawn only when a file it shows has changed.
"use strict";
(function () {
  const { h } = GK;
  const POLL_MS = 3000;
  const state = { runs: [], versions: "", route: null };
  const root = () => document.getElementById("view");

  function parse(hash) {
    const p = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
    if (p[0] === "run" && p[2] === "step")
      return { view: "step", run: p[1], step: +p[3], group: p[4] === "group" ? +p[5] : null };
    if (p[0] === "run") return { view: "step", run: p[1], step: null, group: null };
    if (p[0] === "try") return { view: "try", run: p[1] ?? "0" };
    return { view: "runs" };
  }

  function findRun(id) {
    return state.runs.find((r) => String(r.id) === String(id));
  }

  function navLinks(route) {
    const first = state.runs.find((r) => r.steps && r.steps.length) || state.runs[0];
    const runId = route.run !== undefined && findRun(route.run) ? route.run : first ? first.id : 0;
    const links = [
      ["runs", "#/", "Runs"],
      ["step", `#/run/${runId}`, "Step browser"],
      ["try", `#/try/${runId}`, "Try it"],
    ];
    GK.add(
      GK.clear(document.getElementById("nav")),
      ...links.map(([v, href, t]) => h("a" + (route.view === v ? ".active" : ""), { href, text: t })),
    );
  }

  async function render() {
    const route = (state.route = parse(location.hash));
    navLinks(route);
    const el = root();
    try {
      if (route.view === "runs") return await GK.renderRuns(el, state);
      const run = findRun(route.run);
      if (!run) {
        GK.add(GK.clear(el), GK.errorBox([`no run ${route.run}: pick one on the Runs page`], "No such run"));
        return;
      }
      if (route.view === "try") return await GK.renderTry(el, state, run);
      const steps = run.steps || [];
      if (route.step === null || Number.isNaN(route.step)) {
        if (!steps.length) {
          GK.add(
            GK.clear(el),
            GK.errorBox(run.errors),
            h("div.notice", { text: `${run.name} has no rollout dumps yet (rollouts/step_*.jsonl).` }),
          );
          return;
        }
        location.replace(`#/run/${run.id}/step/${steps[steps.length - 1]}`);
        return;
      }
      return await GK.renderStep(el, state, run, route.step, route.group);
    } catch (e) {
      GK.add(GK.clear(el), GK.errorBox([e.message], "This view failed"));
    }
  }

  async function refreshRuns() {
    const runs = await GK.api("runs");
    const versions = JSON.stringify(runs.map((r) => [r.version, r.status, r.errors]));
    const changed = versions !== state.versions;
    state.runs = runs;
    state.versions = versions;
    return changed;
  }

  async function poll() {
    try {
      const r = state.route,
        before = r && r.view === "step" && findRun(r.run) ? (findRun(r.run).steps || []).length : null;
      const changed = await refreshRuns();
      document.getElementById("conn").textContent = "";
      // Live: the runs page redraws its curves; a step list offers new steps as they are written;
      // a group, Try it, or an open completion keep their place.
      const newSteps = before !== null && r.group === null && (findRun(r.run).steps || []).length !== before;
      if (changed && r && (r.view === "runs" || newSteps) && !document.querySelector(".overlay")) await render();
    } catch (e) {
      document.getElementById("conn").textContent = "server not reachable: is `grpokit explore` still running?";
    }
    setTimeout(poll, POLL_MS);
  }

  async function start() {
    try {
      await refreshRuns();
    } catch (e) {
      GK.add(GK.clear(root()), GK.errorBox([e.message], "Cannot reach the explorer's API"));
      return;
    }
    window.addEventListener("hashchange", render);
    await render();
    setTimeout(poll, POLL_MS);
  }
  document.addEventListener("DOMContentLoaded", start);
})();
