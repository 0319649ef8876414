/* core.js: the page's data, small DOM and drawing helpers, the header and the token list. */
"use strict";
var DATA = JSON.parse(document.getElementById("explain-data").textContent);

function el(tag, attrs, children) {
  var node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (key) {
    if (key === "text") node.textContent = attrs[key];
    else if (key === "cls") node.className = attrs[key];
    else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), attrs[key]);
    else node.setAttribute(key, attrs[key]);
  });
  (children || []).forEach(function (child) {
    if (child !== null && child !== undefined) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  });
  return node;
}

function sectionBody(id) { return document.querySelector("#" + id + " .body"); }

/* Whitespace made visible: space as a middle dot, newline, tab. */
function visible(text) { return text.replace(/ /g, "\u00b7").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5"); }
function piece(id) { var entry = DATA.vocab[String(id)]; return entry ? entry[0] : "?" + id; }
function label(id, max) {
  var text = visible(piece(id));
  max = max || 14;
  return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
}
function pieceNode(id) {  /* a span with whitespace markers greyed */
  var span = el("span", {cls: "piece"});
  var text = piece(id);
  for (var i = 0; i < text.length; i++) {
    var ch = text[i], mark = visible(ch);
    span.appendChild(mark !== ch ? el("span", {cls: "ws", text: mark}) : document.createTextNode(ch));
  }
  return span;
}

function fmt(value, digits) {
  if (value === null || value === undefined || !isFinite(value)) return "n/a";
  var a = Math.abs(value);
  if (a !== 0 && (a >= 1e5 || a < 1e-3))
    return value.toExponential(Math.max(0, (digits === undefined ? 3 : digits) - 1)).replace(/\.?0+e/, "e");
  return Number(value.toPrecision(digits === undefined ? 4 : digits)).toString();
}
function pct(p) {
  var v = 100 * p;
  if (v === 0) return "0%";
  return (v >= 10 ? v.toFixed(1) : v >= 1e-3 ? Number(v.toPrecision(2)).toString() : v.toExponential(1)) + "%";
}

function bytesOf(b64) {
  var raw = atob(b64), out = new Uint8Array(raw.length);
  for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
function float16s(b64) {  /* little-endian IEEE half floats -> Float64Array */
  var bytes = bytesOf(b64), n = bytes.length / 2, out = new Float64Array(n);
  for (var i = 0; i < n; i++) {
    var h = bytes[2 * i] | (bytes[2 * i + 1] << 8);
    var sign = h & 0x8000 ? -1 : 1, exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
    out[i] = exponent === 0 ? sign * Math.pow(2, -14) * fraction / 1024
      : exponent === 31 ? (fraction ? NaN : sign * Infinity)
      : sign * Math.pow(2, exponent - 15) * (1 + fraction / 1024);
  }
  return out;
}

/* One sequential colour scale (viridis-like) for every heatmap, t in [0, 1]. */
var SCALE = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
             [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
function colour(t) {
  t = Math.max(0, Math.min(1, isFinite(t) ? t : 0)) * (SCALE.length - 1);
  var i = Math.min(SCALE.length - 2, Math.floor(t)), f = t - i, a = SCALE[i], b = SCALE[i + 1];
  return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + f * (b[k] - a[k])); }).join(",") + ")";
}
/* A light single-hue scale for probabilities in cells that carry text: white to blue, by sqrt(p)
   so that small probabilities still show (the colour bar's ticks say where each value sits). */
function paleColour(t) { return paleRamp(Math.sqrt(Math.max(0, Math.min(1, isFinite(t) ? t : 0)))); }
var PROBABILITY_TICKS = [[0, "0"], [Math.sqrt(0.01), "0.01"], [Math.sqrt(0.1), "0.1"], [Math.sqrt(0.3), "0.3"], [Math.sqrt(0.6), "0.6"], [1, "1"]];
function paleRamp(t) {
  return "rgb(" + Math.round(255 - 200 * t) + "," + Math.round(255 - 140 * t) + "," + Math.round(255 - 60 * t) + ")";
}
function textOn(p) { return Math.sqrt(p) > 0.62 ? "#fff" : "#1d2430"; }

