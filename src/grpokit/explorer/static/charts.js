// Line charts for the training curves, in plain SVG: one chart per quantity, one line per run.
"use strict";
(function () {
  const { h, s, fmt } = GK;
  GK.RUN_COLORS = ["#2f6db5", "#d1495b", "#2e9d57", "#8a4fbf", "#e08a00", "#1a9aa0", "#6d6875", "#b5651d"];

  // spec: {title, yLabel, series: [{name, color, dash, points: [[x, y], ...]}], note}
  GK.lineChart = function (spec) {
    const W = 460,
      H = 250,
      L = 56,
      R = 16,
      T = 14,
      B = 40,
      pw = W - L - R,
      ph = H - T - B;
    const pts = spec.series.flatMap((ser) => ser.points);
    const box = h("div.chart", {}, h("h4", { text: spec.title }));
    if (!pts.length) {
      GK.add(box, h("div.empty", { text: spec.empty || "not logged yet" }));
      return box;
    }
    const xs = pts.map((p) => p[0]),
      ys = pts.map((p) => p[1]);
    let x0 = Math.min(...xs),
      x1 = Math.max(...xs),
      y0 = Math.min(...ys),
      y1 = Math.max(...ys);
    if (x1 === x0) {
      x0 -= 1;
      x1 += 1;
    }
    if (spec.zeroBased && y0 > 0) y0 = 0;
    if (y1 === y0) {
      y0 -= Math.abs(y0) * 0.1 || 0.5;
      y1 += Math.abs(y1) * 0.1 || 0.5;
    }
    const pad = (y1 - y0) * 0.06;
    y0 -= spec.zeroBased && y0 === 0 ? 0 : pad;
    y1 += pad;
    const X = (x) => L + ((x - x0) / (x1 - x0)) * pw,
      Y = (y) => T + ph * (1 - (y - y0) / (y1 - y0));
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "line-chart", role: "img", "aria-label": spec.title });
    const yt = GK.ticks(y0, y1, 4);
    for (const t of yt) {
      svg.append(s("line", { x1: L, x2: L + pw, y1: Y(t), y2: Y(t), stroke: "#e3e6ea" }));
      svg.append(s("text", { x: L - 6, y: Y(t) + 4, class: "tick", "text-anchor": "end", text: GK.tickLabel(t, yt) }));
    }
    for (const t of GK.ticks(x0, x1, 5).filter((t) => Number.isInteger(t))) {
      svg.append(s("text", { x: X(t), y: T + ph + 16, class: "tick", "text-anchor": "middle", text: String(t) }));
    }
    svg.append(s("line", { x1: L, x2: L + pw, y1: T + ph, y2: T + ph, stroke: "#5c6670" }));
    svg.append(s("line", { x1: L, x2: L, y1: T, y2: T + ph, stroke: "#5c6670" }));
    svg.append(s("text", { x: L + pw / 2, y: H - 4, class: "axis-label", "text-anchor": "middle", text: "step" }));
    svg.append(
      s("text", {
        x: 12,
        y: T + ph / 2,
        class: "axis-label",
        "text-anchor": "middle",
        transform: `rotate(-90 12 ${T + ph / 2})`,
        text: spec.yLabel || "",
      }),
    );
    for (const ser of spec.series) {
      if (!ser.points.length) continue;
      const d = ser.points.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
      svg.append(
        s("path", { d, fill: "none", stroke: ser.color, "stroke-width": 2, "stroke-dasharray": ser.dash || null }),
      );
      for (const p of ser.points.length <= 60 ? ser.points : [ser.points[ser.points.length - 1]]) {
        svg.append(
          s(
            "circle",
            { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: ser.color },
            s("title", { text: `${ser.name}: step ${p[0]}, ${fmt(p[1], 4)}` }),
          ),
        );
      }
    }
    GK.add(box, svg);
    GK.add(
      box,
      h(
        "div.chart-legend",
        {},
        spec.series
          .filter((ser) => ser.points.length)
          .map((ser) => {
            const last = ser.points[ser.points.length - 1];
            return h(
              "span.legend-item",
              {},
              h("span.line-swatch" + (ser.dash ? ".dashed" : ""), { vars: { "--c": ser.color } }),
              `${ser.name}: ${fmt(last[1], 3)} at step ${last[0]}`,
            );
          }),
      ),
    );
    if (spec.note) GK.add(box, h("div.note", { text: spec.note }));
    return box;
  };

  // The curves the runs page shows: [title, y label, [[metric key, source, suffix, dash]], options].
  GK.CURVES = [
    ["Reward (mean over the step's completions)", "reward", [["reward/mean", "metrics", ""]], {}],
    [
      "Held-out accuracy",
      "accuracy",
      [
        ["greedy_acc", "evals", " greedy"],
        ["sampled_acc", "evals", " sampled", "6 4"],
      ],
      { zeroBased: true, empty: "no evaluation yet (eval.jsonl)" },
    ],
    ["Completion length", "tokens", [["completions/mean_length", "metrics", ""]], { zeroBased: true }],
    ["KL to the reference (k3)", "KL", [["loss/kl", "metrics", ""]], { zeroBased: true }],
    ["Entropy of the policy", "nats / token", [["policy/entropy", "metrics", ""]], {}],
    [
      "Groups with zero variance (teach nothing)",
      "share of groups",
      [["groups/zero_std_frac", "metrics", ""]],
      { zeroBased: true },
    ],
  ];

  GK.curveCharts = function (runs, seriesById) {
    return GK.CURVES.map(([title, yLabel, keys, opts]) => {
      const series = [];
      runs.forEach((run, ri) => {
        const data = seriesById[run.id];
        if (!data) return;
        for (const [key, src, suffix, dash] of keys) {
          const pts = data[src].filter((r) => key in r).map((r) => [r.step, r[key]]);
          series.push({ name: run.name + suffix, color: GK.RUN_COLORS[ri % GK.RUN_COLORS.length], dash, points: pts });
        }
      });
      return GK.lineChart({ title, yLabel, series, ...opts });
    });
  };
})();
