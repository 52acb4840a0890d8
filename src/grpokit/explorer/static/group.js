// The picture of GRPO: one group of G completions, their rewards, the baseline subtracted from
// them, and the resulting advantages as signed bars. Used by the step browser and by Try it.
"use strict";
(function () {
  const { h, s, fmt, signed } = GK;
  const C = (GK.COLORS = {
    reward: "#5b7fa6",
    rewardOk: "#2f5f8f",
    pos: "#2e9d57",
    neg: "#d1495b",
    zero: "#9aa3ad",
    base: "#e08a00",
    critic: "#8a4fbf",
    grid: "#e3e6ea",
    axis: "#5c6670",
    na: "#c9ced4",
  });

  // model: {completions: [{reward, valid, extracted, rewards, value, truncated, text}], advantages: [A_i],
  //   baseline: {kind: "mean"|"critic"|"rloo", mean, per: [b_i] | null, label}, correctKey, answer, question,
  //   advTitle, note, scale, animate}
  GK.groupChart = function (model) {
    const comps = model.completions,
      G = comps.length,
      adv = model.advantages;
    const W = 980,
      L = 78,
      R = 196,
      plotW = W - L - R;
    const top = { y0: 34, h: 170 },
      bot = { y0: 262, h: 170 },
      H = bot.y0 + bot.h + 64;
    const slot = plotW / G,
      bw = Math.min(56, slot * 0.62),
      cx = (i) => L + slot * (i + 0.5);
    const rs = comps.map((c) => (c.valid ? c.reward : null));
    const per = model.baseline.per || [];
    const rvals = rs.concat(per, [model.baseline.mean]).filter((v) => v !== null && v !== undefined);
    const rlo = Math.min(0, ...rvals),
      rhi = Math.max(1, ...rvals) * 1.12;
    const yR = (v) => top.y0 + top.h * (1 - (v - rlo) / (rhi - rlo));
    const amax = Math.max(0.5, ...adv.map((a) => Math.abs(a || 0))) * 1.22;
    const yA = (v) => bot.y0 + bot.h / 2 - (v / amax) * (bot.h / 2);
    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`,
      class: "group-chart" + (model.animate ? " animate" : ""),
      role: "img",
      "aria-label": "rewards, baseline and advantages of one group",
    });

    // --- reward panel ---
    svg.append(s("text", { x: L, y: top.y0 - 14, class: "panel-title", text: "Reward of each completion" }));
    const rt = GK.ticks(rlo, rhi, 4);
    for (const t of rt) {
      svg.append(s("line", { x1: L, x2: L + plotW, y1: yR(t), y2: yR(t), stroke: C.grid }));
      svg.append(s("text", { x: L - 8, y: yR(t) + 4, class: "tick", "text-anchor": "end", text: GK.tickLabel(t, rt) }));
    }
    svg.append(
      s("text", {
        x: 18,
        y: top.y0 + top.h / 2,
        class: "axis-label",
        transform: `rotate(-90 18 ${top.y0 + top.h / 2})`,
        "text-anchor": "middle",
        text: "reward",
      }),
    );
    comps.forEach((c, i) => {
      const g = s("g", { class: "col", "data-index": i });
      const bi = per.length ? per[i] : model.baseline.mean;
      if (!c.valid) {
        g.append(
          s("rect", {
            x: cx(i) - bw / 2,
            y: yR(rhi * 0.25),
            width: bw,
            height: yR(0) - yR(rhi * 0.25),
            fill: C.na,
            class: "bar-na",
          }),
        );
        g.append(
          s("text", {
            x: cx(i),
            y: yR(rhi * 0.25) - 6,
            class: "bar-label",
            "text-anchor": "middle",
            text: "unscorable",
          }),
        );
      } else {
        const ok = model.correctKey && c.rewards && c.rewards[model.correctKey] >= 1;
        const y1 = yR(Math.max(0, c.reward)),
          y0 = yR(Math.min(0, c.reward));
        g.append(
          s("rect", {
            x: cx(i) - bw / 2,
            y: y1,
            width: bw,
            height: Math.max(1, y0 - y1),
            fill: ok ? C.rewardOk : C.reward,
            class: "bar-reward",
            vars: { "--i": i },
          }),
        );
        g.append(
          s("text", {
            x: cx(i),
            y: y1 - 6,
            class: "bar-label reward-label",
            "text-anchor": "middle",
            "data-index": i,
            text: fmt(c.reward),
          }),
        );
        if (bi !== null && bi !== undefined && Math.abs(c.reward - bi) > 1e-9) {
          // the gap r - b that becomes the advantage
          g.append(
            s("line", {
              x1: cx(i) + bw / 2 + 4,
              x2: cx(i) + bw / 2 + 4,
              y1: yR(bi),
              y2: yR(c.reward),
              stroke: c.reward > bi ? C.pos : C.neg,
              "stroke-width": 2.5,
              class: "gap",
            }),
          );
        }
      }
      if (per.length && per[i] !== null && per[i] !== undefined) {
        const col = model.baseline.kind === "critic" ? C.critic : C.base;
        g.append(
          s("line", {
            x1: cx(i) - bw / 2 - 6,
            x2: cx(i) + bw / 2 + 6,
            y1: yR(per[i]),
            y2: yR(per[i]),
            stroke: col,
            "stroke-width": 3,
            class: "baseline-tick",
          }),
        );
      }
      svg.append(g);
    });
    if (model.baseline.mean !== null && model.baseline.mean !== undefined) {
      const y = yR(model.baseline.mean),
        col = model.baseline.kind === "critic" ? C.critic : C.base;
      svg.append(
        s("line", {
          x1: L,
          x2: L + plotW + 8,
          y1: y,
          y2: y,
          stroke: col,
          "stroke-width": model.baseline.kind === "mean" ? 2.5 : 1.5,
          "stroke-dasharray": "7 5",
          class: "baseline-line",
          opacity: model.baseline.kind === "mean" ? 1 : 0.6,
        }),
      );
      svg.append(
        s("text", { x: L + plotW + 14, y: y + 5, class: "baseline-label", fill: col, text: model.baseline.label }),
      );
    }

    // --- advantage panel ---
    svg.append(
      s("text", {
        x: L,
        y: bot.y0 - 14,
        class: "panel-title",
        text: model.advTitle || "Advantage = how much each completion is pushed up (+) or down (−)",
      }),
    );
    const at = GK.ticks(-amax, amax, 4);
    for (const t of at) {
      const lab = GK.tickLabel(Math.abs(t), at);
      svg.append(s("line", { x1: L, x2: L + plotW, y1: yA(t), y2: yA(t), stroke: C.grid }));
      svg.append(
        s("text", {
          x: L - 8,
          y: yA(t) + 4,
          class: "tick",
          "text-anchor": "end",
          text: t === 0 ? "0" : (t > 0 ? "+" : "−") + lab,
        }),
      );
    }
    svg.append(s("line", { x1: L, x2: L + plotW, y1: yA(0), y2: yA(0), stroke: C.axis, "stroke-width": 1.5 }));
    svg.append(
      s("text", {
        x: 18,
        y: bot.y0 + bot.h / 2,
        class: "axis-label",
        transform: `rotate(-90 18 ${bot.y0 + bot.h / 2})`,
        "text-anchor": "middle",
        text: "advantage",
      }),
    );
    svg.append(
      s("text", { x: L + plotW + 14, y: bot.y0 + 20, class: "side-note", fill: C.pos, text: "▲ above baseline:" }),
    );
    svg.append(
      s("text", { x: L + plotW + 14, y: bot.y0 + 36, class: "side-note", fill: C.pos, text: "made more likely" }),
    );
    svg.append(
      s("text", {
        x: L + plotW + 14,
        y: bot.y0 + bot.h - 22,
        class: "side-note",
        fill: C.neg,
        text: "▼ below baseline:",
      }),
    );
    svg.append(
      s("text", {
        x: L + plotW + 14,
        y: bot.y0 + bot.h - 6,
        class: "side-note",
        fill: C.neg,
        text: "made less likely",
      }),
    );
    adv.forEach((a, i) => {
      const v = a || 0,
        y = yA(Math.max(0, v)),
        hgt = Math.abs(yA(v) - yA(0));
      const col = v > 0 ? C.pos : v < 0 ? C.neg : C.zero;
      svg.append(
        s("rect", {
          x: cx(i) - bw / 2,
          y: v === 0 ? yA(0) - 1 : y,
          width: bw,
          height: v === 0 ? 2 : hgt,
          fill: col,
          class: "bar-adv " + (v > 0 ? "pos" : v < 0 ? "neg" : "zero"),
          vars: { "--i": i },
        }),
      );
      const ly = v >= 0 ? yA(v) - 7 : yA(v) + 17;
      svg.append(
        s("text", {
          x: cx(i),
          y: ly,
          class: "bar-label adv-label",
          "text-anchor": "middle",
          fill: col,
          "data-index": i,
          "data-value": a,
          text: signed(a),
        }),
      );
    });

    // --- x axis: completion number and its extracted answer ---
    comps.forEach((c, i) => {
      const ok = model.correctKey && c.rewards && c.rewards[model.correctKey] >= 1;
      svg.append(
        s("text", { x: cx(i), y: bot.y0 + bot.h + 28, class: "x-label", "text-anchor": "middle", text: `#${i + 1}` }),
      );
      const ans = c.truncated
        ? "✂ cut off"
        : c.extracted === null || c.extracted === undefined
          ? "no answer"
          : `${ok ? "✓" : "✗"} ${c.extracted}`;
      svg.append(
        s("text", {
          x: cx(i),
          y: bot.y0 + bot.h + 46,
          class: "x-answer " + (ok ? "ok" : "bad"),
          "text-anchor": "middle",
          text: ans.length > 14 ? ans.slice(0, 13) + "…" : ans,
        }),
      );
      // Click target over the whole column: opens the full text.
      svg.append(
        s(
          "rect",
          {
            x: cx(i) - slot / 2,
            y: top.y0 - 4,
            width: slot,
            height: H - top.y0 - 6,
            class: "col-hit",
            "data-index": i,
            fill: "transparent",
            onclick: () => GK.showCompletion({ ...c, advantageShown: adv[i] }, i, model),
          },
          s("title", { text: `completion #${i + 1}: click for the full text` }),
        ),
      );
    });
    return svg;
  };
})();
