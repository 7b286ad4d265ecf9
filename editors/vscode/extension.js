// The critlang extension: starts `critlang lsp` and connects VS Code to it over stdio.
// Highlighting comes from the TextMate grammar in syntaxes/, which needs no server.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

// The critlang to run: the setting when it is given, else the one in a project's
// .venv (where `make demo` installs it), else `critlang` on the PATH.
function serverCommand(settings) {
  const configured = settings.get("server.command", "");
  if (configured) return configured;
  for (const folder of vscode.workspace.workspaceFolders || []) {
    for (const candidate of [".venv/bin/critlang", ".venv/Scripts/critlang.exe"]) {
      const full = path.join(folder.uri.fsPath, candidate);
      if (fs.existsSync(full)) return full;
    }
  }
  return "critlang";
}

function activate(context) {
  const settings = vscode.workspace.getConfiguration("critlang");
  const server = {
    command: serverCommand(settings),
    args: settings.get("server.args", ["lsp"]),
    transport: TransportKind.stdio,
  };
  client = new LanguageClient(
    "critlang",
    "critlang",
    { run: server, debug: server },
    {
      documentSelector: [
        { scheme: "file", language: "critlang" },
        { scheme: "untitled", language: "critlang" },
      ],
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
