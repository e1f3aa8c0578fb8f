"""Training loops and their run folders."""
