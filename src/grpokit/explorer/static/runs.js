// The runs page: one card per run (status, config summary, errors), the curves of all runs
// overlaid, and what the critic costs, from the runs' own measurements.
"use strict";
(function () {
  const { h, fmt } = GK;
  const STALE_S = 300;

  GK.statusBadge = function (run) {
    const st = run.status || {};
    let state = st.state || "unknown",
      title = "";
    // A "running" run whose status has not moved for minutes was probably killed (no chance to write "failed").
    if (state === "running" && st.updated && Date.now() / 1000 - st.updated > STALE_S) {
      title = `no update for ${GK.ago(st.updated).replace(" ago", "")}: stalled or killed?`;
      return h("span.badge.stale", { title, text: "running?" });
    }
    return h("span.badge." + state.replace(/[^a-z]/g, ""), { text: state, title: st.error || "" });
  };

  function showValue(v) {
    return typeof v === "number" && v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential() : String(v);
  }

  function card(run, color) {
    const st = run.status || {};
    const progress = st.step !== undefined ? `step ${st.step}${st.total_steps ? " / " + st.total_steps : ""}` : "";
    const summary = Object.entries(run.summary || {});
    return h(
      "section.run-card",
      { "data-run": run.id },
      h(
        "header",
        {},
        h("span.run-dot", { vars: { "--c": color } }),
        h("h3", { text: run.name }),
        GK.statusBadge(run),
        h("span.muted", {
          text: [progress, st.updated ? "updated " + GK.ago(st.updated) : ""].filter(Boolean).join(" · "),
        }),
      ),
      st.error ? h("div.error", {}, h("strong", { text: `The run ${st.state}: ` }), st.error) : null,
      GK.errorBox(run.errors),
      summary.length
        ? h(
            "table.kv.summary",
            {},
            summary.map(([k, v]) => h("tr", {}, h("td", { text: k }), h("td", { text: showValue(v) }))),
          )
        : null,
      h(
        "div.actions",
        {},
        run.steps && run.steps.length
          ? h("a.button", {
              href: `#/run/${run.id}/step/${run.steps[run.steps.length - 1]}`,
              text: `Step browser (${run.steps.length} steps) →`,
            })
          : h("span.muted", { text: "no rollout dumps yet" }),
        h("a.button.secondary", { href: `#/try/${run.id}`, text: "Try it →" }),
      ),
      Object.keys(run.config || {}).length
        ? h(
            "details.config",
            {},
            h("summary", { text: "full config" }),
            h(
              "table.kv",
              {},
              Object.entries(run.config).map(([k, v]) =>
                h("tr", {}, h("td", { text: k }), h("td", { text: JSON.stringify(v) })),
              ),
            ),
          )
        : null,
      h("div.path.muted", { text: run.path }),
    );
  }

  // What the critic costs: parameters, peak memory and time per step, each run's own numbers.
  GK.costPanel = function (costs) {
    if (!costs.some((c) => c.use_critic || c.critic_params)) return null;
    const grpo = costs.find((c) => !c.use_critic && (c.peak_mb !== null || c.step_s !== null));
    const delta = (a, b, unit, digits = 1) =>
      a === null || b === null || b === undefined || b === 0
        ? ""
        : ` (${a >= b ? "+" : "−"}${fmt(Math.abs(a - b), digits)} ${unit}, ${a >= b ? "+" : "−"}${fmt(Math.abs(a / b - 1) * 100, 0)}% vs ${grpo.name})`;
    const rows = costs.map((c) =>
      h(
        "tr",
        {},
        h("td", { text: c.name }),
        h("td", { text: c.use_critic ? "PPO + critic" : "GRPO (no critic)" }),
        h("td.num", { text: GK.count(c.policy_params) }),
        h("td.num", {
          text: c.critic_params
            ? `${GK.count(c.critic_params)}${c.policy_params ? ` (+${fmt((c.critic_params / c.policy_params) * 100, 0)}%)` : ""}`
            : "0",
        }),
        h("td.num", {
          text:
            c.peak_mb === null
              ? "–"
              : `${fmt(c.peak_mb, 0)} MiB${c.use_critic && grpo ? delta(c.peak_mb, grpo.peak_mb, "MiB", 0) : ""}`,
        }),
        h("td.num", {
          text:
            c.step_s === null
              ? "–"
              : `${fmt(c.step_s)} s${c.use_critic && grpo ? delta(c.step_s, grpo.step_s, "s", 2) : ""}`,
        }),
        h("td.num", { text: c.critic_s === null ? "–" : `${fmt(c.critic_s)} s` }),
      ),
    );
    const k = costs[0].keys;
    return h(
      "section.cost",
      {},
      h("h2", { text: "What the critic costs" }),
      h("p.muted", {
        text:
          "PPO learns a value model V(s) as the baseline; GRPO uses the group mean instead and needs no critic. " +
          "Numbers are each run's own measurements (median time per step, peak memory over the run).",
      }),
      h(
        "table.data",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              "run",
              "algorithm",
              "policy params",
              "critic params (extra)",
              "peak memory",
              "time / step",
              "of which critic",
            ].map((t) => h("th", { text: t })),
          ),
        ),
        h("tbody", {}, rows),
      ),
      h("p.muted.small", { text: `Read from metrics.jsonl keys: ${Object.values(k).join(", ")}.` }),
    );
  };

  // "The critic costs +134.5 M parameters (+100%), 3366 MiB peak (+1150 MiB vs grpo), ..."
  GK.criticCostText = function (costs, runId) {
    const c = costs.find((x) => x.id === runId);
    if (!c) return "";
    const grpo = costs.find((x) => !x.use_critic && x.id !== runId);
    const vs = (a, b, unit, d) =>
      grpo && a !== null && b !== null && b !== undefined
        ? ` (${a >= b ? "+" : "−"}${fmt(Math.abs(a - b), d)} ${unit} vs ${grpo.name})`
        : "";
    const parts = [];
    if (c.critic_params)
      parts.push(
        `${GK.count(c.critic_params)} extra parameters` +
          (c.policy_params ? ` (+${fmt((100 * c.critic_params) / c.policy_params, 0)}% of the policy)` : ""),
      );
    if (c.peak_mb !== null)
      parts.push(`peak memory ${fmt(c.peak_mb, 0)} MiB` + vs(c.peak_mb, grpo && grpo.peak_mb, "MiB", 0));
    if (c.step_s !== null)
      parts.push(
        `${fmt(c.step_s)} s per step` +
          vs(c.step_s, grpo && grpo.step_s, "s", 2) +
          (c.critic_s !== null ? `, ${fmt(c.critic_s)} s of it in the critic` : ""),
      );
    return parts.length
      ? `Cost of the critic in this run: ${parts.join("; ")}.`
      : `This run logged no cost measurements (${Object.values(c.keys).join(", ")}).`;
  };

  GK.renderRuns = async function (root, state) {
    const runs = state.runs;
    const seriesById = {};
    await Promise.all(
      runs.map(async (r) => {
        try {
          seriesById[r.id] = await GK.api(`runs/${r.id}/series`);
        } catch (e) {
          r.errors = (r.errors || []).concat(["curves: " + e.message]);
        }
      }),
    );
    let costs = [];
    try {
      costs = await GK.api("cost");
    } catch (e) {
      /* the cost panel is optional */
    }
    GK.clear(root);
    GK.add(root, h("h2", { text: `Runs (${runs.length})` }));
    GK.add(
      root,
      h(
        "div.run-cards",
        {},
        runs.map((r, i) => card(r, GK.RUN_COLORS[i % GK.RUN_COLORS.length])),
      ),
    );
    const errs = runs.flatMap((r) => (seriesById[r.id] ? seriesById[r.id].errors : []).map((e) => `${r.name}: ${e}`));
    GK.add(root, h("h2", { text: "Curves" }), GK.errorBox(errs), h("div.charts", {}, GK.curveCharts(runs, seriesById)));
    const cost = GK.costPanel(costs);
    if (cost) GK.add(root, cost);
  };
})();
