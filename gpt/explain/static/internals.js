/* internals.js: residual-stream norms per layer and position, MLP activation statistics. */
"use strict";

/* A rows x columns heatmap on a canvas with labelled axes and its own colour bar.
   values[r][c]; log: colour by log10. Returns a div. */
function heatmap(values, rowLabels, columnLabels, options) {
  var R = values.length, C = values[0].length, cell = Math.max(4, Math.min(34, Math.floor(1000 / C)));
  var rowHeight = Math.max(14, Math.min(24, Math.floor(360 / R))), labelWidth = 96, labelHeight = 84;
  var flat = [].concat.apply([], values).filter(function (v) { return v !== null && isFinite(v) && (!options.log || v > 0); });
  var low = Math.min.apply(null, flat), high = Math.max.apply(null, flat);
  var f = options.log ? function (v) { return Math.log10(v); } : function (v) { return v; };
  var lo = options.zero ? 0 : f(low), hi = f(high);
  if (!(hi > lo)) hi = lo + 1;
  var c = hiDpiCanvas(labelWidth + C * cell + 60, labelHeight + R * rowHeight + 30), ctx = c.ctx;
  for (var r = 0; r < R; r++) for (var k = 0; k < C; k++) {
    var v = values[r][k];
    ctx.fillStyle = v === null || !isFinite(v) || (options.log && v <= 0) ? "#eef0f3" : colour((f(v) - lo) / (hi - lo));
    ctx.fillRect(labelWidth + k * cell, labelHeight + r * rowHeight, cell - 1, rowHeight - 1);
  }
  ctx.fillStyle = "#1d2430"; ctx.font = "11.5px DejaVu Sans Mono, monospace"; ctx.textBaseline = "middle";
  var stride = labelStride(cell, 13);
  for (k = 0; k < C; k += stride) {
    ctx.save(); ctx.translate(labelWidth + (k + 0.5) * cell, labelHeight - 6); ctx.rotate(-Math.PI / 3);
    ctx.textAlign = "left"; ctx.fillText(columnLabels[k], 0, 0); ctx.restore();
  }
  ctx.font = "11.5px DejaVu Sans, sans-serif"; ctx.textAlign = "right";
  var rowStride = labelStride(rowHeight, 13);
  for (r = 0; r < R; r += rowStride) ctx.fillText(rowLabels[r], labelWidth - 6, labelHeight + (r + 0.5) * rowHeight);
  ctx.textAlign = "center"; ctx.fillStyle = "#5d6776";
  ctx.fillText(options.xTitle, labelWidth + C * cell / 2, labelHeight + R * rowHeight + 18);
  c.canvas.addEventListener("mousemove", function (event) {
    var box = c.canvas.getBoundingClientRect();
    var k2 = Math.floor((event.clientX - box.left - labelWidth) / cell), r2 = Math.floor((event.clientY - box.top - labelHeight) / rowHeight);
    if (k2 < 0 || r2 < 0 || k2 >= C || r2 >= R) return hideTip();
    showTip(event, rowLabels[r2] + ", " + columnLabels[k2] + "\n" + options.what + " " + fmt(values[r2][k2]));
  });
  c.canvas.addEventListener("mouseleave", hideTip);
  var ticks = [0, 0.25, 0.5, 0.75, 1].map(function (t) {
    var v = lo + t * (hi - lo); return [t, fmt(options.log ? Math.pow(10, v) : v, 3)]; });
  return el("div", {}, [c.canvas, colourBar(colour, ticks, options.what + (options.log ? " (log colour scale)" : ""), 300)]);
}

