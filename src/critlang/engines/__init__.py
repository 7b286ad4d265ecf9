"""The engines: peers that each compile the core IR (`critlang.ir`) for one target."""
