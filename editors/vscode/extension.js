// The critlang extension: starts `critlang lsp` and connects VS Code to it over stdio.
// Highlighting comes from the TextMate grammar in syntaxes/, which needs no server.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const settings = vscode.workspace.getConfiguration("critlang");
  const server = {
    command: settings.get("server.command", "critlang"),
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
