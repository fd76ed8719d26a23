"""Falco's condition language: grammar, parser, AST."""
