// The TextMate grammar, tokenized by vscode-textmate (the engine VS Code uses),
// on a protocol that has every kind of token.
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const path = require("node:path");
const oniguruma = require("vscode-oniguruma");
const textmate = require("vscode-textmate");

const root = path.join(__dirname, "..");

async function grammar() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () => {
      const file = path.join(root, "syntaxes", "critlang.tmLanguage.json");
      return textmate.parseRawGrammar(fs.readFileSync(file, "utf8"), file);
    },
  });
  return registry.loadGrammar("source.crit");
}

// Each token's text with the innermost scope, line by line.
function tokens(g, text) {
  let state = textmate.INITIAL;
  const out = [];
  for (const line of text.split("\n")) {
    const result = g.tokenizeLine(line, state);
    for (const token of result.tokens) {
      const word = line.slice(token.startIndex, token.endIndex);
      if (word.trim()) out.push([word.trim(), token.scopes[token.scopes.length - 1]]);
    }
    state = result.ruleStack;
  }
  return out;
}

const SAMPLE = [
  "protocol liver  # a comment",
  '  title "Liver \\"safety\\""',
  "data",
  "  alt: quantity 'U/L' range 0 to 5000",
  "  grade: one of (g1, g2)",
  "constant start = 2024-01-01",
  'exclusion E1 "Raised ALT"',
  "  met when alt > 3.5 * alt_uln and not (grade in (g2))",
  'example "e" { alt = 20 \'U/L\' } expect eligible',
].join("\n");

test("every kind of token gets its scope", async () => {
  const found = new Map();  // each word's first occurrence
  for (const [word, scope] of tokens(await grammar(), SAMPLE)) {
    if (!found.has(word)) found.set(word, scope);
  }
  const expected = {
    protocol: "keyword.other.declaration.crit",
    liver: "entity.name.function.crit",
    "# a comment": "comment.line.number-sign.crit",
    '\\"': "constant.character.escape.crit",
    data: "keyword.other.crit",
    alt: "variable.other.member.crit",
    quantity: "storage.type.crit",
    "'U/L'": "constant.other.unit.crit",
    "one of": "storage.type.crit",
    "2024-01-01": "constant.other.date.crit",
    exclusion: "keyword.other.criterion.crit",
    E1: "entity.name.section.criterion.crit",
    "met when": "keyword.control.crit",
    "3.5": "constant.numeric.crit",
    "*": "keyword.operator.arithmetic.crit",
    alt_uln: "variable.other.crit",
    and: "keyword.operator.logical.crit",
    in: "keyword.control.crit",
    eligible: "support.constant.outcome.crit",
  };
  for (const [word, scope] of Object.entries(expected)) {
    assert.strictEqual(found.get(word), scope, `${word}`);
  }
});

test("the CTD-ILD protocol tokenizes with no text left unscoped", async () => {
  const file = path.join(root, "..", "..", "protocols", "ctd_ild.crit");
  const all = tokens(await grammar(), fs.readFileSync(file, "utf8"));
  const bare = all.filter(([word, scope]) => scope === "source.crit" && /[a-z0-9]/i.test(word));
  assert.deepStrictEqual(bare, []);
});

test("a unit holding an escaped quote or backslash is one unit token", async () => {
  const line = "  titre: quantity '[arb\\'U]/mL' accepts 'a\\\\' convert 'mmol/mol' as 0.09148 * value + 2.152";
  const all = tokens(await grammar(), line);
  const units = all.filter(([, scope]) => scope === "constant.other.unit.crit").map(([w]) => w);
  assert.deepStrictEqual(units, ["'[arb\\'U]/mL'", "'a\\\\'", "'mmol/mol'"]);
  const keywords = all.filter(([, scope]) => scope === "keyword.other.crit").map(([w]) => w);
  assert.deepStrictEqual(keywords, ["accepts", "convert", "as", "value"]);
  // Nothing after the escaped quote is read as code: no stray names, no unscoped text.
  assert.deepStrictEqual(all.filter(([w]) => w === "U]/mL'" || w === "U"), []);
});