/* A horizontal colour bar with ticks: scale(t) colours, ticks [[t, text], ...]. */
function colourBar(scale, ticks, title, width) {
  width = width || 260;
  var c = hiDpiCanvas(width + 60, 34), ctx = c.ctx;
  for (var x = 0; x < width; x++) { ctx.fillStyle = scale(x / (width - 1)); ctx.fillRect(30 + x, 2, 1, 12); }
  ctx.strokeStyle = "#8a94a3"; ctx.strokeRect(30.5, 2.5, width - 1, 11);
  ctx.fillStyle = "#1d2430"; ctx.font = "11px DejaVu Sans, sans-serif"; ctx.textAlign = "center";
  ticks.forEach(function (tick) {
    var px = 30 + tick[0] * (width - 1);
    ctx.fillRect(px, 14, 1, 4); ctx.fillText(tick[1], px, 29);
  });
  return el("div", {cls: "colourbar"}, [el("div", {cls: "muted small", text: title}), c.canvas]);
}

var tooltip = document.getElementById("tooltip");
function showTip(event, text) {
  tooltip.textContent = text; tooltip.hidden = false;
  var x = event.clientX + 14, y = event.clientY + 14;
  if (x + 390 > window.innerWidth) x = event.clientX - 390;
  tooltip.style.left = x + "px"; tooltip.style.top = y + "px";
}
function hideTip() { tooltip.hidden = true; }

/* A canvas sized for the screen's pixel ratio; draw in CSS pixels. */
function hiDpiCanvas(width, height) {
  var ratio = window.devicePixelRatio || 1;
  var canvas = el("canvas", {width: Math.round(width * ratio), height: Math.round(height * ratio)});
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  var ctx = canvas.getContext("2d"); ctx.scale(ratio, ratio);
  return {canvas: canvas, ctx: ctx};
}

/* Which of n axis labels to draw so that labels `size` px apart never overlap (>= 12 px). */
function labelStride(size, minimum) { return Math.max(1, Math.ceil((minimum || 12) / size)); }

function buttons(names, current, onPick) {
  var box = el("span", {cls: "btns"});
  names.forEach(function (name, index) {
    box.appendChild(el("button", {text: name, cls: index === current ? "on" : "", onclick: function () {
      Array.prototype.forEach.call(box.children, function (b, i) { b.className = i === index ? "on" : ""; });
      onPick(index);
    }}));
  });
  return box;
}

function renderHeader() {
  var m = DATA.model, header = document.getElementById("header");
  header.appendChild(el("h1", {text: "What " + m.name + " does with a prompt"}));
  header.appendChild(el("div", {cls: "muted", text: m.description}));
  var facts = el("div", {cls: "facts"});
  [["layers", m.n_layers], ["heads", m.n_heads], ["width", m.emb_dim], ["context", m.context_length],
   ["vocabulary", m.vocab_size.toLocaleString("en-US")], ["parameters", m.parameters.toLocaleString("en-US")],
   ["tokenizer", m.tokenizer]].forEach(function (f) {
    facts.appendChild(el("span", {}, [f[0] + " ", el("b", {text: String(f[1])})]));
  });
  header.appendChild(facts);
  header.appendChild(el("div", {cls: "prompt-text", text: DATA.prompt.text === "" ? "(empty prompt)" : DATA.prompt.text}));
  DATA.notes.forEach(function (note) { header.appendChild(el("div", {cls: "note", text: note})); });
}

function renderTokens() {
  var body = sectionBody("tokens"), chips = el("div", {cls: "chips", id: "token-chips"});
  body.appendChild(el("p", {cls: "explain", text: DATA.tokens.length + " tokens, as the model sees them: " +
    "each piece of text (\u00b7 marks a space, \u21b5 a newline), its id below, and its bytes in red " +
    "where the piece alone is not valid UTF-8 (part of a multi-byte character)."}));
  DATA.tokens.forEach(function (id, position) {
    var entry = DATA.vocab[String(id)];
    var chip = el("div", {cls: "chip token" + (entry[2] ? " special" : ""), "data-position": position, "data-id": id},
      [pieceNode(id), el("span", {cls: "tid", text: String(id)})]);
    if (entry[1]) chip.appendChild(el("span", {cls: "bytes", text: entry[1]}));
    chip.title = "position " + position + ", id " + id;
    chips.appendChild(chip);
  });
  body.appendChild(chips);
}
