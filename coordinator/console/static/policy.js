// The policy editor: progressive enhancement of the policy page's
// <textarea>. With CodeMirror (vendor/codemirror.js, the global WarrenCM)
// loaded, the textarea is replaced by an editor with line numbers, JSON
// highlighting (HuJSON's comments and trailing commas are never flagged:
// the only diagnostics are the server's) and the server's diagnostics as
// you type, from POST /admin/policy/validate with the session's CSRF token
// in a header. The form's buttons still post the draft: the editor copies
// itself back into the textarea before each submit. No inline script, no
// eval: the console's Content-Security-Policy allows neither.
(function () {
  "use strict";
  var CM = window.WarrenCM;
  var textarea = document.getElementById("policy-source");
  var form = document.getElementById("policy-form");
  var live = document.getElementById("policy-live");
  if (!CM || !textarea || !form) {
    return;
  }
  var csrf = form.querySelector("input[name=csrf]").value;

  function say(text, bad) {
    live.textContent = text;
    live.className = bad ? "bad" : "good";
  }

  // position turns the server's 1-based line and column (in characters)
  // into an offset in doc, clamped to the document.
  function position(doc, line, col) {
    if (!line || line < 1) {
      return 0;
    }
    var l = doc.line(Math.min(line, doc.lines));
    return Math.min(l.from + Math.max(col - 1, 0), l.to);
  }

  var validate = CM.linter(function (view) {
    var source = view.state.doc.toString();
    return fetch("/admin/policy/validate", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ source: source })
    }).then(function (resp) {
      if (!resp.ok) {
        throw new Error("validate: HTTP " + resp.status);
      }
      return resp.json();
    }).then(function (result) {
      var doc = view.state.doc;
      if (doc.toString() !== source) {
        return []; // edited since: the next run reports
      }
      var errors = 0;
      var first = null;
      var diags = result.diagnostics.map(function (d) {
        var from = position(doc, d.line, d.col);
        var to = Math.min(from + 1, doc.length);
        if (!d.warning) {
          errors++;
          first = first || d;
        }
        return {
          from: from, to: to,
          severity: d.warning ? "warning" : "error",
          message: d.message + (d.hint ? " (hint: " + d.hint + ")" : "")
        };
      });
      if (result.ok) {
        say("Valid: " + result.rules + " rules, " + result.tests + " tests pass", false);
      } else {
        say(errors + (errors === 1 ? " error" : " errors") +
            (first && first.line ? ", first at line " + first.line + ":" + first.col : "") +
            ": " + (first ? first.message : ""), true);
      }
      return diags;
    }).catch(function (err) {
      say("Could not validate: " + err.message, true);
      return [];
    });
  }, { delay: 400 });

  // The editor lives in a shadow root: there CodeMirror's styles go into
  // constructed style sheets, which the console's style-src 'self'
  // allows, instead of <style> elements, which it forbids.
  var host = document.createElement("div");
  host.id = "policy-editor";
  var shadow = host.attachShadow({ mode: "open" });
  var view = new CM.EditorView({
    root: shadow,
    doc: textarea.value,
    extensions: [
      CM.lineNumbers(),
      CM.highlightActiveLineGutter(),
      CM.highlightActiveLine(),
      CM.drawSelection(),
      CM.history(),
      CM.indentOnInput(),
      CM.bracketMatching(),
      CM.json(),
      CM.syntaxHighlighting(CM.defaultHighlightStyle, { fallback: true }),
      CM.lintGutter(),
      validate,
      CM.keymap.of([CM.indentWithTab].concat(CM.defaultKeymap, CM.historyKeymap)),
      CM.EditorView.contentAttributes.of({ "aria-label": "Policy file (HuJSON)" }),
      CM.EditorView.theme({
        "&": { minHeight: "20rem", maxHeight: "70vh", background: "#fff", border: "1px solid #c9ced6", fontSize: "13px" },
        "&.cm-focused": { outline: "2px solid #2f6fb0" },
        ".cm-scroller": { fontFamily: "ui-monospace, monospace", lineHeight: "1.4" },
        ".cm-gutters": { background: "#f6f7f9", color: "#6a737d" }
      })
    ]
  });
  shadow.appendChild(view.dom);
  textarea.hidden = true;
  textarea.parentNode.insertBefore(host, textarea);
  form.addEventListener("submit", function () {
    textarea.value = view.state.doc.toString();
  });
  // Jumping from a listed diagnostic (line:col) to its place.
  document.querySelectorAll(".diagnostics .pos").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      var m = /^(\d+):(\d+)$/.exec(a.textContent);
      if (!m) {
        return;
      }
      ev.preventDefault();
      var pos = position(view.state.doc, +m[1], +m[2]);
      view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
      view.focus();
    });
  });
  document.body.classList.add("policy-editor-ready");
})();
