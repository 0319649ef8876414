/* lens.js: the logit lens, the residual stream after each layer read through the final norm and head. */
"use strict";

function renderLens() {
  var lens = DATA.lens, body = sectionBody("lens");
  var T = DATA.tokens.length, layers = lens.ids.length;
  body.appendChild(el("p", {cls: "explain", text: "Each cell decodes the residual stream at one position " +
    "(row) after one layer (column) as if it were the last layer: out_head(final_norm(x)). The text is the " +
    "most likely next token, the colour its probability; a bold outline marks the prompt's actual next " +
    "token. The last column is the model's own prediction. Hover for the top " + lens.top + "."}));
  var mode = {value: "top"};
  var controls = el("div", {cls: "controls"}, [el("label", {text: "colour by"}),
    buttons(["probability of the top token", "probability of the actual next token"], 0, function (i) {
      mode.value = i === 0 ? "top" : "next"; draw(); })]);
  body.appendChild(controls);
  var holder = el("div", {cls: "scroll"}); body.appendChild(holder);
  body.appendChild(colourBar(paleRamp, PROBABILITY_TICKS, "probability (one scale for the whole table, square-root spaced)", 320));

  function draw() {
    holder.innerHTML = "";
    var table = el("table", {cls: "lens", id: "lens-table"}), head = el("tr", {});
    head.appendChild(el("th", {cls: "tok", text: "position: token"}));
    for (var l = 0; l < layers; l++) head.appendChild(el("th", {text: l === 0 ? "embedding" : "layer " + l}));
    head.appendChild(el("th", {cls: "tok", text: "actual next"}));
    table.appendChild(head);
    for (var t = 0; t < T; t++) {
      var row = el("tr", {}), next = t + 1 < T ? DATA.tokens[t + 1] : null;
      row.appendChild(el("td", {cls: "tok", text: t + ": " + label(DATA.tokens[t], 14)}));
      for (var layer = 0; layer < layers; layer++) {
        var ids = lens.ids[layer][t], probs = lens.probs[layer][t];
        var value = mode.value === "top" ? probs[0] : (next === null ? null : lens.next_probs[layer][t]);
        var td = el("td", {text: label(ids[0], 11)});
        td.style.background = value === null ? "#f3f5f8" : paleColour(value);
        td.style.color = value === null ? "#1d2430" : textOn(value);
        if (next !== null && ids[0] === next) td.className = "hit";
        td.dataset.tip = (layer === 0 ? "embedding" : "after layer " + layer) + ", position " + t +
          "\n" + ids.map(function (id, i) { return pct(probs[i]).padStart(7) + "  '" + label(id, 24) + "'"; }).join("\n") +
          (next === null ? "" : "\np(actual next '" + label(next, 20) + "') = " + pct(lens.next_probs[layer][t]));
        row.appendChild(td);
      }
      row.appendChild(el("td", {cls: "tok", text: next === null ? "\u2014" : label(next, 14)}));
      table.appendChild(row);
    }
    table.addEventListener("mousemove", function (event) {
      var tip = event.target.dataset ? event.target.dataset.tip : null;
      if (tip) showTip(event, tip); else hideTip();
    });
    table.addEventListener("mouseleave", hideTip);
    holder.appendChild(table);
  }
  draw();
}
