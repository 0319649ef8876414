/* distribution.js: next-token distributions, recomputed here for any temperature, top-k, top-p. */
"use strict";
var SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  var node = document.createElementNS(SVG_NS, tag);
  Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
  if (text !== undefined) node.textContent = text;
  return node;
}

/* The embedded logits of one step as runs [value, count, first rank]: the largest logits one by one
   (minus the maximum, sorted), then the rest as histogram bins (value = bin centre). */
function stepItems(step) {
  if (step.items) return step.items;
  var head = float16s(step.head), items = [], rank = 0;
  for (var i = 0; i < head.length; i++) items.push([head[i], 1, rank++]);
  if (step.tail) step.tail.centers.forEach(function (centre, b) {
    var count = step.tail.counts[b];
    if (count > 0) { items.push([centre, count, rank]); rank += count; }
  });
  step.items = items; step.vocab = rank;
  return items;
}

/* gpt.generate's rule: logits / temperature, keep the top k, keep the top p of the mass, softmax.
   Returns prob(rank) for any rank, and how many tokens survive. */
function distribution(step, temperature, topK, topP) {
  var items = stepItems(step);
  if (temperature === 0) return {prob: function (rank) { return rank === 0 ? 1 : 0; }, kept: 1};
  var kept = [], budget = topK ? topK : Infinity, total = 0, i;
  for (i = 0; i < items.length; i++) {  /* top-k: the first k ranks */
    var n = Math.max(0, Math.min(items[i][1], budget));
    kept.push(n); budget -= n; total += n * Math.exp(items[i][0] / temperature);
  }
  if (topP && topP < 1) {  /* top-p: a rank survives while the mass ranked above it is below p */
    var before = 0;
    for (i = 0; i < items.length; i++) {
      var q = Math.exp(items[i][0] / temperature) / total, n2 = 0;
      if (before < topP) n2 = Math.min(kept[i], Math.max(1, Math.ceil((topP - before) / q - 1e-9)));
      before += kept[i] * q; kept[i] = n2;
    }
    total = 0;
    for (i = 0; i < items.length; i++) total += kept[i] * Math.exp(items[i][0] / temperature);
  }
  var keptCount = kept.reduce(function (a, b) { return a + b; }, 0);
  return {kept: keptCount, prob: function (rank, exactValue) {
    for (var j = 0; j < items.length; j++) {
      var item = items[j];
      if (rank < item[2] + item[1]) {
        if (rank - item[2] >= kept[j]) return 0;
        var value = exactValue === undefined || exactValue === null ? item[0] : exactValue;
        return Math.exp(value / temperature) / total;
      }
    }
    return 0;
  }};
}

