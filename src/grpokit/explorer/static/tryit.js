// Try it: sample a group of G from a checkpoint now and watch rewards, the baseline and the
// advantages appear. Changing the scaling only re-computes (server-side), it never re-samples.
"use strict";
(function () {
  const { h, fmt } = GK;
  const SCALE_TEXT = {
    group: ["group std (GRPO)", (m, s) => `advantage = (reward − group mean ${fmt(m)}) / (group std ${fmt(s)} + ε)`],
    none: ["none (Dr. GRPO)", (m) => `advantage = reward − group mean ${fmt(m)} (no division by the std)`],
    rloo: [
      "RLOO (leave one out)",
      () => "advantage = reward − mean of the OTHER G−1 rewards (orange ticks) = G/(G−1) · (reward − group mean)",
    ],
  };
  const last = { sample: null, scale: "group" };

  GK.renderTry = async function (root, state, run) {
    GK.clear(root);
    GK.add(
      root,
      h("h2", { text: "Try it: sample a group now" }),
      h("p.muted", {
        text: "Pick a prompt and a checkpoint, sample G completions, and see the rewards, the baseline and the advantages GRPO would train on.",
      }),
    );
    let info;
    try {
      info = await GK.api(`runs/${run.id}/try`);
    } catch (e) {
      GK.add(root, GK.errorBox([e.message], "Try it is not available"));
      return;
    }
    if (info.error) GK.add(root, h("div.notice", { text: info.error }));
    if (info.prompt_error) GK.add(root, h("div.notice", { text: info.prompt_error }));
    if (!info.available) return;
    last.scale = info.defaults.scale in SCALE_TEXT ? info.defaults.scale : "group";

    const own = h(
      "div.own.hidden",
      {},
      h("label", {}, "Prompt ", h("textarea#q", { rows: 2, placeholder: "e.g. Calculate 38 + 47." })),
      h("label", {}, "Reference answer ", h("input#a", { type: "text", placeholder: "85" })),
    );
    const prompt = h(
      "select#prompt",
      { onchange: () => own.classList.toggle("hidden", prompt.value !== "own") },
      h("option", { value: "own", text: "✎ type your own…" }),
      [...new Set(info.prompts.map((p) => p.source))].map((src) =>
        h(
          "optgroup",
          { label: src },
          info.prompts
            .map((p, i) => [p, i])
            .filter(([p]) => p.source === src)
            .map(([p, i]) => h("option", { value: i, text: `${p.question}  (answer ${p.answer})` })),
        ),
      ),
    );
    if (info.prompts.length) prompt.value = "0";
    else own.classList.remove("hidden");
    const ckpt = h(
      "select#checkpoint",
      {},
      info.checkpoints.map((c) => h("option", { value: c, text: c })),
    );
    const G = h("input#G", { type: "number", min: 1, max: 64, value: info.defaults.G });
    const tempOut = h("output", { text: fmt(info.defaults.temperature) });
    const temp = h("input#temperature", {
      type: "range",
      min: 0,
      max: 2,
      step: 0.05,
      value: info.defaults.temperature,
      oninput: () => {
        tempOut.textContent = fmt(+temp.value);
      },
    });
    const scales = h(
      "span.scales",
      {},
      info.scales.map((sc) => {
        const input = h("input", {
          type: "radio",
          name: "scale",
          value: sc,
          onchange: () => {
            last.scale = sc;
            rescale();
          },
        });
        input.checked = sc === last.scale;
        return h("label.radio", {}, input, SCALE_TEXT[sc] ? SCALE_TEXT[sc][0] : sc);
      }),
    );
    const status = h("span#try-status.muted");
    const button = h("button#sample.primary", { text: "Sample", onclick: () => sample() });
    const result = h("div#try-result");
    GK.add(
      root,
      h(
        "div.try-form",
        {},
        h("label", {}, "Checkpoint ", ckpt),
        h("label.wide", {}, "Prompt ", prompt),
        own,
        h("label", {}, "G ", G),
        h("label", {}, "Temperature ", temp, tempOut),
        h("div.scale-row", {}, "Advantage scaling: ", scales),
        h("div.scale-row", {}, button, " ", status),
      ),
      result,
    );

    let timer = null;
    const resampleSoon = () => {
      if (!last.sample) return;
      clearTimeout(timer);
      timer = setTimeout(sample, 500);
    };
    G.addEventListener("change", resampleSoon);
    temp.addEventListener("change", resampleSoon);

    async function sample() {
      let question, answer;
      if (prompt.value === "own") {
        question = own.querySelector("#q").value;
        answer = own.querySelector("#a").value;
      } else ({ question, answer } = info.prompts[+prompt.value]);
      const body = { checkpoint: ckpt.value, question, answer, G: +G.value, temperature: +temp.value };
      button.disabled = true;
      const t0 = performance.now();
      status.textContent = `sampling ${body.G} completions from ${body.checkpoint}…`;
      try {
        const out = await GK.api(`runs/${run.id}/try/sample`, body);
        last.sample = { ...body, completions: out.completions };
        status.textContent = `sampled in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
        await rescale(true);
      } catch (e) {
        status.textContent = "";
        GK.add(GK.clear(result), GK.errorBox([e.message], "Sampling failed"));
      } finally {
        button.disabled = false;
      }
    }

    async function rescale(animate = false) {
      if (!last.sample) return;
      const comps = last.sample.completions;
      let adv;
      try {
        adv = await GK.api("advantages", {
          rewards: comps.map((c) => (c.valid === false ? null : c.reward)),
          scale: last.scale,
        });
      } catch (e) {
        GK.add(GK.clear(result), GK.errorBox([e.message], "Could not compute advantages"));
        return;
      }
      const rloo = last.scale === "rloo";
      const model = {
        completions: comps,
        advantages: adv.advantages,
        correctKey: GK.correctKey(comps),
        animate,
        scale: last.scale,
        question: last.sample.question,
        answer: last.sample.answer,
        baseline: {
          kind: rloo ? "rloo" : "mean",
          per: rloo ? adv.baselines : null,
          mean: adv.mean,
          label: `group mean = ${fmt(adv.mean)}`,
        },
      };
      const chart = GK.groupChart(model);
      GK.setAttrs(chart, { vars: { "--G": comps.length } });
      GK.add(
        GK.clear(result),
        h(
          "h3",
          {},
          `G = ${comps.length} at temperature ${fmt(last.sample.temperature)} from ${last.sample.checkpoint}: `,
          h("span.qtext", { text: last.sample.question }),
        ),
        GK.groupExplainer(model),
        GK.groupLegend(model),
        chart,
        h("p.formula#try-formula", {
          text:
            (SCALE_TEXT[last.scale] ? SCALE_TEXT[last.scale][1](adv.mean, adv.std) : last.scale) +
            (adv.advantages.every((a) => a === 0)
              ? ". All rewards are equal: every advantage is 0 and this group teaches nothing."
              : ""),
        }),
        GK.completionTable(model),
      );
    }
  };
})();
