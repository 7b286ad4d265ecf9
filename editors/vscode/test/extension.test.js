// The extension's entry point and manifest agree with each other and with critlang.
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const root = path.join(__dirname, "..");
const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));

test("extension.js compiles and starts `critlang lsp` for the critlang language", () => {
  const source = fs.readFileSync(path.join(root, manifest.main), "utf8");
  new vm.Script(source, { filename: manifest.main }); // throws on a syntax error
  assert.match(source, /language: "critlang"/);
  const settings = manifest.contributes.configuration.properties;
  assert.deepStrictEqual(settings["critlang.server.args"].default, ["lsp"]);
});

test("the language and its grammar are contributed for .crit files", () => {
  const [language] = manifest.contributes.languages;
  assert.deepStrictEqual([language.id, language.extensions], ["critlang", [".crit"]]);
  const [grammar] = manifest.contributes.grammars;
  assert.strictEqual(grammar.language, "critlang");
  assert.ok(fs.existsSync(path.join(root, grammar.path)));
  assert.ok(fs.existsSync(path.join(root, language.configuration)));
  JSON.parse(fs.readFileSync(path.join(root, language.configuration), "utf8"));
});

test("every snippet is a critlang item the parser knows", () => {
  const [entry] = manifest.contributes.snippets;
  assert.strictEqual(entry.language, "critlang");
  const snippets = JSON.parse(fs.readFileSync(path.join(root, entry.path), "utf8"));
  const starts = new Set(["inclusion", "exclusion", "data", "define", "example"]);
  for (const [name, snippet] of Object.entries(snippets)) {
    const first = snippet.body[0].replace(/\$\{\d+\|([a-z]+),.*?\|\}/, "$1").split(" ")[0];
    assert.ok(starts.has(first), `${name} starts with ${first}`);
  }
});