function renderDistribution() {
  var G = DATA.generation, body = sectionBody("next"), settings = G.settings;
  var s = settings;
  body.appendChild(el("p", {cls: "explain", text: "The model's probabilities for the next token (top " +
    G.bars + "), recomputed in this page from the embedded logits as gpt.generate does: logits / temperature, " +
    "keep the k most likely (top-k), keep the most likely until their mass reaches p (top-p), softmax. " +
    (G.steps.length > 1 ? "Click a generated token to see the distribution it was drawn from. " : "") +
    "Tokens picked by gpt generate with temperature " + s.temperature + ", top-k " + (s.top_k || "off") +
    ", top-p " + (s.top_p || "off") + ", seed " + (s.seed === null ? "none (random)" : s.seed) + "."}));
  var state = {step: 0, temperature: s.temperature, topK: s.top_k || 0, topP: s.top_p || 1};

  var strip = el("div", {cls: "chips", id: "generated-chips"});
  strip.appendChild(el("span", {cls: "muted strip-label", text: "prompt \u2026"}));
  G.context_tail.forEach(function (id) { strip.appendChild(el("div", {cls: "chip context"}, [pieceNode(id)])); });
  var stepChips = [];
  strip.appendChild(el("span", {cls: "muted strip-label", text: G.steps[0].chosen === null ? "next:" : "generated:"}));
  G.steps.forEach(function (step, index) {
    var chip = el("div", {cls: "chip generated", onclick: function () { state.step = index; draw(); }},
      step.chosen === null ? [el("span", {cls: "piece", text: "(next)"})] : [pieceNode(step.chosen), el("span", {cls: "tid", text: "step " + (index + 1)})]);
    stepChips.push(chip); strip.appendChild(chip);
  });
  body.appendChild(strip);

  var tempValue = el("span", {cls: "mono"}), pValue = el("span", {cls: "mono"});
  var temp = el("input", {type: "range", min: "0", max: "2", step: "0.01", value: String(state.temperature)});
  var topK = el("input", {type: "number", min: "0", step: "1", value: String(state.topK)});
  var topP = el("input", {type: "range", min: "0.01", max: "1", step: "0.01", value: String(state.topP)});
  temp.addEventListener("input", function () { state.temperature = Number(temp.value); draw(); });
  topK.addEventListener("input", function () { state.topK = Math.max(0, Math.floor(Number(topK.value) || 0)); draw(); });
  topP.addEventListener("input", function () { state.topP = Number(topP.value); draw(); });
  var reset = el("button", {text: "the command's settings", onclick: function () {
    state.temperature = s.temperature; state.topK = s.top_k || 0; state.topP = s.top_p || 1;
    temp.value = state.temperature; topK.value = state.topK; topP.value = state.topP; draw(); }});
  body.appendChild(el("div", {cls: "controls"}, [el("label", {text: "temperature"}), temp, tempValue,
    el("label", {text: "top-k (0: off)"}), topK, el("label", {text: "top-p"}), topP, pValue, reset]));
  var info = el("div", {cls: "muted", id: "distribution-info"}), chart = el("div", {});
  var check = el("div", {id: "distribution-check", hidden: "hidden"});
  body.appendChild(info); body.appendChild(chart); body.appendChild(check);

  function draw() {
    var step = G.steps[state.step];
    stepChips.forEach(function (chip, i) { chip.className = "chip generated" + (i === state.step ? " selected" : ""); });
    tempValue.textContent = state.temperature.toFixed(2) + (state.temperature === 0 ? " (greedy)" : "");
    pValue.textContent = state.topP >= 1 ? "1 (off)" : state.topP.toFixed(2);
    var d = distribution(step, state.temperature, state.topK, state.topP >= 1 ? null : state.topP);
    var probs = step.top_ids.map(function (id, rank) { return d.prob(rank); });
    var covered = probs.reduce(function (a, b) { return a + b; }, 0);
    info.textContent = "step " + (state.step + 1) + " of " + G.steps.length + ": the model saw " + step.context +
      " tokens; " + d.kept.toLocaleString("en-US") + " of " + step.vocab.toLocaleString("en-US") +
      " tokens can be drawn; the " + probs.length + " shown hold " + pct(covered) + " of the probability.";
    check.setAttribute("data-step", String(state.step));
    check.setAttribute("data-probs", JSON.stringify(probs.map(function (p) { return Number(p.toPrecision(6)); })));
    var rows = step.top_ids.map(function (id, rank) { return {id: id, rank: rank, p: probs[rank]}; });
    if (step.chosen !== null && step.chosen_rank >= rows.length)
      rows.push({id: step.chosen, rank: step.chosen_rank, p: d.prob(step.chosen_rank, step.chosen_logit), extra: true});
    var rowHeight = 22, labelWidth = 190, barWidth = 640, height = rows.length * rowHeight + 44 + (rows.length > step.top_ids.length ? 8 : 0);
    var plot = svg("svg", {width: labelWidth + barWidth + 170, height: height, id: "distribution-bars"});
    var scaleMax = Math.max(1e-9, Math.max.apply(null, rows.map(function (r) { return r.p; })));
    rows.forEach(function (r, i) {
      var y = 8 + i * rowHeight + (r.extra ? 8 : 0), chosen = r.id === step.chosen;
      plot.appendChild(svg("text", {x: labelWidth - 8, y: y + 15, "text-anchor": "end", "font-size": 12.5,
        "font-family": "DejaVu Sans Mono, monospace", fill: chosen ? "#b7500f" : "#1d2430"},
        (r.rank + 1) + ". '" + label(r.id, 16) + "'"));
      var w = r.p / scaleMax * barWidth;
      plot.appendChild(svg("rect", {x: labelWidth, y: y + 3, width: Math.max(r.p > 0 ? 1 : 0, w), height: rowHeight - 6,
        fill: chosen ? "#dd6b20" : "#2b6cb0", rx: 2}));
      plot.appendChild(svg("text", {x: labelWidth + Math.max(w, 0) + 6, y: y + 15, "font-size": 12, fill: "#5d6776"},
        r.p > 0 ? pct(r.p) + (chosen ? "  \u2190 gpt generate's pick" : "") : "filtered out" + (chosen ? " (gpt generate's pick)" : "")));
    });
    var axisY = height - 22;
    plot.appendChild(svg("line", {x1: labelWidth, x2: labelWidth + barWidth, y1: axisY, y2: axisY, stroke: "#8a94a3"}));
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var x = labelWidth + f * barWidth;
      plot.appendChild(svg("line", {x1: x, x2: x, y1: axisY, y2: axisY + 4, stroke: "#8a94a3"}));
      plot.appendChild(svg("text", {x: x, y: axisY + 16, "text-anchor": "middle", "font-size": 11, fill: "#5d6776"}, pct(f * scaleMax)));
    });
    plot.appendChild(svg("text", {x: labelWidth - 8, y: axisY + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6776"}, "probability \u2192"));
    chart.innerHTML = ""; chart.appendChild(plot);
  }
  draw();
}
