// The parts around the group picture: the one-line explanation, the legend, the per-completion
// table, and the small version of the picture that stands for a group in the step list.
"use strict";
(function () {
  const { h, s, fmt, signed } = GK;
  const C = GK.COLORS;

  // One sentence for someone who has never read about GRPO (or PPO's critic).
  GK.groupExplainer = function (model) {
    const k = model.baseline.kind,
      G = model.completions.length;
    const text =
      k === "critic"
        ? `PPO: a learned critic predicts the reward V(s₀) of each completion; the advantage is how much better the completion did than that prediction.`
        : k === "rloo"
          ? `RLOO: each of the ${G} completions is compared with the mean reward of the other ${G - 1}; better than its siblings → positive advantage → made more likely.`
          : `GRPO: the ${G} completions for the same prompt are scored, the group mean is the baseline, and each completion's advantage is how far its reward is above or below it${model.scale === "none" ? "" : ", in group standard deviations"}.`;
    return h("p.explainer", { text });
  };

  GK.groupLegend = function (model) {
    const k = model.baseline.kind;
    const item = (cls, label) => h("span.legend-item", {}, h("span.swatch." + cls), label);
    return h(
      "div.legend",
      {},
      item("reward", "reward (darker = correct)"),
      item(
        k === "critic" ? "critic" : "base",
        k === "critic"
          ? "baseline = critic's value V(s₀), one per completion"
          : k === "rloo"
            ? "baseline = mean of the OTHER completions (RLOO)"
            : "baseline = group mean",
      ),
      item("gap", k === "critic" ? "reward − V" : "reward − baseline"),
      item("pos", "advantage > 0"),
      item("neg", "advantage < 0"),
      h("span.legend-hint", { text: "Click a column for the full text." }),
    );
  };

  // Per-completion table under the chart: every reward function, total, advantage.
  GK.completionTable = function (model) {
    const fns = [...new Set(model.completions.flatMap((c) => Object.keys(c.rewards || {})))];
    const head = h(
      "tr",
      {},
      h("th", { text: "#" }),
      h("th", { text: "answer" }),
      fns.map((f) => h("th.num", { text: f })),
      h("th.num", { text: "total" }),
      model.baseline.per ? h("th.num", { text: model.baseline.kind === "critic" ? "V(s₀)" : "baseline" }) : null,
      h("th.num", { text: "advantage" }),
      h("th.num", { text: "tokens" }),
      h("th", { text: "text" }),
    );
    const rows = model.completions.map((c, i) =>
      h(
        "tr.completion-row",
        { "data-index": i, onclick: () => GK.showCompletion({ ...c, advantageShown: model.advantages[i] }, i, model) },
        h("td", { text: `#${i + 1}` }),
        h("td", { text: c.extracted ?? "–" }),
        fns.map((f) => h("td.num", { text: fmt((c.rewards || {})[f]) })),
        h("td.num", { text: c.valid ? fmt(c.reward) : "unscorable" }),
        model.baseline.per ? h("td.num", { text: fmt(model.baseline.per[i]) }) : null,
        h("td.num.adv-cell" + (model.advantages[i] > 0 ? ".pos" : model.advantages[i] < 0 ? ".neg" : ""), {
          text: signed(model.advantages[i], 4),
        }),
        h("td.num", { text: `${c.length ?? "–"}${c.truncated ? " ✂" : ""}` }),
        h("td.preview", { text: c.text.replace(/\s+/g, " ").slice(0, 90) }),
      ),
    );
    return h("table.completions", {}, h("thead", {}, head), h("tbody", {}, rows));
  };

  // A group as one row of the step list: reward bars with the group-mean line above, signed
  // advantage bars below; hovering a column gives every reward function's value.
  GK.groupMini = function (model) {
    const comps = model.completions,
      adv = model.advantages,
      G = comps.length;
    const W = 380,
      L = 4,
      R = 84,
      top = 4,
      rh = 40,
      mid = 66,
      ah = 18,
      H = mid + ah + 4,
      slot = (W - L - R) / G,
      bw = slot * 0.64;
    const rs = comps.map((c) => (c.valid ? c.reward : 0));
    const rhi = Math.max(1, ...rs),
      yR = (v) => top + rh * (1 - v / rhi);
    const am = Math.max(0.5, ...adv.map((a) => Math.abs(a || 0)));
    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`,
      class: "mini",
      role: "img",
      "aria-label": "rewards, group mean and advantages",
    });
    svg.append(s("line", { x1: L, x2: W - R, y1: yR(0), y2: yR(0), stroke: C.grid }));
    svg.append(s("line", { x1: L, x2: W - R, y1: mid, y2: mid, stroke: C.axis }));
    comps.forEach((c, i) => {
      const x = L + slot * i + (slot - bw) / 2,
        a = adv[i] || 0,
        hh = (Math.abs(a) / am) * ah;
      const ok = model.correctKey && c.rewards && c.rewards[model.correctKey] >= 1;
      const fns = Object.entries(c.rewards || {})
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(", ");
      const g = s(
        "g",
        {},
        s("title", {
          text: `#${i + 1}: ${fns} → total ${c.valid ? fmt(c.reward) : "unscorable"}, advantage ${signed(adv[i])}`,
        }),
      );
      g.append(
        s("rect", {
          x,
          y: yR(rs[i]),
          width: bw,
          height: Math.max(1, yR(0) - yR(rs[i])),
          fill: c.valid ? (ok ? C.rewardOk : C.reward) : C.na,
        }),
      );
      g.append(
        s("rect", {
          x,
          y: a >= 0 ? mid - Math.max(hh, 1) : mid,
          width: bw,
          height: Math.max(hh, 1),
          fill: a > 0 ? C.pos : a < 0 ? C.neg : C.zero,
        }),
      );
      g.append(s("rect", { x: L + slot * i, y: 0, width: slot, height: H, fill: "transparent" }));
      svg.append(g);
    });
    if (model.baseline.mean !== null && model.baseline.mean !== undefined) {
      svg.append(
        s("line", {
          x1: L,
          x2: W - R + 4,
          y1: yR(model.baseline.mean),
          y2: yR(model.baseline.mean),
          stroke: C.base,
          "stroke-width": 2,
          "stroke-dasharray": "4 3",
        }),
      );
      svg.append(
        s("text", {
          x: W - R + 8,
          y: yR(model.baseline.mean) + 4,
          class: "mini-label",
          fill: C.base,
          text: `mean ${fmt(model.baseline.mean)}`,
        }),
      );
    }
    svg.append(s("text", { x: W - R + 8, y: mid + 4, class: "mini-label", fill: C.axis, text: "advantage" }));
    return svg;
  };
})();
