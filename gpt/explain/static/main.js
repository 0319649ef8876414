/* main.js: draw every section; a section that fails says so and the others still draw. */
"use strict";
[["header", renderHeader], ["tokens", renderTokens], ["attention", renderAttention], ["lens", renderLens],
 ["next", renderDistribution], ["internals", renderInternals], ["training", renderTraining]].forEach(function (part) {
  try { part[1](); }
  catch (error) {
    window.onerror(part[0] + ": " + error.message, "", error.lineNumber || 0);
    var target = part[0] === "header" ? document.getElementById("header") : sectionBody(part[0]);
    target.appendChild(el("div", {cls: "error", text: "This part could not be drawn: " + error.message}));
  }
});
document.documentElement.setAttribute("data-explain-ready", "1");
