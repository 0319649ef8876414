/* attention.js: query-by-key heatmaps of the attention weights, per layer and head. */
"use strict";

function renderAttention() {
  var A = DATA.attention, body = sectionBody("attention");
  body.appendChild(el("p", {cls: "explain", text: "Row q shows how token q (the query) spreads its attention " +
    "over tokens 0..q (the keys): softmax(q\u00b7k/\u221aD) with the future masked, each row sums to 1. " +
    "Pick a layer and a head, or the mean over the layer's heads; the small maps are every head of the layer."}));
  if (A.note) body.appendChild(el("div", {cls: "note", text: A.note}));
  if (!A.mean) return;
  var T = A.tokens, H = A.heads, L = A.layers;
  var perHead = A.per_head ? bytesOf(A.per_head) : null, mean = bytesOf(A.mean);
  var state = {layer: 0, head: -1, sqrt: T > 24};  /* head -1: the mean over heads */
  /* the colour of a weight: linear, or by its square root (long prompts spread attention thin) */
  function tint(w) { return colour(state.sqrt ? Math.sqrt(w) : w); }

  function map(layer, head) {  /* (T, T) uint8 view for one layer and head */
    return head < 0 ? mean.subarray(layer * T * T, (layer + 1) * T * T)
      : perHead.subarray(((layer * H) + head) * T * T, ((layer * H) + head + 1) * T * T);
  }
  function name(head) { return head < 0 ? "mean of " + H + " heads" : "head " + (head + 1); }

  var controls = el("div", {cls: "controls"});
  var layerNames = []; for (var l = 0; l < L; l++) layerNames.push(String(l + 1));
  controls.appendChild(el("label", {text: "layer"}));
  controls.appendChild(buttons(layerNames, 0, function (i) { state.layer = i; draw(); }));
  controls.appendChild(el("label", {text: "colour scale"}));
  controls.appendChild(buttons(["linear", "square root"], state.sqrt ? 1 : 0, function (i) { state.sqrt = i === 1; draw(); }));
  body.appendChild(controls);
  var row = el("div", {cls: "row"}), main = el("div", {id: "attention-main"}), side = el("div", {});
  row.appendChild(main); row.appendChild(side); body.appendChild(row);

  var cell = Math.max(2, Math.min(52, Math.floor(560 / T)));
  var labelWidth = 118, labelHeight = 96, size = cell * T;
  var stride = labelStride(cell, 13);

  function draw() {
    main.innerHTML = ""; side.innerHTML = "";
    var weights = map(state.layer, state.head);
    main.appendChild(el("h3", {text: "layer " + (state.layer + 1) + ", " + name(state.head)}));
    var c = hiDpiCanvas(labelWidth + size + 60, labelHeight + size + 34), ctx = c.ctx;  /* room for the last rotated label */
    for (var q = 0; q < T; q++) {
      for (var k = 0; k < T; k++) {
        ctx.fillStyle = k > q ? "#eef0f3" : tint(weights[q * T + k] / 255);
        ctx.fillRect(labelWidth + k * cell, labelHeight + q * cell, cell, cell);
        if (cell >= 34 && k <= q) {
          var w = weights[q * T + k] / 255;
          ctx.fillStyle = (state.sqrt ? Math.sqrt(w) : w) > 0.6 ? "#1d2430" : "#fff"; ctx.font = "11px DejaVu Sans, sans-serif"; ctx.textAlign = "center";
          ctx.textBaseline = "middle"; ctx.fillText(w.toFixed(2), labelWidth + (k + 0.5) * cell, labelHeight + (q + 0.5) * cell);
        }
      }
    }
    ctx.font = Math.min(12, Math.max(9, cell - 2)) + "px DejaVu Sans Mono, monospace";
    ctx.fillStyle = "#1d2430"; ctx.textBaseline = "middle";
    for (var i = 0; i < T; i += stride) {
      ctx.textAlign = "right";
      ctx.fillText(label(DATA.tokens[i], 12), labelWidth - 6, labelHeight + (i + 0.5) * cell);
      ctx.save(); ctx.translate(labelWidth + (i + 0.5) * cell, labelHeight - 6); ctx.rotate(-Math.PI / 3);
      ctx.textAlign = "left"; ctx.fillText(label(DATA.tokens[i], 12), 0, 0); ctx.restore();
    }
    ctx.font = "12px DejaVu Sans, sans-serif"; ctx.fillStyle = "#5d6776"; ctx.textAlign = "center";
    ctx.fillText("key (attended to) \u2192", labelWidth + size / 2, labelHeight + size + 18);
    ctx.save(); ctx.translate(12, labelHeight + size / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText("query (attending) \u2192", 0, 0); ctx.restore();
    c.canvas.addEventListener("mousemove", function (event) {
      var box = c.canvas.getBoundingClientRect();
      var k = Math.floor((event.clientX - box.left - labelWidth) / cell), q = Math.floor((event.clientY - box.top - labelHeight) / cell);
      if (k < 0 || q < 0 || k >= T || q >= T) return hideTip();
      showTip(event, k > q ? "masked: token " + q + " cannot see the later token " + k
        : "query " + q + " '" + label(DATA.tokens[q], 20) + "'\n\u2192 key " + k + " '" + label(DATA.tokens[k], 20) +
          "'\nweight " + (weights[q * T + k] / 255).toFixed(3));
    });
    c.canvas.addEventListener("mouseleave", hideTip);
    main.appendChild(el("div", {}, [c.canvas]));
    var ticks = state.sqrt ? [[0, "0"], [Math.sqrt(0.01), "0.01"], [Math.sqrt(0.1), "0.1"], [Math.sqrt(0.3), "0.3"], [Math.sqrt(0.6), "0.6"], [1, "1"]]
      : [[0, "0"], [0.25, "0.25"], [0.5, "0.5"], [0.75, "0.75"], [1, "1"]];
    main.appendChild(colourBar(colour, ticks, "attention weight (" + (state.sqrt ? "square-root" : "linear") +
      " scale, the same for every layer and head; grey: future, masked)", 320));
    drawThumbs(weights);
  }

  function drawThumbs() {
    side.appendChild(el("h3", {text: "all heads of layer " + (state.layer + 1) + " (click one)"}));
    var grid = el("div", {cls: "thumbs"}), heads = perHead ? H : 0;
    for (var h = -1; h < heads; h++) {
      (function (head) {
        var weights = map(state.layer, head), px = 96 / T, c = hiDpiCanvas(96, 96);
        for (var q = 0; q < T; q++) for (var k = 0; k <= q; k++) {
          c.ctx.fillStyle = tint(weights[q * T + k] / 255); c.ctx.fillRect(k * px, q * px, px + 0.5, px + 0.5);
        }
        var thumb = el("div", {cls: "thumb" + (head === state.head ? " on" : ""), onclick: function () {
          state.head = head; draw(); }}, [c.canvas, el("span", {text: head < 0 ? "mean" : "head " + (head + 1)})]);
        grid.appendChild(thumb);
      })(h);
    }
    side.appendChild(grid);
    if (!perHead) side.appendChild(el("div", {cls: "muted", text: "(per-head maps not embedded)"}));
  }
  draw();
}