function renderInternals() {
  var body = sectionBody("internals"), N = DATA.norms, M = DATA.mlp, L = DATA.model.n_layers;
  var columns = DATA.tokens.map(function (id, t) { return t + " " + label(id, 10); });
  body.appendChild(el("p", {cls: "explain", text: "The L2 norm of the vectors at each position: the residual " +
    "stream x (after the embedding and after each block), and what each block adds to it: the attention " +
    "output and the MLP output (x after a block = x before + attention + MLP)."}));
  var views = [["residual stream \u2016x\u2016", N.residual, ["embedding"].concat(range(L).map(function (l) { return "after layer " + (l + 1); }))],
               ["attention output \u2016a\u2016", N.attention, range(L).map(function (l) { return "layer " + (l + 1); })],
               ["MLP output \u2016f\u2016", N.mlp, range(L).map(function (l) { return "layer " + (l + 1); })]];
  var holder = el("div", {cls: "scroll", id: "norm-map"});
  body.appendChild(el("div", {cls: "controls"}, [el("label", {text: "show"}), buttons(views.map(function (v) { return v[0]; }), 0, function (i) { show(i); })]));
  body.appendChild(holder);
  function show(i) {
    holder.innerHTML = "";
    holder.appendChild(heatmap(views[i][1], views[i][2], columns, {log: true, what: views[i][0], xTitle: "position: token"}));
  }
  show(0);

  body.appendChild(el("h3", {text: "MLP activations (the " + M.hidden + " GELU outputs inside each block's MLP)"}));
  body.appendChild(el("p", {cls: "explain", text: "Histogram of all activations of each layer over the prompt " +
    "(one x-axis for every layer; GELU lets little through below 0), their statistics, and the neurons that fire most."}));
  var grid = el("div", {cls: "grid", id: "mlp-grid"}), edges = M.edges;
  var maxFraction = 0;
  M.layers.forEach(function (layer) {
    var total = layer.histogram.reduce(function (a, b) { return a + b; }, 0) || 1;
    layer.histogram.forEach(function (n) { maxFraction = Math.max(maxFraction, n / total); });
  });
  M.layers.forEach(function (layer, l) {
    var total = layer.histogram.reduce(function (a, b) { return a + b; }, 0) || 1;
    var W = 600, H = 130, left = 44, bottom = 22, plotW = W - left - 8, plotH = H - bottom - 6;
    var plot = svg("svg", {width: W, height: H});
    layer.histogram.forEach(function (n, b) {
      var h = n / total / maxFraction * plotH, x = left + b / layer.histogram.length * plotW;
      plot.appendChild(svg("rect", {x: x, y: 6 + plotH - h, width: Math.max(1, plotW / layer.histogram.length - 1), height: h, fill: "#2b6cb0"}));
    });
    plot.appendChild(svg("line", {x1: left, x2: left + plotW, y1: 6 + plotH, y2: 6 + plotH, stroke: "#8a94a3"}));
    [0, 0.5, 1].forEach(function (t) {
      var x = left + t * plotW, value = edges[0] + t * (edges[edges.length - 1] - edges[0]);
      plot.appendChild(svg("text", {x: x, y: H - 6, "text-anchor": t === 0 ? "start" : t === 1 ? "end" : "middle", "font-size": 11, fill: "#5d6776"}, fmt(value, 3)));
    });
    plot.appendChild(svg("text", {x: left - 4, y: 14, "text-anchor": "end", "font-size": 11, fill: "#5d6776"}, pct(maxFraction)));
    plot.appendChild(svg("text", {x: left - 4, y: 6 + plotH, "text-anchor": "end", "font-size": 11, fill: "#5d6776"}, "0"));
    var top = layer.top_neurons.slice(0, 3).map(function (n) {
      return "#" + n.neuron + " " + fmt(n.value, 3) + " at '" + label(DATA.tokens[n.position], 10) + "'"; }).join(", ");
    grid.appendChild(el("div", {cls: "card"}, [el("div", {cls: "title", text: "layer " + (l + 1)}), plot,
      el("div", {cls: "stats", text: "mean " + fmt(layer.mean, 3) + ", std " + fmt(layer.std, 3) + ", min " + fmt(layer.min, 3) +
        ", max " + fmt(layer.max, 3) + ", " + pct(layer.frac_positive) + " > 0"}),
      el("div", {cls: "stats", text: "strongest: " + top})]));
  });
  body.appendChild(grid);
  body.appendChild(el("h3", {text: "RMS of the MLP activations by layer and position"}));
  body.appendChild(el("div", {cls: "scroll"}, [heatmap(M.layers.map(function (layer) { return layer.rms_by_position; }),
    range(L).map(function (l) { return "layer " + (l + 1); }), columns, {log: false, zero: true, what: "RMS activation", xTitle: "position: token"})]));
}

function range(n) { var out = []; for (var i = 0; i < n; i++) out.push(i); return out; }
