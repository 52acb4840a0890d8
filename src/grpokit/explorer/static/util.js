// Shared helpers: the API client, DOM building (text only: completions are model output and are
// never parsed as HTML), SVG building and number formats. Everything hangs off window.GK.
"use strict";
const GK = (window.GK = window.GK || {});

GK.api = async function (path, body) {
  const opts =
    body === undefined
      ? {}
      : {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        };
  const res = await fetch("/api/" + path, opts);
  let data;
  try {
    data = await res.json();
  } catch (e) {
    throw new Error(`${res.status}: the server sent no JSON`);
  }
  if (!res.ok) throw new Error(data && data.error ? data.error : `HTTP ${res.status}`);
  return data;
};

// h("div.card#x", {onclick: f, title: "t"}, child, "text", [more]) -> element
GK.h = function (spec, attrs, ...kids) {
  const el = document.createElement(spec.match(/^[a-z0-9]*/)[0] || "div");
  const id = spec.match(/#([\w-]+)/);
  if (id) el.id = id[1];
  const classes = [...spec.matchAll(/\.([\w-]+)/g)].map((m) => m[1]);
  if (classes.length) el.className = classes.join(" ");
  GK.setAttrs(el, attrs);
  GK.append(el, kids);
  return el;
};

GK.setAttrs = function (el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    // CSS variables through the CSSOM: the page's CSP forbids inline style attributes.
    else if (k === "vars") for (const [name, val] of Object.entries(v)) el.style.setProperty(name, String(val));
    else el.setAttribute(k, v === true ? "" : String(v));
  }
};

GK.append = function (el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
};

const SVGNS = "http://www.w3.org/2000/svg";
GK.s = function (tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  GK.setAttrs(el, attrs);
  return GK.append(el, kids);
};

// Native Element.append would print null and arrays as text; this skips the first and flattens the second.
GK.add = function (el, ...kids) {
  return GK.append(el, kids);
};

GK.clear = function (el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
};

GK.fmt = function (x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && (Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3)) return x.toExponential(2);
  return x.toFixed(digits);
};

// Signed with a real minus sign, so "+0.87" and "−0.87" read at a glance.
GK.signed = function (x, digits = 2) {
  if (x === null || x === undefined) return "–";
  const s = Math.abs(x).toFixed(digits);
  if (Number(s) === 0) return "0." + "0".repeat(digits);
  return (x > 0 ? "+" : "−") + s;
};

GK.count = function (n) {
  if (n === null || n === undefined) return "–";
  if (n >= 1e9) return (n / 1e9).toFixed(2) + " B";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + " k";
  return String(n);
};

GK.ago = function (unix) {
  if (!unix) return "";
  const s = Math.max(0, Date.now() / 1000 - unix);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
};

GK.errorBox = function (lines, title = "Could not read part of this run") {
  if (!lines || !lines.length) return null;
  return GK.h(
    "div.error",
    {},
    GK.h("strong", { text: title }),
    GK.h(
      "ul",
      {},
      lines.map((l) => GK.h("li", { text: l })),
    ),
  );
};

// "Nice" axis ticks covering [lo, hi].
GK.ticks = function (lo, hi, n = 4) {
  if (!(hi > lo)) {
    hi = lo + 1;
  }
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
};

// Tick labels with as many decimals as the tick step needs (0.25 -> 2, 0.0005 -> 4, 5 -> 0).
GK.tickLabel = function (t, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const dec = (String(Number(step.toPrecision(6))).split(".")[1] || "").length;
  return t.toFixed(Math.min(dec, 6));
};

// The extracted answer highlighted inside the full text (its last occurrence, as graders read it).
GK.highlighted = function (text, extracted) {
  const pre = GK.h("pre.completion-text");
  const at = extracted ? text.lastIndexOf(extracted) : -1;
  if (at < 0) {
    pre.textContent = text;
    return pre;
  }
  return GK.append(pre, [
    text.slice(0, at),
    GK.h("mark", { text: extracted, title: "extracted answer" }),
    text.slice(at + extracted.length),
  ]);
};

// A modal with the full text of one completion.
GK.showCompletion = function (c, i, ctx) {
  const close = () => overlay.remove();
  const rows = Object.entries(c.rewards || {}).map(([k, v]) =>
    GK.h("tr", {}, GK.h("td", { text: k }), GK.h("td.num", { text: GK.fmt(v) })),
  );
  const extra = [
    ["total reward", GK.fmt(c.reward)],
    ["advantage", GK.signed(c.advantageShown)],
    ["length (tokens)", c.length ?? "–"],
    ["truncated", c.truncated ? "yes, hit max_new_tokens" : "no"],
    ["extracted answer", c.extracted ?? "none found"],
    ["reference answer", ctx.answer ?? "–"],
  ];
  if (c.value !== null && c.value !== undefined) extra.splice(2, 0, ["critic value V(s₀)", GK.fmt(c.value)]);
  if (c.episode) {
    const e = c.episode;
    extra.push(["turns / tool calls / tool errors", `${e.turns} / ${e.tool_calls} / ${e.tool_errors}`], ["episode ended", e.end]);
  }
  const overlay = GK.h(
    "div.overlay",
    {
      onclick: (e) => {
        if (e.target === overlay) close();
      },
    },
    GK.h(
      "div.modal",
      { role: "dialog", "aria-label": `completion ${i + 1}` },
      GK.h("button.close", { onclick: close, title: "close (Esc)", text: "×" }),
      GK.h("h3", { text: `Completion #${i + 1}` }),
      ctx.question ? GK.h("p.question", {}, GK.h("strong", { text: "Prompt: " }), ctx.question) : null,
      c.episode ? GK.episodeView(c.episode) : null,
      GK.highlighted(c.text, c.extracted),
      GK.h(
        "table.kv",
        {},
        rows,
        extra.map(([k, v]) => GK.h("tr", {}, GK.h("td", { text: k }), GK.h("td.num", { text: String(v) }))),
      ),
    ),
  );
  document.addEventListener("keydown", function esc(e) {
    if (e.key === "Escape") {
      close();
      document.removeEventListener("keydown", esc);
    }
  });
  document.body.appendChild(overlay);
};

// A multi-turn episode turn by turn (the model's turns, tool calls, tool results), then its token
// spans: model spans are trained on, environment spans are in the context but masked out of the loss.
GK.episodeView = function (e) {
  const turns = e.messages.map((m) =>
    GK.h(
      "div.turn.turn-" + (m.role === "assistant" ? "model" : m.role === "tool" ? "tool" : "context"),
      {},
      GK.h("span.turn-role", { text: m.role + (m.name ? ` (${m.name})` : "") }),
      GK.h("div.completion-text", { text: m.content }),
    ),
  );
  const spans = e.spans.map(([kind, a, b]) =>
    GK.h("span.span-" + kind, {
      text: `${kind === "model" ? "model, trained" : "environment, masked"} ${a}–${b}`,
      title: `${b - a} tokens`,
    }),
  );
  return GK.h("div.episode", {}, turns, GK.h("p.spans", {}, GK.h("strong", { text: "token spans: " }), spans));
};
