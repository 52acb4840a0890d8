// The step browser: every group of a step as a row (rewards, baseline, signed advantage bars),
// filters, and the detail of one group with the critic toggle for PPO runs.
"use strict";
(function () {
  const { h, fmt, signed } = GK;
  const FILTERS = [
    ["zero_variance", "Zero-variance groups"],
    ["truncated", "Truncated completions"],
    ["format_failure", "Format failures"],
  ];
  const filterState = { zero_variance: "all", truncated: "all", format_failure: "all" };
  // The server sends a step's groups a page at a time (a rollout dump can be hundreds of MB).
  const PAGE = 50;
  const page = { key: null, offset: 0 };

  // The reward that means "correct" (darker bars, ✓): the first one that is not a format reward.
  GK.correctKey = function (comps) {
    return Object.keys((comps[0] || {}).rewards || {}).find((k) => !k.includes("format")) || null;
  };

  // The drawing model for one group of the rollout dump, with the baseline the toggle picked.
  GK.stepModel = function (run, group, mode) {
    const own = run.use_critic && group.has_value ? "critic" : "mean";
    const comps = group.completions;
    const stored = comps.map((c) => c.advantage);
    const haveStored = stored.every((a) => a !== null && a !== undefined);
    const file = `rollouts/step_${String(group.step).padStart(6, "0")}.jsonl`;
    if (mode === "critic") {
      const adv = own === "critic" && haveStored ? stored : group.advantages_critic;
      return {
        completions: comps,
        advantages: adv,
        correctKey: GK.correctKey(comps),
        question: group.question,
        answer: group.answer,
        baseline: {
          kind: "critic",
          per: comps.map((c) => c.value),
          mean: group.value_mean,
          label: `mean critic V = ${fmt(group.value_mean)}`,
        },
        advTitle: "Advantage = reward − critic value V(s₀): pushed up (+) or down (−)",
        note:
          own === "critic" && haveStored
            ? `Advantages from the run's rollout dump (${file}); V(s₀) is the critic's prediction of the reward, made after the first token.`
            : "Computed here as reward − V(s₀) (γ = λ = 1, reward at the last token).",
      };
    }
    const adv = own === "mean" && haveStored ? stored : group.advantages_group;
    const mean = own === "mean" && group.baseline !== null ? group.baseline : group.reward_mean;
    const std = group.reward_std;
    const how =
      group.advantages_group_scale === "none"
        ? `reward − ${fmt(mean)}`
        : group.advantages_group_scale === "rloo"
          ? "reward − mean of the other completions"
          : `(reward − ${fmt(mean)}) / (std ${fmt(std)} + ε)`;
    return {
      completions: comps,
      advantages: adv,
      correctKey: GK.correctKey(comps),
      question: group.question,
      answer: group.answer,
      scale: group.advantages_group_scale,
      baseline: { kind: "mean", per: null, mean, label: `group mean = ${fmt(mean)}` },
      note:
        `advantage = ${how}. ` +
        (own === "mean" && haveStored
          ? `Values from the run's rollout dump (${file}).`
          : "Computed here from the rewards: what GRPO's group-mean baseline would give."),
    };
  };

  function pass(g) {
    return FILTERS.every(([k]) => filterState[k] === "all" || (filterState[k] === "only") === Boolean(g.flags[k]));
  }

  function chips(g) {
    return h(
      "span.chips",
      {},
      g.flags.zero_variance
        ? h("span.chip.zero", {
            text: "zero variance",
            title: "all rewards equal: every advantage is 0, this group teaches nothing",
          })
        : null,
      g.flags.truncated ? h("span.chip.trunc", { text: "truncated", title: "a completion hit max_new_tokens" }) : null,
      g.flags.format_failure
        ? h("span.chip.fmt", {
            text: "format failure",
            title: "a format reward gave 0, or no answer could be extracted",
          })
        : null,
    );
  }

  function groupRow(run, step, g) {
    if (g.error)
      return h(
        "div.group-row.broken",
        {},
        h("span.gi", { text: `#${g.index}` }),
        h("span.error-inline", { text: g.error }),
      );
    const model = GK.stepModel(run, { ...g, step }, "mean");
    const rewards = g.completions.map((c) => (c.valid ? fmt(c.reward) : "n/a")).join("  ");
    return h(
      "a.group-row",
      { href: `#/run/${run.id}/step/${step}/group/${g.index}`, "data-group": g.index },
      h("span.gi", { text: `#${g.index}` }),
      h(
        "span.q",
        {},
        h("span.qtext", { text: g.question ?? g.prompt_id ?? "(no question)" }),
        h("span.muted", { text: `  answer ${g.answer ?? "–"}` }),
        h("div.stats", { text: `rewards ${rewards}` }),
        h("div.stats", { text: `mean ${fmt(g.reward_mean)} · std ${fmt(g.reward_std)}` }),
        chips(g),
      ),
      GK.groupMini(model),
    );
  }

  function header(state, run, step) {
    const steps = run.steps || [];
    const at = steps.indexOf(step);
    const go = (k) => {
      location.hash = `#/run/${run.id}/step/${k}`;
    };
    return h(
      "div.toolbar",
      {},
      h(
        "label",
        {},
        "Run ",
        h(
          "select#run-select",
          {
            onchange: (e) => {
              const r = state.runs[+e.target.value];
              location.hash = `#/run/${r.id}/step/${(r.steps || []).slice(-1)[0] ?? 0}`;
            },
          },
          state.runs.map((r) => {
            const o = h("option", { value: r.id, text: r.name });
            o.selected = r.id === run.id;
            return o;
          }),
        ),
      ),
      h("button", { disabled: at <= 0, onclick: () => go(steps[at - 1]), text: "‹ prev", title: "previous step" }),
      h(
        "label",
        {},
        "Step ",
        h(
          "select#step-select",
          { onchange: (e) => go(e.target.value) },
          steps.map((k) => {
            const o = h("option", { value: k, text: String(k) });
            o.selected = k === step;
            return o;
          }),
        ),
      ),
      h("button", {
        disabled: at < 0 || at >= steps.length - 1,
        onclick: () => go(steps[at + 1]),
        text: "next ›",
        title: "next step",
      }),
      h("span.muted", { text: `of ${steps.length} steps` }),
    );
  }

  GK.renderStep = async function (root, state, run, step, groupIndex) {
    GK.clear(root);
    GK.add(root, header(state, run, step), GK.errorBox(run.errors));
    const key = `${run.id}/${step}`;
    if (page.key !== key) {
      page.key = key;
      page.offset = 0;
    }
    const query = groupIndex !== null ? `offset=${groupIndex}&limit=1` : `offset=${page.offset}&limit=${PAGE}`;
    let data;
    try {
      data = await GK.api(`runs/${run.id}/steps/${step}?${query}`);
    } catch (e) {
      GK.add(root, GK.errorBox([e.message], "Could not load this step"));
      return;
    }
    GK.add(root, GK.errorBox(data.errors, "Could not read part of this step"));
    if (groupIndex !== null) {
      page.offset = Math.floor(groupIndex / PAGE) * PAGE; // "all groups" returns to this group's page
      return renderGroup(root, run, step, data.groups, groupIndex, data.total);
    }
    const ok = data.groups.filter((g) => !g.error);
    const paged = data.offset > 0 || data.next !== null;
    const turn = (offset) => {
      page.offset = offset;
      GK.renderStep(root, state, run, step, null);
    };
    const pager = paged
      ? h(
          "div.toolbar.pager",
          {},
          h("button", {
            disabled: data.offset <= 0,
            onclick: () => turn(Math.max(0, data.offset - PAGE)),
            text: "‹ earlier groups",
          }),
          h("span.muted", {
            text: data.groups.length
              ? `groups ${data.groups[0].index}–${data.groups[data.groups.length - 1].index} of ${data.total}`
              : `no groups here (${data.total} in this step)`,
          }),
          h("button", { disabled: data.next === null, onclick: () => turn(data.next), text: "later groups ›" }),
        )
      : null;
    const box = h("div#group-list");
    const redraw = () => {
      GK.clear(box);
      const shown = data.groups.filter((g) => g.error || pass(g));
      GK.add(
        box,
        h("p.muted", { text: `${shown.length} of ${data.groups.length} groups shown${paged ? " on this page" : ""}` }),
        shown.map((g) => groupRow(run, step, g)),
      );
    };
    const filters = h(
      "div.filters",
      {},
      FILTERS.map(([k, label]) =>
        h(
          "label",
          {},
          label + " ",
          h(
            "select.filter",
            {
              "data-filter": k,
              onchange: (e) => {
                filterState[k] = e.target.value;
                redraw();
              },
            },
            [
              ["all", "show"],
              ["only", "only these"],
              ["hide", "hide"],
            ].map(([v, t]) => {
              const o = h("option", { value: v, text: t });
              o.selected = filterState[k] === v;
              return o;
            }),
          ),
        ),
      ),
    );
    const comps = ok.flatMap((g) => g.completions.filter((c) => c.valid));
    GK.add(
      root,
      h("h2", { text: `Step ${step}: ${data.total} groups of ${ok.length ? ok[0].completions.length : 0} completions` }),
      h("p.muted", {
        text:
          `${paged ? "on this page: " : ""}mean reward ${fmt(comps.reduce((a, c) => a + c.reward, 0) / (comps.length || 1))} · ` +
          `${ok.filter((g) => g.flags.zero_variance).length} zero-variance groups · click a group to see its picture`,
      }),
      filters,
      pager,
      box,
    );
    redraw();
  };

  // One line on what this run's critic cost, filled in when /api/cost answers.
  function costLine(run) {
    const p = h("p.cost-line.muted", { text: "cost of the critic: loading…" });
    GK.api("cost")
      .then((costs) => {
        p.textContent = GK.criticCostText(costs, run.id);
      })
      .catch((e) => {
        p.textContent = "cost of the critic: " + e.message;
      });
    return p;
  }

  function renderGroup(root, run, step, groups, gi, total) {
    const g = groups.find((x) => x.index === gi);
    const nav = h(
      "div.toolbar",
      {},
      h("a.button.secondary", { href: `#/run/${run.id}/step/${step}`, text: `‹ all groups of step ${step}` }),
      h("a.button.secondary" + (gi > 0 ? "" : ".disabled"), {
        href: `#/run/${run.id}/step/${step}/group/${Math.max(0, gi - 1)}`,
        text: "‹ prev group",
      }),
      h("a.button.secondary" + (gi < total - 1 ? "" : ".disabled"), {
        href: `#/run/${run.id}/step/${step}/group/${Math.min(total - 1, gi + 1)}`,
        text: "next group ›",
      }),
    );
    GK.add(root, nav);
    if (!g) {
      GK.add(root, GK.errorBox([`step ${step} has no group ${gi}`], "No such group"));
      return;
    }
    if (g.error) {
      GK.add(root, GK.errorBox([g.error], "This group cannot be shown"));
      return;
    }
    const critic = run.use_critic && g.has_value;
    let mode = critic ? "critic" : "mean";
    const holder = h("div#group-view");
    const draw = () => {
      const model = GK.stepModel(run, { ...g, step }, mode);
      const flat = g.flags.zero_variance
        ? " All rewards are equal: every advantage is 0 and this group teaches nothing."
        : "";
      GK.add(
        GK.clear(holder),
        GK.groupExplainer(model),
        GK.groupLegend(model),
        GK.groupChart(model),
        h("p.formula", { text: model.note + flat }),
        GK.completionTable(model),
      );
    };
    const toggle = g.has_value
      ? h(
          "div.toggle",
          {},
          h("span", { text: "Baseline: " }),
          [
            ["mean", "group mean (GRPO)"],
            ["critic", "critic value V(s₀) (PPO)"],
          ].map(([v, t]) => {
            const input = h("input", {
              type: "radio",
              name: "baseline",
              value: v,
              onchange: () => {
                mode = v;
                draw();
              },
            });
            input.checked = v === mode;
            return h("label.radio", {}, input, t);
          }),
        )
      : null;
    GK.add(
      root,
      h(
        "h2.group-title",
        {},
        `Step ${step} · group #${gi}: `,
        h("span.qtext", { text: g.question ?? "" }),
        h("span.muted", { text: `  reference answer ${g.answer ?? "–"}` }),
        chips(g),
      ),
      toggle,
      g.has_value ? costLine(run) : null,
      holder,
      g.prompt
        ? h(
            "details",
            {},
            h("summary", { text: "prompt as the model saw it" }),
            h("pre.completion-text", { text: g.prompt }),
          )
        : null,
    );
    draw();
  }
})();
