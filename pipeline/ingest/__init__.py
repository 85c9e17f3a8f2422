"""Inputs: discover files, decode audio, parse transcripts, read call metadata."""
