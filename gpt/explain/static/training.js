/* training.js: the run's metrics.jsonl as line charts (losses first, then every other number). */
"use strict";

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; }
  var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / count))), err = (hi - lo) / count / step;
  step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
  var ticks = [];
  for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(10)));
  return ticks;
}

var LINE_COLOURS = ["#2b6cb0", "#dd6b20", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#319795", "#d53f8c"];

function lineChart(chart, width, height) {
  var left = 58, right = 12, top = 10, bottom = 34, W = width - left - right, H = height - top - bottom;
  var points = [].concat.apply([], chart.series.map(function (s) { return s.points; }));
  var xs = points.map(function (p) { return p[0]; }), ys = points.map(function (p) { return p[1]; });
  var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
  if (!(x1 > x0)) { x0 -= 0.5; x1 += 0.5; }
  if (!(y1 > y0)) { var pad = Math.abs(y0) * 0.05 || 0.5; y0 -= pad; y1 += pad; }
  var X = function (v) { return left + (v - x0) / (x1 - x0) * W; }, Y = function (v) { return top + H - (v - y0) / (y1 - y0) * H; };
  var plot = svg("svg", {width: width, height: height, viewBox: "0 0 " + width + " " + height});
  niceTicks(y0, y1, 4).forEach(function (t) {
    plot.appendChild(svg("line", {x1: left, x2: left + W, y1: Y(t), y2: Y(t), stroke: "#edf0f4"}));
    plot.appendChild(svg("text", {x: left - 5, y: Y(t) + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6776"}, fmt(t, 3)));
  });
  niceTicks(x0, x1, 5).forEach(function (t) {
    plot.appendChild(svg("line", {x1: X(t), x2: X(t), y1: top + H, y2: top + H + 4, stroke: "#8a94a3"}));
    plot.appendChild(svg("text", {x: X(t), y: top + H + 16, "text-anchor": "middle", "font-size": 11, fill: "#5d6776"}, fmt(t, 4)));
  });
  plot.appendChild(svg("line", {x1: left, x2: left + W, y1: top + H, y2: top + H, stroke: "#8a94a3"}));
  plot.appendChild(svg("line", {x1: left, x2: left, y1: top, y2: top + H, stroke: "#8a94a3"}));
  plot.appendChild(svg("text", {x: left + W / 2, y: height - 3, "text-anchor": "middle", "font-size": 11, fill: "#5d6776"}, "step"));
  var many = chart.series.length > LINE_COLOURS.length;
  chart.series.forEach(function (s, i) {
    var stroke = many ? colour(0.85 * i / (chart.series.length - 1)) : LINE_COLOURS[i];
    var d = s.points.map(function (p, j) { return (j ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1); }).join("");
    plot.appendChild(svg("path", {d: d, fill: "none", stroke: stroke, "stroke-width": 1.6}));
    if (s.points.length < 40) s.points.forEach(function (p) {
      plot.appendChild(svg("circle", {cx: X(p[0]), cy: Y(p[1]), r: 2.4, fill: stroke}));
    });
  });
  var legend = el("div", {cls: "legend"});
  if (many) {
    legend.appendChild(colourBar(function (t) { return colour(0.85 * t); },
      [[0, "N=" + chart.series[0].label], [1, "N=" + chart.series[chart.series.length - 1].label]], "one line per index N", 160));
  } else if (chart.series.length > 1 || chart.series[0].label !== chart.title) {
    chart.series.forEach(function (s, i) {
      var swatch = el("span", {cls: "swatch"}); swatch.style.background = LINE_COLOURS[i];
      legend.appendChild(el("span", {}, [swatch, (chart.title.indexOf("#") >= 0 ? "N=" : "") + s.label]));
    });
  }
  return el("div", {cls: "card"}, [el("div", {cls: "title", text: chart.title.replace(/#/g, "N")}), plot, legend]);
}

function renderTraining() {
  var body = sectionBody("training"), T = DATA.training;
  if (!T) {
    body.appendChild(el("p", {cls: "explain", text: DATA.training_note}));
    return;
  }
  body.appendChild(el("p", {cls: "explain", text: "From the run's metrics.jsonl (" + T.records + " records): " +
    "the losses, then every other number it holds; numbers recorded per layer or parameter (keys with an " +
    "index, N in the title) share one chart with a line per index."}));
  T.sections.forEach(function (section, s) {
    var grid = el("div", {cls: "grid small-charts", id: s === 0 ? "training-charts" : null});
    section.charts.forEach(function (chart, i) {
      var big = s === 0 && i === 0;
      try {
        var card = lineChart(chart, big ? 800 : 390, big ? 260 : 190);
        if (big) card.classList.add("wide");
        grid.appendChild(card);
      } catch (error) { grid.appendChild(el("div", {cls: "card muted", text: chart.title + ": cannot be drawn (" + error.message + ")"})); }
    });
    if (s === 0) { body.appendChild(grid); return; }
    var details = el("details", {}, [el("summary", {text: section.name + ": " + section.charts.length + " chart" +
      (section.charts.length === 1 ? "" : "s")}), grid]);
    if (section.charts.length <= 12) details.open = true;
    body.appendChild(details);
  });
  if (T.skipped.length || T.dropped_charts)
    body.appendChild(el("p", {cls: "muted small", text: (T.skipped.length ? "Not drawn (histograms or long lists): " +
      T.skipped.join(", ") + ". " : "") + (T.dropped_charts ? T.dropped_charts + " more charts left out." : "")}));
}
