// The CodeMirror 6 pieces the console's policy editor uses, bundled into
// coordinator/console/static/vendor/codemirror.js as the global WarrenCM.
// The console's own glue (coordinator/console/static/policy.js) is plain
// JavaScript that needs no build.
export { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from "@codemirror/view";
export { EditorState } from "@codemirror/state";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export { syntaxHighlighting, defaultHighlightStyle, bracketMatching, indentOnInput } from "@codemirror/language";
export { json } from "@codemirror/lang-json";
export { linter, lintGutter, setDiagnostics, forceLinting } from "@codemirror/lint";
